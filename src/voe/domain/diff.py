"""What would change between two inventories: the heart of ``voe apply`` and
``voe diff``. Pure, so a dry run and the real write compute the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from voe.domain.inventory import Inventory
from voe.domain.models import KINDS, SECRET_FIELDS


@dataclass(frozen=True)
class Change:
    op: Literal["create", "update", "delete"]
    kind: str
    name: str
    fields: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return {"op": self.op, "kind": self.kind, "name": self.name, "fields": list(self.fields)}

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.op]
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{sign} {self.kind[:-1] if self.kind != 'switches' else 'switch'} {self.name}{detail}"


def spec_of(obj: Any) -> dict:
    """Canonical JSON form of one object: what is compared and stored."""
    return obj.model_dump(mode="json", exclude_none=False)


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _changed_paths(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if old != new:
        return [prefix.rstrip(".")]
    return []


def diff(old: Inventory, new: Inventory, prune: bool = True) -> list[Change]:
    """Changes that turn ``old`` into ``new``, in dependency order: creates and
    updates kind by kind (networks first), deletes last in reverse order.
    Objects only in ``old`` are deletes when ``prune``, else kept; an object
    that is the same instance in both is unchanged (models are not changed
    in place), which spares a large inventory's write a comparison of all."""
    upserts: list[Change] = []
    deletes: list[Change] = []
    for kind in KINDS:
        before = {o.name: o for o in getattr(old, kind)}
        after = {o.name: o for o in getattr(new, kind)}
        for name, obj in after.items():
            was = before.get(name)
            if was is None:
                upserts.append(Change("create", kind, name))
            elif was is not obj and (spec := spec_of(obj)) != (old_spec := spec_of(was)):
                upserts.append(Change("update", kind, name, tuple(_changed_paths(old_spec, spec))))
        if prune:
            deletes += [Change("delete", kind, n) for n in before if n not in after]
    order = {k: i for i, k in enumerate(KINDS)}
    deletes.sort(key=lambda c: -order[c.kind])
    return upserts + deletes


def keep_secrets(incoming: Inventory, current: Inventory) -> Inventory:
    """A secret left out of a file means "keep the one the controller has",
    so an exported file (which never carries secrets) applies cleanly."""
    updates = {}
    for kind, paths in SECRET_FIELDS.items():
        existing = current.by_name(kind)
        kept = []
        for obj in getattr(incoming, kind):
            old = existing.get(obj.name)
            if old is not None and old is not obj:  # the same object: nothing left out
                new_spec, old_spec = obj.model_dump(mode="json"), old.model_dump(mode="json")
                if [path for path in paths if _fill(new_spec, old_spec, path)]:  # every path, no short cut
                    obj = type(obj).model_validate(new_spec)
            kept.append(obj)
        updates[kind] = kept
    return incoming.with_lists(updates)


def _fill(new: dict | None, old: dict | None, path: tuple[str, ...]) -> bool:
    """Copy ``old``'s value at ``path`` into ``new`` where ``new`` has none."""
    for part in path[:-1]:
        new, old = new.get(part) if isinstance(new, dict) else None, old.get(part) if isinstance(old, dict) else None
    if isinstance(new, dict) and isinstance(old, dict) and new.get(path[-1]) is None and old.get(path[-1]) is not None:
        new[path[-1]] = old[path[-1]]
        return True
    return False
