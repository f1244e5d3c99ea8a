"""Reading and writing the inventory, one transaction per write.

Every write, from a single API call or a whole ``voe apply``, takes the same
path: load the current inventory, build the new one, validate every rule,
fill in identity, compute the changes, write them with their claims. Nothing
is half-written: a problem anywhere rolls back everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from voe.domain import inventory as inv_rules
from voe.domain.diff import Change, diff, keep_secrets, spec_of
from voe.domain.inventory import CONFLICT, Inventory
from voe.domain.models import KINDS
from voe.errors import Conflict, FieldProblem, InvalidInventory
from voe.store import schema
from voe.store.db import reader
from voe.store.secrets import Sealer

LocMap = Callable[[tuple], tuple | None]
"""Maps a problem's path, ``(kind, object name, field...)``, to the caller's
path (a request body field, say); None keeps it as it is."""

_VERSION = select(schema.inventory_version.c.version).where(schema.inventory_version.c.id == 1)
KEPT_VERSIONS = 1000
"""Deletions are remembered for this many inventory versions: a controller
whose inventory is older reads the whole inventory again."""


@dataclass
class WriteResult:
    changes: list[Change]
    inventory: Inventory


def claims_of(kind: str, obj) -> Iterable[tuple[str, str]]:
    """What an object holds exclusively (namespace, value)."""
    if kind == "networks":
        yield "vlan", str(obj.vlan)
    elif kind == "hosts":
        for nic in obj.nics:
            yield "mac", nic.mac
            if nic.switch:
                yield f"port:{nic.switch}", nic.port
    elif kind == "personas":
        for v in obj.vnics:
            if v.mac:
                yield "mac", v.mac
            if v.ip is not None:
                yield f"ip:{v.network}", str(v.ip)


class InventoryStore:
    def __init__(self, engine: Engine, sealer: Sealer, on_write: Callable[[], None] = lambda: None):
        """``on_write`` is called after each write that changed something
        (the controller wakes its reconciler: an operator's change is acted
        on at once, not at the next full pass)."""
        self.engine = engine
        self.on_write = on_write
        self.reader = reader(engine)
        self.sealer = sealer
        # SQLite has one writer anyway; on PostgreSQL an advisory lock
        # serializes inventory writes across controllers.
        self._write_lock = threading.Lock()
        self._cache: tuple[int, Inventory] | None = None  # the version loaded, and what it held

    # --- reads ----------------------------------------------------------

    def load(self, conn: Connection | None = None) -> Inventory:
        """The whole inventory with secrets unsealed (for drivers and writes).

        Outside a write, the last load is reused while the inventory's
        version (one row, bumped by every write, this controller's or
        another's) is unchanged: the reconciler, every start and every
        agent's configuration read it, and it changes rarely; a write
        (``conn``, under the write lock) reuses it the same way. Once
        another controller has written, only the objects its writes
        changed or deleted are read (``_refreshed``). Callers must treat
        the result as read-only."""
        if conn is not None:
            return self._load_at(conn)
        with self.reader.connect() as c:
            return self._load_at(c)

    def _load_at(self, c: Connection) -> Inventory:
        """The inventory as ``c`` sees it, from the cache while its version holds."""
        version = c.execute(_VERSION).scalar_one()
        cached = self._cache
        if cached is not None and cached[0] == version:
            return cached[1]
        if cached is not None and 0 < version - cached[0] <= KEPT_VERSIONS:
            inv = self._refreshed(c, *cached)
        else:
            inv = self._load(c)
        self._cache = (version, inv)
        return inv

    def _load(self, conn: Connection) -> Inventory:
        rows = conn.execute(select(schema.objects.c.kind, schema.objects.c.spec)).all()
        doc: dict[str, list] = {k: [] for k in KINDS}
        for kind, spec in rows:
            doc[kind].append(self.sealer.unseal(kind, spec))
        for kind in doc:
            doc[kind].sort(key=lambda s: s["name"])
        return Inventory.model_validate(doc)

    def _refreshed(self, conn: Connection, since: int, inv: Inventory) -> Inventory:
        """``inv``, the inventory at version ``since``, with the objects
        deleted and written after it. Read at a later version than the one
        it will be cached under (a write committing between these reads), it
        is brought up to date again by the next refresh: applying a version's
        changes twice gives what applying them once does."""
        d, o = schema.deletions, schema.objects
        gone = conn.execute(select(d.c.kind, d.c.name).where(d.c.deleted_in > since)).all()
        written = conn.execute(select(o.c.kind, o.c.spec).where(o.c.changed_in > since)).all()
        by_kind: dict[str, dict[str, Any]] = {}
        for kind, name in gone:
            by_kind.setdefault(kind, dict(inv.by_name(kind))).pop(name, None)
        for kind, spec in written:
            obj = KINDS[kind].model_validate(self.sealer.unseal(kind, spec))
            by_kind.setdefault(kind, dict(inv.by_name(kind)))[obj.name] = obj
        return inv.with_lists({kind: [objs[n] for n in sorted(objs)] for kind, objs in by_kind.items()})

    def revisions(self, kind: str) -> dict[str, int]:
        with self.reader.connect() as c:
            rows = c.execute(select(schema.objects.c.name, schema.objects.c.revision).where(schema.objects.c.kind == kind))
            return dict(rows.all())

    # --- writes ---------------------------------------------------------

    def write(self, build: Callable[[Inventory], Inventory], *, prune: bool = True,
              dry_run: bool = False, loc_map: LocMap | None = None) -> WriteResult:
        """Build the new inventory from the current one, check it, and write
        the difference in one transaction."""
        with self._write_lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7615)"))
            current = self.load(conn)
            new = keep_secrets(build(current), current)
            problems = inv_rules.check(new)
            if not problems:
                filled = inv_rules.assign_identity(new, previous=current)
                problems = inv_rules.check(filled) if filled is not new else []
                new = filled
            if problems:
                _raise([_by_name(p, new) for p in problems], loc_map)
            changes = diff(current, new, prune=prune)
            written = None
            if not dry_run and changes:
                conn.execute(update(schema.inventory_version).values(version=schema.inventory_version.c.version + 1))
                version = conn.execute(_VERSION).scalar_one()
                self._persist(conn, new, changes, version)
                written = (version, _in_name_order(new))
        if written is not None:
            self._cache = written  # what the next load would read back: a write's follower need not
            self.on_write()
        return WriteResult(changes, new)

    def _persist(self, conn: Connection, new: Inventory, changes: list[Change], version: int) -> None:
        """Write ``changes`` as inventory ``version``: each object written
        says so, and each one deleted is remembered (see ``_refreshed``)."""
        objs = {k: new.by_name(k) for k in KINDS}
        try:
            for ch in changes:
                key = (schema.objects.c.kind == ch.kind) & (schema.objects.c.name == ch.name)
                if ch.op == "delete":
                    conn.execute(delete(schema.objects).where(key))
                    conn.execute(insert(schema.deletions).values(kind=ch.kind, name=ch.name, deleted_in=version))
                    continue
                obj = objs[ch.kind][ch.name]
                spec = self.sealer.seal(ch.kind, spec_of(obj))
                if ch.op == "create":
                    conn.execute(insert(schema.objects).values(kind=ch.kind, name=ch.name, spec=spec, changed_in=version,
                                                               created_at=_now(), updated_at=_now()))
                else:
                    conn.execute(update(schema.objects).where(key).values(
                        spec=spec, revision=schema.objects.c.revision + 1, changed_in=version, updated_at=_now()))
                    conn.execute(delete(schema.claims).where(
                        (schema.claims.c.kind == ch.kind) & (schema.claims.c.name == ch.name)))
            for ch in changes:
                if ch.op == "delete":
                    continue
                rows = [{"namespace": ns, "value": v, "kind": ch.kind, "name": ch.name}
                        for ns, v in claims_of(ch.kind, objs[ch.kind][ch.name])]
                if rows:
                    conn.execute(insert(schema.claims), rows)
            conn.execute(delete(schema.deletions).where(schema.deletions.c.deleted_in <= version - KEPT_VERSIONS))
        except IntegrityError as e:
            # Only reachable when another controller won a race the rules
            # above could not see; the database is the last word.
            raise Conflict(f"another write claimed the same identity first ({e.orig}); retry") from None


def _in_name_order(inv: Inventory) -> Inventory:
    """As ``_load`` gives it: every kind's objects by name."""
    return inv.with_lists({k: sorted(getattr(inv, k), key=lambda o: o.name) for k in KINDS})


def _now() -> datetime:
    return datetime.now(UTC)


def _by_name(p: FieldProblem, inv: Inventory) -> FieldProblem:
    """Index paths (``personas.3.vnics``) become name paths
    (``personas.web-1.vnics``): the new inventory's order is nobody's."""
    if len(p.loc) >= 2 and p.loc[0] in KINDS and isinstance(p.loc[1], int):
        name = getattr(inv, p.loc[0])[p.loc[1]].name
        return FieldProblem((p.loc[0], name) + tuple(p.loc[2:]), p.msg, p.type)
    return p


def _raise(problems: list[FieldProblem], loc_map: LocMap | None) -> None:
    mapped = []
    for p in problems:
        loc = loc_map(p.loc) if loc_map else None
        mapped.append(FieldProblem(loc if loc is not None else p.loc, p.msg, p.type))
    if all(p.type == CONFLICT for p in mapped):
        first = mapped[0]
        raise Conflict("; ".join(p.msg for p in mapped), first.loc)
    raise InvalidInventory(mapped)
