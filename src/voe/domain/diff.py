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
    Objects only in ``old`` are deletes when ``prune``, else kept."""
    upserts: list[Change] = []
    deletes: list[Change] = []
    for kind in KINDS:
        before = {o.name: spec_of(o) for o in getattr(old, kind)}
        after = {o.name: spec_of(o) for o in getattr(new, kind)}
        for name, spec in after.items():
            if name not in before:
                upserts.append(Change("create", kind, name))
            elif spec != before[name]:
                upserts.append(Change("update", kind, name, tuple(_changed_paths(before[name], spec))))
        if prune:
            deletes += [Change("delete", kind, n) for n in before if n not in after]
    order = {k: i for i, k in enumerate(KINDS)}
    deletes.sort(key=lambda c: -order[c.kind])
    return upserts + deletes


def keep_secrets(incoming: Inventory, current: Inventory) -> Inventory:
    """A secret left out of a file means "keep the one the controller has",
    so an exported file (which never carries secrets) applies cleanly."""
    out = incoming.model_copy(deep=True)
    existing = current.by_name("hosts")
    for host in out.hosts:
        old = existing.get(host.name)
        if old is None:
            continue
        for section, attr in SECRET_FIELDS["hosts"]:
            new_part, old_part = getattr(host, section), getattr(old, section)
            if new_part is not None and old_part is not None and getattr(new_part, attr) is None:
                setattr(new_part, attr, getattr(old_part, attr))
    return out
