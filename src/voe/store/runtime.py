"""Runtime state: what each persona is doing, its incarnations, the evidence
that ended them, boot scripts, fenced hosts and operator intents; the
agents' heartbeats are kept beside it (``heartbeats``).

The reconciler is the only writer of persona states and incarnations. Two
guards live here, in the database, because they must hold whatever the code
above them gets wrong:

* a state change is a compare-and-set on the state the caller read, along an
  edge of the lifecycle table;
* a new incarnation is refused while any earlier incarnation of the persona
  has not ended with recorded evidence (``DoubleStartRefused``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from voe.domain.lifecycle import BOOT_STAGE_DONE, BootStage, Event, State, next_state
from voe.errors import VoeError
from voe.store import schema
from voe.store.db import reader
from voe.store.events import EventLog
from voe.store.heartbeats import Heartbeats
from voe.store.time import aware, now


class DoubleStartRefused(VoeError):
    """The last line of defence of the invariant: never two live incarnations."""

    def __init__(self, persona: str, live: list[int]):
        self.persona, self.live = persona, live
        super().__init__(f"refusing a new incarnation of {persona}: generation(s) {live} have not ended with evidence")


@dataclass(frozen=True)
class Move:
    """One persona's move along the lifecycle table, for ``transitions``;
    ``generation``: its incarnation's, when the move is agent-ready."""
    persona: str
    seen: State
    event: Event
    reason: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class Placed:
    """A placement to record (see ``RuntimeStore.place``); ``clear_move``:
    the move or retarget that asked for it is spent."""
    persona: str
    kind: str
    host: str
    vm: str | None
    boot_mac: str
    why: str
    clear_move: bool = False


class StaleState(VoeError):
    """Someone else moved the persona since it was read; re-read and decide again."""


class ServerTaken(StaleState):
    """A placement on a physical server that another persona's live
    incarnation holds: placed again against fresh capacity. A server boots
    one script, so the second persona would never have come up."""

    def __init__(self, persona: str, host: str, holder: str):
        self.persona, self.host, self.holder = persona, host, holder
        super().__init__(f"refusing to place {persona} on {host}: {holder} holds that server")


log = logging.getLogger("voe.store.runtime")


@dataclass(frozen=True)
class BootTarget:
    """What a MAC boots now (see ``RuntimeStore.boot_target``)."""
    script: str
    persona: str
    generation: int


@dataclass(frozen=True)
class Standing:
    """See ``RuntimeStore.standing``; ``generation`` None: never placed."""
    generation: int | None
    ended: bool
    state: State


_INC, _RT = schema.incarnations, schema.persona_runtime
_STANDING = (select(_INC.c.generation, _INC.c.ended_at, _RT.c.state)
             .select_from(_INC.outerjoin(_RT, _RT.c.persona == _INC.c.persona))
             .where(_INC.c.persona == bindparam("persona")).order_by(_INC.c.generation.desc()).limit(1))
_MOVE = (update(_RT).where((_RT.c.persona == bindparam("who")) & (_RT.c.state == bindparam("seen")))
         .values(state=bindparam("new_state"), since=bindparam("new_since"), reason=bindparam("new_reason")))
_MOVE_AND_PLAN = _MOVE.values(plan=bindparam("new_plan"))
"""A transition's write, built once: a level of a group start is hundreds
of transitions at once, and each of its steps reads its persona's state and
incarnation, and each machine its script."""
_STATE_OF = select(_RT).where(_RT.c.persona == bindparam("persona"))
_CURRENT = select(_INC).where(_INC.c.persona == bindparam("persona")).order_by(_INC.c.generation.desc()).limit(1)
_BOOT_TARGET = (select(schema.boot_scripts.c.script, schema.boot_scripts.c.persona, schema.boot_scripts.c.generation)
                .where(schema.boot_scripts.c.mac == bindparam("mac")))
_BOOT_REGISTERED = (select(schema.boot_scripts.c.generation)
                    .where((schema.boot_scripts.c.mac == bindparam("mac"))
                           & (schema.boot_scripts.c.persona == bindparam("persona"))
                           & (schema.boot_scripts.c.generation == bindparam("generation"))))
_LIVE_GENERATIONS = (select(_INC.c.generation)
                     .where((_INC.c.persona == bindparam("persona")) & _INC.c.ended_at.is_(None)))
