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
from concurrent.futures import ThreadPoolExecutor

from voe.controller import fence, start, stop
from voe.controller.context import Ctx
from voe.controller.decide import Next, Observed, decide, move_requested, silence_from
from voe.domain.inventory import Inventory
from voe.domain.lifecycle import Event, State
from voe.domain.models import Persona
from voe.errors import DriverError
from voe.store.runtime import Move, PersonaState, StaleState, now

log = logging.getLogger("voe.reconciler")


def dependencies_ready(inv: Inventory, states: dict[str, PersonaState]) -> dict[str, bool]:
    """A persona may start once every dependency it has in a group that is
    to run is running (its agent reported ready). A group that is not to
    run imposes nothing: an operator starting one member alone means it."""
    ready: dict[str, bool] = {}
    for g in inv.groups:
        if g.desired != "running":
            continue
        for member, deps in g.depends.items():
            ok = all(states.get(d) is not None and states[d].state == State.RUNNING for d in deps)
            ready[member] = ready.get(member, True) and ok
    return ready


def dependents_down(inv: Inventory, states: dict[str, PersonaState]) -> dict[str, bool]:
    """For a group stop, in reverse order: a persona may stop once every
    member that depends on it has stopped."""
    quiet = {State.STOPPED, State.WAITING, State.PENDING, State.FENCED, State.BLOCKED}
    down: dict[str, bool] = {}
    for g in inv.groups:
        for member, deps in g.depends.items():
            member_quiet = states.get(member) is None or states[member].state in quiet
            for d in deps:
                down[d] = down.get(d, True) and member_quiet
    return down


WAKE_GAP = 0.01
"""Seconds: the shortest time between two ticks woken by changes."""


