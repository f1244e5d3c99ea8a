"""The reconciler: the only writer of runtime state.

Each tick it reads desired state (inventory), observed state (runtime,
heartbeats, intents) and asks ``decide`` what each persona needs next.
Immediate transitions are written at once; steps that call drivers run in a
worker pool, at most one per persona, so one slow BMC never holds up the
loop. Everything a step does is recorded before it is done, so a controller
killed at any point resumes from the persisted states.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import InterfaceError, OperationalError

from voe.controller import fence, start, stop
from voe.controller.context import Ctx
from voe.controller.decide import UNREAD, Next, Observed, decide, move_requested, silence_from
from voe.controller.dependencies import Dependencies
from voe.controller.retention import EventPruner
from voe.controller.timing import CONTROLLER_QUIET
from voe.domain.inventory import Inventory
from voe.domain.lifecycle import BEATING, BOOT_STAGES, RESERVING, STARTING, Event, State
from voe.domain.models import Persona, Switch
from voe.errors import DriverError
from voe.store.heartbeats import RELAY_EVERY
from voe.store.leadership import Deposed, act_for_term
from voe.store.runtime import Move, PersonaState, StaleState
from voe.store.time import aware, now

log = logging.getLogger("voe.reconciler")


WAKE_GAP = 0.01
"""Seconds: the shortest time between two ticks woken by changes."""
FULL_PASS_SHARE = 4
"""A full pass (every persona read and decided) comes at most once per
this many times its own CPU, and at least once per ``Timing.tick``: with a
handful of personas every tick is one; with thousands, passes back to back
would leave the steps they start a fraction of the interpreter. Its CPU,
not its time: a pass that queued for the store behind a large apply cost
nothing, and counted by the clock it would put off the next pass, in which
the reconciler sees the new datacenter. Between them, ticks decide only for
the personas whose rows changed (see ``RuntimeStore.take_touched``)."""
QUIET_RELAY = 3 * RELAY_EVERY
"""Seconds without a relay row from a controller after which its agents'
beats are taken for held up (see ``Reconciler._grace_for``)."""
FULL_PASSES_PER_BEAT = 5
"""Nor more often than this many times per heartbeat interval agents are
told (``pacing``): what only a full pass decides, from time alone (a
silence, a timeout, a retry due), is then late by a fifth of a beat at
most, which at the default quarter-second beat is one tick."""


class Reconciler:
    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Heartbeats missed while this controller was not running (or was
        # paused) say nothing about the personas: give them a fresh grace.
        self._grace_from = now()
        self._grace_via: dict[str, datetime] = {}  # a relaying controller -> a later grace for its agents
        self._beats_arrive = threading.Event()
        self._beats_arrive.set()
        self._last_tick = time.monotonic()
        self._prepared: dict[str, float] = {}  # host -> when its BMC session was last used by _prepare
        self._starts_since: float | None = None  # since when personas have been starting without a lull
        self._inv: Inventory | None = None  # the inventory of the last tick, and its dependency graph
        self._deps: Dependencies | None = None
        self._states: dict[str, PersonaState] = {}  # as the last full pass read them, and touched since
        self._next_full = 0.0  # monotonic time when the next full pass is due
        self._full_every = ctx.timing.tick  # seconds between full passes, lately
        self.cpu_clock = time.thread_time  # the CPU a tick costs, which spaces full passes
        self._store_lost: float | None = None  # monotonic: since when the store has not answered
        self.leads: Callable[[], bool] = lambda: True  # whether this controller may act now (``Campaign.leads``)

    # --- loop -------------------------------------------------------------

    def hear_beats_from_now(self) -> None:
        """Heartbeat silences count from now: beats could not reach this
        controller before (it was starting, or its agent service was)."""
        self._beats_arrive.set()
        self._grace_from = now()

    def hear_no_beats_yet(self) -> None:
        """Beats cannot arrive until ``hear_beats_from_now`` (an agent
        service still starting): until then no silence is counted."""
        self._beats_arrive.clear()

    def lead(self, term: int, previous: str | None = None) -> None:
        """Start acting as the leader of ``term``, after ``previous``:
        every write of this reconciler's threads carries the term (see
        ``store.leadership``). Silences count from the beats every
        controller relayed since this one has heard them whole, but the
        agents whose last beat came through the previous leader have a
        grace from now: its last beats never reached the relay, and its
        agents beat to another controller only from its end."""
        self.ctx.term = term
        if previous is not None:
            self._grace_via = {previous: now()}
        act_for_term(term)  # the caller's thread starts the first steps (``_warm_up``)
        try:
            self.start()
        finally:
            act_for_term(None)

    def start(self) -> None:
        self._grace_from = self.ctx.runtime.beats.heard_whole_since() or now()
        self._last_tick = time.monotonic()
        term = f" as the leader of term {self.ctx.term}" if self.ctx.term is not None else ""
        self.ctx.log("info", "controller", f"reconciler started{term}; resuming from the recorded states")
        self._warm_up()
        acting = self.ctx.workers.acting
        for watch in (self.ctx.switches, self.ctx.hypervisors):  # first: placements wait for their verdicts
            watch.start(self.ctx.inventory, self._stop, acting)
        EventPruner(self.ctx.services.events, self.ctx.retention, self.ctx.log).start(self._stop)
        self._thread = threading.Thread(target=acting(self._run), name="voe-reconciler", daemon=True)
        self._thread.start()
        self.ctx.metrics.leader = True

    def stop(self, wait: bool = True) -> None:
        self.ctx.metrics.leader = False
        self._stop.set()
        self.ctx.runtime.changed.set()
        if self._thread:
            self._thread.join(5)
        self.ctx.workers.shutdown(wait)
        self.ctx.devices.close()  # sessions logged out, the power process ended

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if not self._beats_arrive.is_set():
                    self._grace_from = now()
                elif began - self._last_tick > max(self.ctx.pace.interval, self._full_every) * 2:
                    self._grace_from = now()
                    self.ctx.log("warning", "controller", f"reconciler paused {began - self._last_tick:.1f} s; "
                                 "heartbeat clocks restart")
                self._last_tick = began
                self.ctx.runtime.changed.clear()  # before the tick reads: a change during it wakes the next
                with self.ctx.metrics.ticks.time():
                    self.tick()
                if self._store_lost is not None:
                    self.ctx.log("warning", "controller", f"the store answers again after "
                                 f"{time.monotonic() - self._store_lost:.1f} s; heartbeat clocks restart")
                    self._store_lost = None
            except Deposed as e:  # its campaign stops this loop at once
                log.warning("%s", e)
            except (OperationalError, InterfaceError) as e:
                self._lost_the_store(e)
                continue
            except Exception:  # the loop must survive anything one tick meets
                log.exception("reconciler tick failed")
                self._next_full = 0.0  # what it had taken to decide is decided by a full pass
            self._pause(began)

    def _grace_for(self, beat: dict | None, t: datetime) -> datetime:
        """From when a silence may count for a persona whose newest beat is
        ``beat``, at ``t``: this controller's grace (see ``lead``), or later when the
        beat came through the previous leader, or through a follower whose
        relay has gone quiet (paused, cut off): its agent service answers
        their beats for ``CONTROLLER_QUIET`` more, into a pipe nobody reads,
        before they beat to another controller."""
        via = beat.get("via") if beat is not None else None
        if via is None:
            return self._grace_from
        moving = timedelta(seconds=CONTROLLER_QUIET + self.ctx.pace.interval)  # an agent's move to another
        took_over = self._grace_via.get(via)
        if took_over is not None and t - took_over < moving:
            return max(self._grace_from, took_over)
        relayed = self.ctx.runtime.beats.relayed_at(via)
        if relayed is not None and (t - relayed).total_seconds() > QUIET_RELAY:
            return max(self._grace_from, relayed + moving)
        return self._grace_from

    def _lost_the_store(self, e: Exception) -> None:
        """The store does not answer (restarting, the connection dropped):
        nothing can be decided or recorded, and agents cannot beat (their
        answers come from it), so silences count again from when it
        answers; its ticks are tried every ``STORE_RETRY`` until then."""
        if self._store_lost is None:
            self._store_lost = time.monotonic()
            log.warning("the store does not answer (%s); trying again every %g s",
                        str(e).splitlines()[0], STORE_RETRY)
        self._grace_from = now()
        self._next_full = 0.0
        self._stop.wait(STORE_RETRY)

    def _pause(self, began: float) -> None:
        """Until the next full pass is due, or sooner when the runtime
        changed (a step's transition, an agent now ready), since that
        persona's next move is decided only by a tick — but never sooner
        than ``WAKE_GAP`` after the last, so a burst of changes (a level of
        a group start) does not turn the loop into a busy one."""
        changed = self.ctx.runtime.changed
        changed.wait(max(0.0, self._next_full - time.monotonic()))
        self._stop.wait(max(0.0, WAKE_GAP - (time.monotonic() - began)))

    def tick(self) -> None:
        """Decide for every persona (a full pass: when one is due, or the
        inventory changed), else only for those touched since the last
        tick and their neighbours in the dependency graph. Time alone moves
        a persona only in a full pass (a silence growing into suspicion, a
        retry coming due): at most ``Timing.tick`` late at small scale."""
        ctx = self.ctx
        inv = ctx.inventory()
        touched = ctx.runtime.take_touched()  # before the reads: a touch during them is read next tick
        began, cpu_began = time.monotonic(), self.cpu_clock()
        full = inv is not self._inv or began >= self._next_full
        if inv is not self._inv:
            self._inv, self._deps = inv, Dependencies(inv)
            self._warm_switches(inv)
        deps = self._deps
        if full:
            self._states = ctx.runtime.states()
            personas = inv.personas
        elif touched:
            fresh = ctx.runtime.states(touched)
            for name in touched:
                if name in fresh:
                    self._states[name] = fresh[name]
                else:
                    self._states.pop(name, None)
            by_name = inv.by_name("personas")
            personas = [by_name[n] for n in sorted(deps.neighbours(touched)) if n in by_name]
        else:
            return
        states = self._states
        heartbeats = ctx.runtime.beats.newest()
        intents = ctx.runtime.intents()
        if full:
            self._prepare(inv, states)
            ctx.pace.follow(sum(1 for st in states.values() if st.state in BEATING))
        t = now()
        progress = self._boot_progress(personas, states, t)
        moves: list[Move] = []
        for p in personas:
            with self._busy_lock:
                if p.name in self.busy:
                    continue
            st = states.get(p.name) or PersonaState.never_started(p.name, t)
            hb = heartbeats.get(p.name)
            current_hb = hb if hb is not None and hb["generation"] == st.generation else None
            hb_at = silence_from(st.state, current_hb["at"] if current_hb else None, self._grace_for(current_hb, t))
            beat = ctx.pace.interval_for(current_hb.get("told") if current_hb else None)
            intent = intents.get(p.name) or {}
            stage, host = progress.get(p.name, (UNREAD, None))
            retry_at = aware(intent.get("retry_at"))
            o = Observed(st, p.desired == "running", deps.ready(p.name, states), move_requested(intent),
                         bool(intent.get("confirm_dead_by")), hb_at,
                         bool(current_hb and current_hb["ready"] and not current_hb["stopping"]), t,
                         deps.dependents_down(p.name, states), beat, stage, host,
                         retry_at is not None and retry_at > st.since)
            self._look_ahead(inv, p, st, hb_at, t, beat)
            nxt = decide(o, ctx.timing)
            if nxt is None:
                continue
            if nxt.event is not None:
                moves.append(Move(p.name, st.state, nxt.event, nxt.reason, st.generation))
            else:
                self._act(p, nxt)
        ctx.runtime.transitions(moves)
        if full:
            self._full_every = max(ctx.timing.tick, FULL_PASS_SHARE * (self.cpu_clock() - cpu_began),
                                   ctx.pace.interval / FULL_PASSES_PER_BEAT)
            self._next_full = began + self._full_every

    def _boot_progress(self, personas: list[Persona], states: dict[str, PersonaState],
                       t: datetime) -> dict[str, tuple[str | None, str | None]]:
        """For each persona booting longer than a boot timeout allows: the
        last boot stage its incarnation reached (None: none), and its host.
        Read only then: most ticks read nothing."""
        timing = self.ctx.timing
        patience = min(timing.boot_script_timeout, timing.boot_timeout)
        late = [p.name for p in personas if (st := states.get(p.name)) is not None and st.state == State.BOOTING
                and (t - st.since).total_seconds() > patience]
        if not late:
            return {}
        stages = self.ctx.runtime.boot_stages(late)
        out: dict[str, tuple[str | None, str | None]] = {}
        for name in late:
            reached = stages.get(name, {}).get(states[name].generation, {})
            last = next((s for s in reversed(BOOT_STAGES) if s in reached), None)
            inc = self.ctx.runtime.current(name)
            out[name] = (last, inc.host if inc is not None else None)
        return out

    def _look_ahead(self, inv: Inventory, p: Persona, st: PersonaState, hb_at, t, beat: float) -> None:
        """A running persona half way to suspect: its devices are asked now
        (see ``crosscheck.Lookouts``); heard from again, the looks go."""
        lookouts = self.ctx.lookouts
        if st.state == State.SUSPECT:
            return  # the suspect step takes the looks
        if st.state != State.RUNNING or hb_at is None:
            lookouts.drop(p.name)
            return
        if (t - hb_at).total_seconds() <= beat * (self.ctx.timing.heartbeat_misses + 1) / 2:
            lookouts.drop(p.name)
            return
        if lookouts.holds(p.name, st.generation):
            return  # asked already: no store read per tick while it stays silent
        inc = self.ctx.runtime.current(p.name)
        if inc is not None and inc.ended_at is None and inc.generation == st.generation:
            host = inv.by_name("hosts").get(inc.host)
            if host is not None:
                lookouts.begin(inc, host)

    def _warm_up(self) -> None:
        """A controller just started, perhaps after a crash mid-failover,
        will next need the BMCs of the machines that run personas (a
        cross-check, a fence): log in now, in the background (its first tick
        builds the switches' drivers: ``_warm_switches``). Cold, a first BMC
        call in a fresh process (its I/O thread, a login) can miss the short
        cross-check, read a live BMC as silent, and send the fence to the
        fabric first."""
        inv = self.ctx.inventory()
        hosts = inv.by_name("hosts")
        for inc in self.ctx.runtime.live():
            host = hosts.get(inc.host)
            if host is not None and host.bmc is not None and host.name not in self._prepared:
                self._prepared[host.name] = time.monotonic()
                self.ctx.workers.prepare.submit(_open_bmc_session, self.ctx, host)

    def _warm_switches(self, inv: Inventory) -> None:
        """Every switch's driver built, and its ports read, in the
        background when the switch appears (or changes), not by the first
        start that writes its ports: an SNMP engine takes tens of
        milliseconds to build, and a first group start would build every
        switch's on its critical path. Drivers already built
        are found in the cache, switches already read are not read again."""
        for sw in inv.switches:
            self.ctx.workers.prepare.submit(self._warm_switch, inv, sw)

    def _warm_switch(self, inv: Inventory, sw: Switch) -> None:
        self.ctx.devices.switch(sw)
        self.ctx.switches.await_verdicts([sw.name])  # one found down is read when it is back (``restore``)
        self.ctx.ports.learn_ahead(inv, sw.name)

    def _prepare(self, inv: Inventory, states: dict[str, PersonaState]) -> None:
        """Ready the servers and hypervisor hosts a group start reserved,
        while their personas wait for their dependencies: their switch
        ports configured ahead (see ``ports``), and a session kept open to
        the servers' BMCs (logging in takes several round trips). Both
        would otherwise land on the level's critical path when the
        dependencies become ready.

        Starts come first: while any persona is being placed or powered
        on, nothing is prepared, for up to ``PREPARE_DEFERS`` seconds (so
        a long run of starts cannot starve it): the SNMP work of preparing
        hundreds of servers holds the interpreter in turns that each of a
        placement's store statements would wait for."""
        if any(st.state in STARTING for st in states.values()):
            if self._starts_since is None:
                self._starts_since = time.monotonic()
            if time.monotonic() - self._starts_since < PREPARE_DEFERS:
                return
        else:
            self._starts_since = None
        hosts = inv.by_name("hosts")
        claims: dict[str, list[tuple[str, str]]] = {}
        for st in states.values():
            plan = st.plan or {}
            host, kind = hosts.get(plan.get("host") or ""), plan.get("kind")
            if st.state not in RESERVING or host is None or (kind == "vm") != bool(host.hypervisor):
                continue
            claims.setdefault(host.name, []).append((st.persona, kind))
            if kind != "physical" or st.state != State.WAITING or host.bmc is None:
                continue
            if time.monotonic() - self._prepared.get(host.name, float("-inf")) > PREPARE_EVERY:
                self._prepared[host.name] = time.monotonic()
                self.ctx.workers.prepare.submit(_open_bmc_session, self.ctx, host)
        # two group starts may have planned one server (plans are hints):
        # such a server is configured for neither until one starts there
        self.ctx.ports.reserve(self.ctx.inventory, {h: tuple(sorted(ps)) for h, ps in claims.items()
                                                    if len(ps) == 1 or ps[0][1] == "vm"})

    def _act(self, p: Persona, nxt: Next) -> None:
        with self._busy_lock:
            self.busy.add(p.name)
        workers = self.ctx.workers
        (workers.placements if nxt.step == "place" else workers.steps).submit(self._step, nxt.step, p)

    def _step(self, name: str, p: Persona) -> None:
        try:
            # the tick decided on a snapshot; act only if it still holds
            if not self.leads() or self.ctx.runtime.state_of(p.name).state != STEP_STATE[name]:
                return
            STEPS[name](self.ctx, p)
        except (StaleState, Deposed):
            pass
        except Exception as e:
            log.exception("step %s of %s failed", name, p.name)
            self.ctx.log("error", "controller", f"step {name} of {p.name} failed: {e!r}", persona=p.name)
            time.sleep(0.5)  # do not spin on a persistent failure
        finally:
            with self._busy_lock:
                self.busy.discard(p.name)
            self.ctx.runtime.touch(p.name)  # its transition's tick may have skipped it as busy


def _suspect(ctx: Ctx, p: Persona) -> None:
    """Cross-check a silent persona with its machine, then fence: what the
    machine says is logged, never taken as evidence (see ``crosscheck``)."""
    inc = ctx.runtime.current(p.name)
    seen = "no live incarnation"
    if inc is not None and inc.ended_at is None:
        host = ctx.inventory().by_name("hosts")[inc.host]
        seen = ctx.lookouts.finish(inc, host)
    ctx.runtime.transition(p.name, State.SUSPECT, Event.CONFIRM_SUSPECT, seen, host=inc.host if inc else None)


STORE_RETRY = 0.25
"""Seconds between the ticks tried while the store does not answer."""
PREPARE_EVERY = 20.0  # seconds; below the IPMI driver's idle re-login, so the session stays warm
PREPARE_DEFERS = 0.5
"""Seconds preparation waits at most for a lull in starts: longer than a
level's placement batch, short enough that the level after the roots is
prepared before its dependencies are ready."""


def _open_bmc_session(ctx: Ctx, host) -> None:
    try:
        ctx.devices.power(host).power_state(retry=False)
    except DriverError:
        pass  # only a head start: the start itself reports what fails


def _settle(ctx: Ctx, p: Persona) -> None:
    fence.settle(ctx, p, ctx.inventory().by_name("personas")[p.name].desired == "running")


def _confirm_dead(ctx: Ctx, p: Persona) -> None:
    intent = ctx.runtime.intents().get(p.name) or {}
    fence.confirm_dead(ctx, p, intent.get("confirm_dead_by") or "?", intent.get("confirm_dead_reason") or "")


STEP_STATE = {
    "place": State.PLACING,
    "power-on": State.POWERING_ON,
    "stop": State.STOPPING,
    "suspect": State.SUSPECT,
    "fence": State.FENCING,
    "settle": State.FENCED,
    "confirm-dead": State.BLOCKED,
}

STEPS = {
    "place": start.place,
    "power-on": start.power_on,
    "stop": stop.stop,
    "suspect": _suspect,
    "fence": fence.fence,
    "settle": _settle,
    "confirm-dead": _confirm_dead,
}