_LAST_GENERATION = select(func.max(_INC.c.generation)).where(_INC.c.persona == bindparam("persona"))
_HOLDER_OF_SERVER = (select(_INC.c.persona)
                     .where((_INC.c.host == bindparam("host")) & (_INC.c.kind == "physical") & _INC.c.ended_at.is_(None))
                     .limit(1))
_INSERT_INCARNATION = insert(_INC)
_INSERT_BOOT_STAGE = insert(schema.boot_stages)


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
    failure: str | None = None  # why its start failed, when it did

    @classmethod
    def of(cls, row) -> Incarnation:
        m = row._mapping
        return cls(m["persona"], m["generation"], m["kind"], m["host"], m["vm"], m["boot_mac"], m["why"],
                   aware(m["started_at"]), aware(m["ready_at"]), aware(m["ended_at"]), m["evidence"], m["failure"])

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

    @classmethod
    def never_started(cls, persona: str, at: datetime | None = None) -> PersonaState:
        return cls(persona, State.STOPPED, 0, at or now(), None, None)


def _state(row) -> PersonaState:
    return PersonaState(row.persona, State(row.state), row.generation, aware(row.since), row.reason, row.plan)


class RuntimeStore:
    def __init__(self, engine: Engine, events: EventLog):
        self.engine = engine
        self.reader = reader(engine)
        self.events = events
        self.commits = events.commits  # the small writes of many steps at once, in one transaction
        # SQLite serves one controller process: a process lock makes the
        # guard's read-then-insert atomic there; PostgreSQL uses a row-level
        # advisory lock per persona (``_lock``) across controllers.
        self._guard = threading.Lock()
        # set whenever a persona's next move may have changed (a transition,
        # an agent's readiness, an operator's intent): the reconciler wakes
        # on it instead of waiting out its tick, which a failover's six
        # transitions would otherwise each pay
        self.changed = threading.Event()
        self._touched: set[str] = set()  # the personas those changes were of (see ``take_touched``)
        self._touched_lock = threading.Lock()
        self.beats = Heartbeats(engine, self.reader, on_news=self.touch)
        self.on_move: Callable[[str, State, State], None] | None = None  # told of each committed move (metrics)

    def _moved(self, persona: str, seen: State, new: State) -> None:
        if self.on_move is not None:
            self.on_move(persona, seen, new)

    def touch(self, *personas: str) -> None:
        """Say that these personas' next moves may have changed, and wake
        the reconciler."""
        with self._touched_lock:
            self._touched.update(personas)
        self.changed.set()

    def take_touched(self) -> set[str]:
        """The personas touched (by this process) since the last call: the
        reconciler decides for them between its full passes, so that a
        level of a group start moves on without every persona being read
        again at every step (see ``Reconciler.tick``)."""
        with self._touched_lock:
            touched, self._touched = self._touched, set()
        return touched

    # --- persona states -------------------------------------------------

    def states(self, personas: Iterable[str] | None = None, in_state: State | None = None) -> dict[str, PersonaState]:
        """Every persona's recorded state; ``personas``: only theirs;
        ``in_state``: only those in that state."""
        t = schema.persona_runtime
        query = select(t)
        if personas is not None:
            query = query.where(t.c.persona.in_(list(personas)))
        if in_state is not None:
            query = query.where(t.c.state == in_state.value)
        with self.reader.connect() as c:
            rows = c.execute(query).all()
        return {r.persona: _state(r) for r in rows}

    def state_of(self, persona: str) -> PersonaState:
        with self.reader.connect() as c:
            row = c.execute(_STATE_OF, {"persona": persona}).first()
        return _state(row) if row else PersonaState.never_started(persona)

    def transition(self, persona: str, seen: State, event: Event, reason: str | None = None,
                   *, host: str | None = None, data: dict | None = None, plan: Any = ...) -> State:
        """Move along one edge of the lifecycle table, from the state the
        caller saw; logged in the same transaction."""
        new = self.commits.run(lambda c: self._move(c, persona, seen, event, reason, host, data, plan))
        self.touch(persona)
        self._moved(persona, seen, new)
        return new

    def transitions(self, moves: Sequence[Move]) -> list[Move]:
        """Many personas' moves in one transaction (a tick's: a level of a
        group start becomes placeable at once, and one transaction each
        queued the reconciler's loop behind every other writer, once per
        persona). A move whose persona is no longer in the state its
        caller saw is skipped, as ``transition`` refuses it; the moves
        made are returned."""
        made: list[Move] = []
        if not moves:
            return made  # most ticks: no write transaction to queue for
        with self.engine.begin() as c:
            for m in sorted(moves, key=lambda m: m.persona):  # PostgreSQL's persona locks, always in one order
                try:
                    self._move(c, m.persona, m.seen, m.event, m.reason)  # refuses before any write
                    made.append(m)
                except StaleState:
                    pass
            ready = [m for m in made if m.event == Event.AGENT_READY]
            for m in ready:
                self._mark_ready(c, m.persona, m.generation)
        if made:
            self.touch(*(m.persona for m in made))
        for m in made:
            self._moved(m.persona, m.seen, next_state(m.seen, m.event))
        return made

    def _move(self, c: Connection, persona: str, seen: State, event: Event, reason: str | None = None,
              host: str | None = None, data: dict | None = None, plan: Any = ...) -> State:
        new = next_state(seen, event)
        values: dict[str, Any] = {"state": new.value, "since": now(), "reason": reason}
        if plan is not ...:
            values["plan"] = plan
        t = schema.persona_runtime
        self._lock(c, persona)
        n = c.execute(_MOVE if plan is ... else _MOVE_AND_PLAN,
                      {"who": persona, "seen": seen.value, **{f"new_{k}": v for k, v in values.items()}}).rowcount
        if n == 0:
            exists = c.execute(select(t.c.state).where(t.c.persona == persona)).scalar()
            if exists is not None or seen != State.STOPPED:
                raise StaleState(f"{persona} is {exists}, not {seen.value}")
            c.execute(insert(t).values(persona=persona, **values))
        if event == Event.FAILED and seen in (State.POWERING_ON, State.BOOTING):
            inc = schema.incarnations
            c.execute(update(inc).where((inc.c.persona == persona) & inc.c.ended_at.is_(None) & inc.c.failure.is_(None))
                      .values(failure=reason or "its start failed"))
        msg = f"{persona}: {seen.value} → {new.value} ({event.value})" + (f": {reason}" if reason else "")
        self.events.append("warning" if new in (State.SUSPECT, State.FENCING) else
                           "critical" if new == State.BLOCKED else "info",
                           "transition", msg, persona=persona, host=host,
                           data={"from": seen.value, "to": new.value, "event": event.value, **(data or {})}, conn=c)
        return new

    def set_plans(self, plans: dict[str, dict | None]) -> None:
        """A group start's plan for each member, in one transaction: one
        each would queue the request for the store's writer once per member."""
        t = schema.persona_runtime
        with self.engine.begin() as c:
            for persona, plan in sorted(plans.items()):
                if c.execute(update(t).where(t.c.persona == persona).values(plan=plan)).rowcount == 0:
                    c.execute(insert(t).values(persona=persona, state=State.STOPPED.value, plan=plan))
        self.touch(*plans)

    @staticmethod
    def _lock(c: Connection, persona: str) -> None:
        if c.dialect.name == "postgresql":
            c.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": "persona:" + persona})

    # --- incarnations ---------------------------------------------------

    def begin_incarnation(self, persona: str, kind: str, host: str, vm: str | None, boot_mac: str, why: str) -> int:
        """Record a new incarnation, refusing while an earlier one is live."""
        outcome = self.place([Placed(persona, kind, host, vm, boot_mac, why)], transition=False)[persona]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def place(self, placements: list[Placed], transition: bool = True) -> dict[str, int | VoeError]:
        """Record each placement's new incarnation and (``transition``) its
        move from placing to powering-on, all in one transaction: a level of
        a group start is placed at once, and a transaction per write queued
        the placement behind every other writer twice per persona. Each
        placement is refused, alone, while an earlier incarnation of its
        persona is live (``DoubleStartRefused``), when its persona is no
        longer placing (``StaleState``), or when its physical server is held
        by another persona's live incarnation (``ServerTaken``). Returns
        each persona's generation, or why it was refused."""
        outcome: dict[str, int | VoeError] = {}
        with self._guard, self.engine.begin() as c:
            for pl in sorted(placements, key=lambda pl: pl.persona):  # the persona locks in one order (``transitions``)
                self._lock(c, pl.persona)
                live = [r.generation for r in c.execute(_LIVE_GENERATIONS, {"persona": pl.persona})]
                if live:
                    outcome[pl.persona] = DoubleStartRefused(pl.persona, live)
                    continue
                holder = c.execute(_HOLDER_OF_SERVER, {"host": pl.host}).scalar() if pl.kind == "physical" else None
                if holder is not None:
                    outcome[pl.persona] = ServerTaken(pl.persona, pl.host, holder)
                    continue
                try:
                    with c.begin_nested():
                        gen = self._insert_incarnation(c, pl.persona, pl.kind, pl.host, pl.vm, pl.boot_mac, pl.why)
                        if transition:
                            if pl.clear_move:
                                c.execute(update(schema.intents).where(schema.intents.c.persona == pl.persona)
                                          .values(move_kind=None, move_host=None))
                            self._move(c, pl.persona, State.PLACING, Event.PLACED, pl.why, pl.host,
                                       {"generation": gen, "kind": pl.kind, "host": pl.host}, None)
                    outcome[pl.persona] = gen
                except StaleState as e:
                    outcome[pl.persona] = e
                except IntegrityError:
                    # another writer recorded the same generation first (SQLite's
                    # unique index is the arbiter where there is no row lock)
                    outcome[pl.persona] = DoubleStartRefused(pl.persona, [-1])
        for refused in outcome.values():
            if isinstance(refused, DoubleStartRefused):
                self.events.append("critical", "safety",
                                   f"refused a second incarnation of {refused.persona}: {refused.live} still live",
                                   persona=refused.persona)
            elif isinstance(refused, ServerTaken):
                self.events.append("error", "controller", str(refused), persona=refused.persona, host=refused.host)
        if transition:
            self.touch(*outcome)
            for persona, generation in outcome.items():
                if isinstance(generation, int):
                    self._moved(persona, State.PLACING, State.POWERING_ON)
        return outcome

    def _insert_incarnation(self, c: Connection, persona: str, kind: str, host: str, vm: str | None,
                            boot_mac: str, why: str) -> int:
        last = c.execute(_LAST_GENERATION, {"persona": persona}).scalar() or 0
        gen = last + 1
        c.execute(_INSERT_INCARNATION, dict(persona=persona, generation=gen, kind=kind, host=host, vm=vm,
                                            boot_mac=boot_mac, why=why, started_at=now()))
        r = schema.persona_runtime
        c.execute(update(r).where(r.c.persona == persona).values(generation=gen))
        return gen

    def end_incarnation(self, persona: str, generation: int, evidence: str, failure: str | None = None) -> None:
        """``failure``: why its start failed, when it ended that way."""
        t = schema.incarnations
        values: dict[str, Any] = {"ended_at": now(), "evidence": evidence}
        if failure is not None:
            values["failure"] = failure
        self.commits.run(lambda c: c.execute(
            update(t).where((t.c.persona == persona) & (t.c.generation == generation) & t.c.ended_at.is_(None))
            .values(**values)))

    def mark_ready(self, persona: str, generation: int) -> None:
        with self.engine.begin() as c:
            self._mark_ready(c, persona, generation)

    @staticmethod
    def _mark_ready(c: Connection, persona: str, generation: int) -> None:
        t = schema.incarnations
        c.execute(update(t).where((t.c.persona == persona) & (t.c.generation == generation) & t.c.ready_at.is_(None))
                  .values(ready_at=now()))

    def live(self, hosts: Iterable[str] | None = None) -> list[Incarnation]:
        """The incarnations not ended; ``hosts``: only those on these hosts."""
        t = schema.incarnations
        where = t.c.ended_at.is_(None)
        if hosts is not None:
            where &= t.c.host.in_(list(hosts))
        with self.reader.connect() as c:
            return [Incarnation.of(r) for r in c.execute(select(t).where(where))]

    def current(self, persona: str) -> Incarnation | None:
        with self.reader.connect() as c:
            row = c.execute(_CURRENT, {"persona": persona}).first()
        return Incarnation.of(row) if row else None

    def standing(self, persona: str) -> Standing:
        """What a heartbeat is answered from, in one read: the persona's
        newest incarnation (generation, ended or not) and its state."""
        with self.reader.connect() as c:
            row = c.execute(_STANDING, {"persona": persona}).first()
        if row is None:
            return Standing(None, False, State.STOPPED)
        return Standing(row.generation, row.ended_at is not None,
                        State(row.state) if row.state is not None else State.STOPPED)

    def latest(self, personas: Iterable[str] | None = None) -> dict[str, Incarnation]:
        """Every persona's newest incarnation (``personas``: theirs only), in one read."""
        t = schema.incarnations
        newest = select(t.c.persona, func.max(t.c.generation).label("g"))
        if personas is not None:
            newest = newest.where(t.c.persona.in_(list(personas)))
        newest = newest.group_by(t.c.persona).subquery()
        with self.reader.connect() as c:
            rows = c.execute(select(t).join(newest, (t.c.persona == newest.c.persona) & (t.c.generation == newest.c.g)))
            return {r.persona: Incarnation.of(r) for r in rows}

    def history(self, persona: str, limit: int = 50) -> list[Incarnation]:
        t = schema.incarnations
        with self.reader.connect() as c:
            rows = c.execute(select(t).where(t.c.persona == persona).order_by(t.c.generation.desc()).limit(limit))
            return [Incarnation.of(r) for r in rows]

    # --- boot scripts -----------------------------------------------------

    def register_boot(self, mac: str, persona: str, generation: int, script: str,
                      conn: Connection | None = None) -> None:
        """The script a MAC boots; in ``conn``'s transaction when given."""
        t, stages = schema.boot_scripts, schema.boot_stages
        with nullcontext(conn) if conn is not None else self.engine.begin() as c:
            c.execute(delete(t).where((t.c.mac == mac) | (t.c.persona == persona)))
            c.execute(insert(t).values(mac=mac, persona=persona, generation=generation, script=script))
            c.execute(delete(stages).where((stages.c.persona == persona) & (stages.c.generation < generation)))

    def boot_registered(self, mac: str, persona: str, generation: int, conn: Connection) -> bool:
        """Whether ``mac`` boots that generation of ``persona`` already."""
        return conn.execute(_BOOT_REGISTERED, {"mac": mac, "persona": persona, "generation": generation}).first() \
            is not None

    def unregister_boot(self, persona: str, generation: int) -> None:
        """Only that generation's script: a late release must not take its
        replacement's."""
        t = schema.boot_scripts
        self.commits.run(lambda c: c.execute(delete(t).where((t.c.persona == persona) & (t.c.generation == generation))))

    def boot_target(self, mac: str) -> BootTarget | None:
        """The script ``mac`` boots now, and whose incarnation it starts."""
        with self.reader.connect() as c:
            row = c.execute(_BOOT_TARGET, {"mac": mac}).first()
        return BootTarget(row.script, row.persona, row.generation) if row else None

    # --- boot stages ------------------------------------------------------

    def record_boot_stage(self, persona: str, generation: int, stage: BootStage) -> bool:
        """The first time an incarnation's machine reached ``stage``
        (fetched its script, its kernel, its root; its agent its
        configuration), logged; later times change nothing. Returns
        whether it was the first."""
        def record(c: Connection) -> bool:
            c.execute(_INSERT_BOOT_STAGE, {"persona": persona, "generation": generation, "stage": stage, "at": now()})
            self.events.append("info", "boot", f"{persona} generation {generation}: {BOOT_STAGE_DONE[stage]}",
                               persona=persona, data={"generation": generation, "stage": stage}, conn=c)
            return True

        try:
            return self.commits.run(record)
        except IntegrityError:
            return False  # the stage's row is there already: its key refuses a second

    def boot_stages(self, personas: Iterable[str]) -> dict[str, dict[int, dict[str, datetime]]]:
        """persona -> generation -> stage -> when, for these personas."""
        t = schema.boot_stages
        out: dict[str, dict[int, dict[str, datetime]]] = {}
        names = list(personas)
        if not names:
            return out
        with self.reader.connect() as c:
            for r in c.execute(select(t).where(t.c.persona.in_(names))):
                out.setdefault(r.persona, {}).setdefault(r.generation, {})[r.stage] = aware(r.at)
        return out

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
        with self.reader.connect() as c:
            return {r.host: {"reason": r.reason, "since": aware(r.since)} for r in c.execute(select(schema.host_runtime))}

    # --- operator intents -----------------------------------------------

    def set_intent(self, persona: str, **values: Any) -> None:
        t = schema.intents
        with self.engine.begin() as c:
            if c.execute(update(t).where(t.c.persona == persona).values(at=now(), **values)).rowcount == 0:
                c.execute(insert(t).values(persona=persona, at=now(), **values))
        self.touch(persona)

    def intents(self) -> dict[str, dict]:
        with self.reader.connect() as c:
            return {r.persona: dict(r._mapping) for r in c.execute(select(schema.intents))}

    def clear_intent(self, persona: str, *fields: str) -> None:
        t = schema.intents
        with self.engine.begin() as c:
            if fields:
                c.execute(update(t).where(t.c.persona == persona).values(**{f: None for f in fields}))
            else:
                c.execute(delete(t).where(t.c.persona == persona))
        self.touch(persona)