class Reconciler:
    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(max_workers=ctx.timing.workers, thread_name_prefix="voe-step")
        self.busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Heartbeats missed while this controller was not running (or was
        # paused) say nothing about the personas: give them a fresh grace.
        self._grace_from = now()
        self._last_tick = time.monotonic()
        self._prepared: dict[str, float] = {}  # host -> when its BMC session was last used by _prepare

    # --- loop -------------------------------------------------------------

    def start(self) -> None:
        self.ctx.log("info", "controller", "reconciler started; resuming from the recorded states")
        self._warm_up()
        for watch in (self.ctx.switches, self.ctx.hypervisors):  # first: placements wait for their verdicts
            watch.start(self.ctx.inventory, self._stop)
        self._thread = threading.Thread(target=self._run, name="voe-reconciler", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        self.ctx.runtime.changed.set()
        if self._thread:
            self._thread.join(5)
        self.pool.shutdown(wait=wait, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            if began - self._last_tick > self.ctx.timing.heartbeat_interval * 2:
                self._grace_from = now()
                self.ctx.log("warning", "controller", f"reconciler paused {began - self._last_tick:.1f} s; "
                             "heartbeat clocks restart")
            self._last_tick = began
            self.ctx.runtime.changed.clear()  # before the tick reads: a change during it wakes the next
            try:
                self.tick()
            except Exception:  # the loop must survive anything one tick meets
                log.exception("reconciler tick failed")
            self._pause(began)

    def _pause(self, began: float) -> None:
        """Until the next tick: one period, or sooner when the runtime
        changed (a step's transition, an agent now ready), since that
        persona's next move is decided only by a tick — but never sooner
        than ``WAKE_GAP`` after the last, so a burst of changes (a level of
        a group start) does not turn the loop into a busy one."""
        changed = self.ctx.runtime.changed
        changed.wait(max(0.0, self.ctx.timing.tick - (time.monotonic() - began)))
        self._stop.wait(max(0.0, WAKE_GAP - (time.monotonic() - began)))

    def tick(self) -> None:
        ctx = self.ctx
        inv = ctx.inventory()
        states = ctx.runtime.states()
        heartbeats = ctx.runtime.heartbeats()
        intents = ctx.runtime.intents()
        deps = dependencies_ready(inv, states)
        dependents = dependents_down(inv, states)
        self._prepare(inv, states)
        t = now()
        moves: list[Move] = []
        for p in inv.personas:
            with self._busy_lock:
                if p.name in self.busy:
                    continue
            st = states.get(p.name) or PersonaState.never_started(p.name, t)
            hb = heartbeats.get(p.name)
            current_hb = hb if hb is not None and hb["generation"] == st.generation else None
            hb_at = silence_from(st.state, current_hb["at"] if current_hb else None, self._grace_from)
            intent = intents.get(p.name) or {}
            o = Observed(st, p.desired == "running", deps.get(p.name, True), move_requested(intent),
                         bool(intent.get("confirm_dead_by")), hb_at,
                         bool(current_hb and current_hb["ready"] and not current_hb["stopping"]), t,
                         dependents.get(p.name, True))
            self._look_ahead(inv, p, st, hb_at, t)
            nxt = decide(o, ctx.timing)
            if nxt is None:
                continue
            if nxt.event is not None:
                moves.append(Move(p.name, st.state, nxt.event, nxt.reason, st.generation))
            else:
                self._act(p, nxt)
        ctx.runtime.transitions(moves)

    def _look_ahead(self, inv: Inventory, p: Persona, st: PersonaState, hb_at, t) -> None:
        """A running persona half way to suspect: its devices are asked now
        (see ``crosscheck.Lookouts``); heard from again, the looks go."""
        lookouts = self.ctx.lookouts
        if st.state == State.SUSPECT:
            return  # the suspect step takes the looks
        if st.state != State.RUNNING or hb_at is None:
            lookouts.drop(p.name)
            return
        if (t - hb_at).total_seconds() <= self.ctx.timing.suspect_after / 2:
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
        cross-check, a fence) and every switch (a start's ports): log in
        and build those drivers now, in the background. Cold, a first BMC
        call in a fresh process (its I/O thread, a login) missed the 0.5 s
        cross-check, read a live BMC as silent, and sent the fence to the
        fabric first."""
        inv = self.ctx.inventory()
        hosts = inv.by_name("hosts")
        for inc in self.ctx.runtime.live():
            host = hosts.get(inc.host)
            if host is not None and host.bmc is not None and host.name not in self._prepared:
                self._prepared[host.name] = time.monotonic()
                _PREPARE.submit(_open_bmc_session, self.ctx, host)
        for sw in inv.switches:
            _PREPARE.submit(self.ctx.devices.switch, sw)

    def _prepare(self, inv: Inventory, states: dict[str, PersonaState]) -> None:
        """Ready the servers a group start reserved, while their personas
        wait for their dependencies: their switch ports configured ahead
        (see ``ports``), and a session kept open to their BMCs (logging in
        takes several round trips). Both would otherwise land on the
        level's critical path when the dependencies become ready."""
        hosts = inv.by_name("hosts")
        claims: dict[str, list[str]] = {}
        for st in states.values():
            plan = st.plan or {}
            host = hosts.get(plan.get("host") or "")
            if st.state not in RESERVING or plan.get("kind") != "physical" or host is None or host.hypervisor:
                continue
            claims.setdefault(host.name, []).append(st.persona)
            if st.state != State.WAITING or host.bmc is None:
                continue
            if time.monotonic() - self._prepared.get(host.name, float("-inf")) > PREPARE_EVERY:
                self._prepared[host.name] = time.monotonic()
                _PREPARE.submit(_open_bmc_session, self.ctx, host)
        # two group starts may have planned one server (plans are hints):
        # such a server is configured for neither until one starts there
        self.ctx.ports.reserve(self.ctx.inventory, {h: ps[0] for h, ps in claims.items() if len(ps) == 1})

    def _act(self, p: Persona, nxt: Next) -> None:
        with self._busy_lock:
            self.busy.add(p.name)
        self.pool.submit(self._step, nxt.step, p)

    def _step(self, name: str, p: Persona) -> None:
        try:
            # the tick decided on a snapshot; act only if it still holds
            if self.ctx.runtime.state_of(p.name).state != STEP_STATE[name]:
                return
            STEPS[name](self.ctx, p)
        except StaleState:
            pass
        except Exception as e:
            log.exception("step %s of %s failed", name, p.name)
            self.ctx.log("error", "controller", f"step {name} of {p.name} failed: {e!r}", persona=p.name)
            time.sleep(0.5)  # do not spin on a persistent failure
        finally:
            with self._busy_lock:
                self.busy.discard(p.name)
            self.ctx.runtime.changed.set()  # its transition's tick may have skipped it as busy


def _suspect(ctx: Ctx, p: Persona) -> None:
    """Cross-check a silent persona with its machine, then fence: what the
    machine says is logged, never taken as evidence (see ``crosscheck``)."""
    inc = ctx.runtime.current(p.name)
    seen = "no live incarnation"
    if inc is not None and inc.ended_at is None:
        host = ctx.inventory().by_name("hosts")[inc.host]
        seen = ctx.lookouts.finish(inc, host)
    ctx.runtime.transition(p.name, State.SUSPECT, Event.CONFIRM_SUSPECT, seen, host=inc.host if inc else None)


RESERVING = (State.WAITING, State.PLACING)
"""A group start's plan holds its server until the persona is placed."""
PREPARE_EVERY = 20.0  # seconds; below the IPMI driver's idle re-login, so the session stays warm
_PREPARE = ThreadPoolExecutor(max_workers=8, thread_name_prefix="voe-prepare")


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
