"""The inventory as one document: ``voe apply``, ``voe diff`` and ``voe export``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError

from voe.api.auth import Admin
from voe.api.inventory_routes import _audit
from voe.domain import inventory as inv_rules
from voe.domain.diff import spec_of
from voe.domain.inventory import Inventory
from voe.domain.models import KINDS, SECRET_FIELDS
from voe.errors import InvalidInventory

router = APIRouter(tags=["document"])


class ApplyRequest(BaseModel):
    document: dict[str, Any] = Field(description="a datacenter file's content, as JSON")
    prune: bool = Field(default=False, description="delete what the document does not name")
    dry_run: bool = Field(default=False, description="compute the changes, write nothing (voe diff)")


class ApplyResult(BaseModel):
    changed: bool
    changes: list[dict[str, Any]]


@router.post("/apply", response_model=ApplyResult, summary="Make the inventory match a document")
def apply(request: Request, body: ApplyRequest, _: Admin) -> ApplyResult:
    try:
        incoming = Inventory.model_validate(body.document)
    except ValidationError as e:
        raise InvalidInventory(inv_rules.problems_from(e.errors(include_url=False), Inventory)) from None

    def build(current: Inventory) -> Inventory:
        if body.prune:
            return incoming
        merged = {}
        for kind in KINDS:
            named = {o.name for o in getattr(incoming, kind)}
            merged[kind] = list(getattr(incoming, kind)) + [o for o in getattr(current, kind) if o.name not in named]
        return Inventory(**merged)

    result = request.app.state.services.inventory.write(build, prune=body.prune, dry_run=body.dry_run)
    if not body.dry_run:
        _audit(request, result.changes)
    return ApplyResult(changed=bool(result.changes), changes=[c.as_dict() for c in result.changes])


@router.get("/export", summary="The whole inventory as a document (secrets left out)")
def export(request: Request, _: Admin) -> dict[str, Any]:
    inv = request.app.state.services.inventory.load()
    doc: dict[str, Any] = {"version": inv.version}
    for kind in KINDS:
        doc[kind] = [_without_secrets(kind, spec_of(o)) for o in getattr(inv, kind)]
    return doc


def _without_secrets(kind: str, spec: dict) -> dict:
    for path in SECRET_FIELDS.get(kind, []):
        parent: Any = spec
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return _drop_defaults(spec)


def _drop_defaults(spec: Any) -> Any:
    """Leave out empty values so an export reads like a hand-written file."""
    if isinstance(spec, dict):
        return {k: _drop_defaults(v) for k, v in spec.items() if v not in (None, [], {}, "")}
    if isinstance(spec, list):
        return [_drop_defaults(v) for v in spec]
    return spec
