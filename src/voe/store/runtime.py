"""Runtime state: what each persona is doing, its incarnations, the evidence
that ended them, heartbeats, boot scripts, fenced hosts and operator intents.

The reconciler is the only writer of persona states and incarnations. Two
guards live here, in the database, because they must hold whatever the code
above them gets wrong:

* a state change is a compare-and-set on the state the caller read, along an
  edge of the lifecycle table;
* a new incarnation is refused while any earlier incarnation of the persona
  has not ended with recorded evidence (``DoubleStartRefused``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from voe.domain.lifecycle import Event, State, next_state
from voe.errors import VoeError
from voe.store import schema
from voe.store.events import EventLog


class DoubleStartRefused(VoeError):
    """The last line of defence of the invariant: never two live incarnations."""

    def __init__(self, persona: str, live: list[int]):
        self.persona, self.live = persona, live
        super().__init__(f"refusing a new incarnation of {persona}: generation(s) {live} have not ended with evidence")


class StaleState(VoeError):
    """Someone else moved the persona since it was read; re-read and decide again."""


def now() -> datetime:
    return datetime.now(UTC)


def aware(t: datetime | None) -> datetime | None:
    """SQLite hands back naive timestamps; every stamp voe writes is UTC."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Incarnation:
    persona: str
    generation: int
    kind: str
    host: str
    vm: str | None
    boot_mac: str
    why: str
    started_at: datetime
    ready_at: datetime | None
    ended_at: datetime | None
    evidence: str | None

    @classmethod
    def of(cls, row) -> "Incarnation":
        m = row._mapping
        return cls(m["persona"], m["generation"], m["kind"], m["host"], m["vm"], m["boot_mac"], m["why"],
                   aware(m["started_at"]), aware(m["ready_at"]), aware(m["ended_at"]), m["evidence"])

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("started_at", "ready_at", "ended_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


@dataclass(frozen=True)
class PersonaState:
    persona: str
    state: State
    generation: int
    since: datetime
    reason: str | None
    plan: dict | None


class RuntimeStore:
    def __init__(self, engine: Engine, events: EventLog):
        self.engine = engine
        self.events = events
        # SQLite serves one controller process: a process lock makes the
        # guard's read-then-insert atomic there; PostgreSQL uses a row-level
        # advisory lock per persona (``_lock``) across controllers.
        self._guard = threading.Lock()

    # --- persona states -------------------------------------------------

    def states(self) -> dict[str, PersonaState]:
        with self.engine.connect() as c:
            rows = c.execute(select(schema.persona_runtime)).all()
        return {r.persona: PersonaState(r.persona, State(r.state), r.generation, aware(r.since), r.reason, r.plan)
                for r in rows}

    def state_of(self, persona: str) -> PersonaState:
        return self.states().get(persona) or PersonaState(persona, State.STOPPED, 0, now(), None, None)

    def transition(self, persona: str, seen: State, event: Event, reason: str | None = None,
                   *, host: str | None = None, data: dict | None = None, plan: Any = ...) -> State:
        """Move along one edge of the lifecycle table, from the state the
        caller saw; logged in the same transaction."""
        new = next_state(seen, event)
        values: dict[str, Any] = {"state": new.value, "since": now(), "reason": reason}
        if plan is not ...:
            values["plan"] = plan
        t = schema.persona_runtime
        with self.engine.begin() as c:
            self._lock(c, persona)
            n = c.execute(update(t).where((t.c.persona == persona) & (t.c.state == seen.value)).values(**values)).rowcount
            if n == 0:
                exists = c.execute(select(t.c.state).where(t.c.persona == persona)).scalar()
                if exists is not None or seen != State.STOPPED:
                    raise StaleState(f"{persona} is {exists}, not {seen.value}")
                c.execute(insert(t).values(persona=persona, **values))
            msg = f"{persona}: {seen.value} → {new.value} ({event.value})" + (f": {reason}" if reason else "")
            self.events.append("warning" if new in (State.SUSPECT, State.FENCING) else
                               "critical" if new == State.BLOCKED else "info",
                               "transition", msg, persona=persona, host=host,
                               data={"from": seen.value, "to": new.value, "event": event.value, **(data or {})}, conn=c)
        return new

    def set_plan(self, persona: str, plan: dict | None) -> None:
        t = schema.persona_runtime
        with self.engine.begin() as c:
            if c.execute(update(t).where(t.c.persona == persona).values(plan=plan)).rowcount == 0:
                c.execute(insert(t).values(persona=persona, state=State.STOPPED.value, plan=plan))

    @staticmethod
    def _lock(c: Connection, persona: str) -> None:
        if c.dialect.name == "postgresql":
            c.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": "persona:" + persona})

    # --- incarnations ---------------------------------------------------

    def begin_incarnation(self, persona: str, kind: str, host: str, vm: str | None, boot_mac: str, why: str) -> int:
        """Record a new incarnation, refusing while an earlier one is live."""
        t = schema.incarnations
        try:
            with self._guard, self.engine.begin() as c:
                self._lock(c, persona)
                live = [r.generation for r in c.execute(select(t.c.generation).where(
                    (t.c.persona == persona) & t.c.ended_at.is_(None)))]
                if not live:
                    gen = self._insert_incarnation(c, persona, kind, host, vm, boot_mac, why)
        except IntegrityError:
            # another writer recorded the same generation first (SQLite's
            # unique index is the arbiter where there is no row lock)
            live = [-1]
        if live:
            self.events.append("critical", "safety", f"refused a second incarnation of {persona}: {live} still live",
                               persona=persona)
            raise DoubleStartRefused(persona, live)
        return gen

    def _insert_incarnation(self, c: Connection, persona: str, kind: str, host: str, vm: str | None,
                            boot_mac: str, why: str) -> int:
        t = schema.incarnations
        last = c.execute(select(func.max(t.c.generation)).where(t.c.persona == persona)).scalar() or 0
        gen = last + 1
        c.execute(insert(t).values(persona=persona, generation=gen, kind=kind, host=host, vm=vm,
                                   boot_mac=boot_mac, why=why, started_at=now()))
        r = schema.persona_runtime
        c.execute(update(r).where(r.c.persona == persona).values(generation=gen))
        return gen

    def end_incarnation(self, persona: str, generation: int, evidence: str) -> None:
        t = schema.incarnations
        with self.engine.begin() as c:
            c.execute(update(t).where((t.c.persona == persona) & (t.c.generation == generation) & t.c.ended_at.is_(None))
                      .values(ended_at=now(), evidence=evidence))

    def mark_ready(self, persona: str, generation: int) -> None:
        t = schema.incarnations
        with self.engine.begin() as c:
            c.execute(update(t).where((t.c.persona == persona) & (t.c.generation == generation) & t.c.ready_at.is_(None))
                      .values(ready_at=now()))

    def live(self) -> list[Incarnation]:
        with self.engine.connect() as c:
            return [Incarnation.of(r) for r in c.execute(select(schema.incarnations).where(schema.incarnations.c.ended_at.is_(None)))]

    def current(self, persona: str) -> Incarnation | None:
        t = schema.incarnations
        with self.engine.connect() as c:
            row = c.execute(select(t).where(t.c.persona == persona).order_by(t.c.generation.desc()).limit(1)).first()
        return Incarnation.of(row) if row else None

    def history(self, persona: str, limit: int = 50) -> list[Incarnation]:
        t = schema.incarnations
        with self.engine.connect() as c:
            rows = c.execute(select(t).where(t.c.persona == persona).order_by(t.c.generation.desc()).limit(limit))
            return [Incarnation.of(r) for r in rows]

    # --- heartbeats (written by the API on the agent's behalf) ------------

    def record_heartbeat(self, persona: str, generation: int, ready: bool, stopping: bool, report: dict) -> None:
        t = schema.heartbeats
        values = dict(generation=generation, at=now(), ready=ready, stopping=stopping, report=report)
        with self.engine.begin() as c:
            if c.execute(update(t).where(t.c.persona == persona).values(**values)).rowcount == 0:
                c.execute(insert(t).values(persona=persona, **values))

    def heartbeats(self) -> dict[str, dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(schema.heartbeats)).all()
        return {r.persona: {**r._mapping, "at": aware(r.at)} for r in rows}

    # --- boot scripts -----------------------------------------------------

    def register_boot(self, mac: str, persona: str, generation: int, script: str) -> None:
        t = schema.boot_scripts
        with self.engine.begin() as c:
            c.execute(delete(t).where((t.c.mac == mac) | (t.c.persona == persona)))
            c.execute(insert(t).values(mac=mac, persona=persona, generation=generation, script=script))

    def unregister_boot(self, persona: str) -> None:
        with self.engine.begin() as c:
            c.execute(delete(schema.boot_scripts).where(schema.boot_scripts.c.persona == persona))

    def boot_script(self, mac: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(schema.boot_scripts.c.script).where(schema.boot_scripts.c.mac == mac)).scalar()

    # --- hosts ------------------------------------------------------------

    def fence_host(self, host: str, reason: str) -> None:
        t = schema.host_runtime
        with self.engine.begin() as c:
            c.execute(delete(t).where(t.c.host == host))
            c.execute(insert(t).values(host=host, state="fenced", reason=reason, since=now()))

    def clear_host(self, host: str) -> None:
        with self.engine.begin() as c:
            c.execute(delete(schema.host_runtime).where(schema.host_runtime.c.host == host))

    def fenced_hosts(self) -> dict[str, dict]:
        with self.engine.connect() as c:
            return {r.host: {"reason": r.reason, "since": aware(r.since)} for r in c.execute(select(schema.host_runtime))}

    # --- operator intents -----------------------------------------------

    def set_intent(self, persona: str, **values: Any) -> None:
        t = schema.intents
        with self.engine.begin() as c:
            if c.execute(update(t).where(t.c.persona == persona).values(at=now(), **values)).rowcount == 0:
                c.execute(insert(t).values(persona=persona, at=now(), **values))

    def intents(self) -> dict[str, dict]:
        with self.engine.connect() as c:
            return {r.persona: dict(r._mapping) for r in c.execute(select(schema.intents))}

    def clear_intent(self, persona: str, *fields: str) -> None:
        t = schema.intents
        with self.engine.begin() as c:
            if fields:
                c.execute(update(t).where(t.c.persona == persona).values(**{f: None for f in fields}))
            else:
                c.execute(delete(t).where(t.c.persona == persona))
