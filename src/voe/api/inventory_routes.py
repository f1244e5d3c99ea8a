"""CRUD for every inventory kind, generated from the models so the OpenAPI
document shows each kind's real schema. Each write goes through
``InventoryStore.write``: validated whole, written whole, or not at all."""


from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ValidationError

from voe.api.auth import Admin, Viewer
from voe.domain import inventory as inv_rules
from voe.domain.diff import spec_of
from voe.domain.inventory import Inventory
from voe.domain.models import KINDS
from voe.errors import Conflict, FieldProblem, InvalidInventory, NotFound
from voe.store.secrets import strip


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _labels_match(obj: Any, wanted: list[str]) -> bool:
    labels = getattr(obj, "labels", None) or {}
    for item in wanted:
        key, _, value = item.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _filter(kind: str, inv: Inventory, objects: list, params: dict) -> list:
    """The objects a listing's filters keep, in the inventory's order; only
    the page of them is then turned into specs, so a page of a large
    inventory costs its own size."""
    out = objects
    if params.get("q"):
        out = [o for o in out if params["q"] in o.name]
    if params.get("label"):
        out = [o for o in out if _labels_match(o, params["label"])]
    if kind == "personas":
        if params.get("network"):
            out = [o for o in out if any(v.network == params["network"] for v in o.vnics)]
        if params.get("group"):
            members = {m for g in inv.groups if g.name == params["group"] for m in g.members}
            out = [o for o in out if o.name in members]
    if kind == "hosts" and params.get("hypervisor") is not None:
        out = [o for o in out if (o.hypervisor is not None) == params["hypervisor"]]
    return out


def _body_loc(kind: str, name: str):
    """Problems about the object being written point at the request body."""
    def loc_map(loc: tuple) -> tuple | None:
        if len(loc) >= 2 and loc[0] == kind and loc[1] == name:
            return ("body",) + tuple(loc[2:])
        return None
    return loc_map


def _put(request: Request, kind: str, obj: BaseModel, *, must_be_new: bool) -> dict:
    store = request.app.state.services.inventory

    def build(current: Inventory) -> Inventory:
        items = list(getattr(current, kind))
        names = [o.name for o in items]
        if obj.name in names:
            if must_be_new:
                raise Conflict(f"{kind[:-1] if kind != 'switches' else 'switch'} {obj.name!r} exists; "
                               f"use PUT /api/v1/{kind}/{obj.name} to replace it", ("body", "name"))
            items[names.index(obj.name)] = obj
        else:
            items.append(obj)
        return current.model_copy(update={kind: items})

    result = store.write(build, loc_map=_body_loc(kind, obj.name))
    _audit(request, result.changes)
    return strip(kind, spec_of(result.inventory.by_name(kind)[obj.name]))


def _audit(request: Request, changes) -> None:
    log = request.app.state.services.events  # the token's name and the request id come with the request
    for ch in changes:
        log.append("info", "inventory", f"{ch.op} {ch.kind[:-1] if ch.kind != 'switches' else 'switch'} {ch.name}",
                   persona=ch.name if ch.kind == "personas" else None,
                   host=ch.name if ch.kind == "hosts" else None,
                   group=ch.name if ch.kind == "groups" else None,
                   data={"fields": list(ch.fields)})


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_patch(out.get(k), v)
    return out


def router_for(kind: str) -> APIRouter:
    model = KINDS[kind]
    singular = "switch" if kind == "switches" else kind[:-1]
    r = APIRouter(prefix=f"/{kind}", tags=[kind])

    @r.get("", response_model=Page, summary=f"List {kind}")
    def list_(request: Request, _: Viewer,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0)] = 0,
              q: Annotated[str | None, Query(description="substring of the name")] = None,
              label: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None,
              network: Annotated[str | None, Query(description="personas cabled to this network")] = None,
              group: Annotated[str | None, Query(description="personas in this group")] = None,
              hypervisor: Annotated[bool | None, Query(description="hosts that are (not) hypervisors")] = None):
        inv = request.app.state.services.inventory.load()
        kept = _filter(kind, inv, getattr(inv, kind),
                       dict(q=q, label=label, network=network, group=group, hypervisor=hypervisor))
        return Page(items=[strip(kind, spec_of(o)) for o in kept[offset : offset + limit]], total=len(kept),
                    limit=limit, offset=offset)

    @r.get("/{name}", summary=f"Show one {singular}")
    def show(request: Request, name: str, _: Viewer) -> dict:
        obj = request.app.state.services.inventory.load().by_name(kind).get(name)
        if obj is None:
            raise NotFound(singular, name)
        return strip(kind, spec_of(obj))

    @r.post("", status_code=201, summary=f"Create a {singular}")
    def create(request: Request, body: Annotated[model, Body()], _: Admin) -> dict:  # type: ignore[valid-type]
        return _put(request, kind, body, must_be_new=True)

    @r.put("/{name}", summary=f"Create or replace a {singular}")
    def replace(request: Request, name: str, body: Annotated[model, Body()], _: Admin) -> dict:  # type: ignore[valid-type]
        if body.name != name:
            raise InvalidInventory([_mismatch(name, body.name)])
        return _put(request, kind, body, must_be_new=False)

    @r.patch("/{name}", summary=f"Change some fields of a {singular} (JSON merge patch)")
    def patch(request: Request, name: str, body: Annotated[dict[str, Any], Body()], _: Admin) -> dict:
        current = request.app.state.services.inventory.load().by_name(kind).get(name)
        if current is None:
            raise NotFound(singular, name)
        merged = _merge_patch(spec_of(current), body)
        try:
            obj = model.model_validate(merged)
        except ValidationError as e:
            raise InvalidInventory(inv_rules.problems_from(e.errors(include_url=False), model, ("body",))) from None
        if obj.name != name:
            raise InvalidInventory([_mismatch(name, obj.name)])
        return _put(request, kind, obj, must_be_new=False)

    @r.delete("/{name}", status_code=204, summary=f"Delete a {singular}")
    def delete_(request: Request, name: str, _: Admin) -> Response:
        store = request.app.state.services.inventory

        def build(current: Inventory) -> Inventory:
            if name not in current.by_name(kind):
                raise NotFound(singular, name)
            users = inv_rules.references(current, kind, name)
            if users:
                raise Conflict(f"{singular} {name!r} is used by {', '.join(users)}; change those first")
            return current.model_copy(update={kind: [o for o in getattr(current, kind) if o.name != name]})

        _audit(request, store.write(build).changes)
        return Response(status_code=204)

    return r


def _mismatch(path_name: str, body_name: str) -> FieldProblem:
    return FieldProblem(("body", "name"), f"name {body_name!r} differs from the URL's {path_name!r}; renaming is delete + create")


def all_routers() -> list[APIRouter]:
    return [router_for(kind) for kind in KINDS]
