"""What to do next for one persona, given what the controller knows: a pure
function, so the reconciler's judgement can be tested without hardware.

The answer is either an immediate transition (an event) or a step to run in a
worker (a name), never both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from voe.controller.timing import Timing
from voe.domain.lifecycle import Event, State
from voe.store.runtime import Incarnation, PersonaState

UNREAD = "unread"
"""``Observed.boot_stage`` when the reconciler did not read the stages."""
NEVER_ASKED = "never asked for its boot script"

NEVER_STARTED = "never started"
"""How a start that failed before anything could boot it is recorded (see
``start._not_started``): it is tried again after ``NEVER_STARTED_RETRY``,
not ``pending_retry`` — what failed (a switch that stopped answering) is out
of placement by then, and the persona may be a failover's replacement."""
NEVER_STARTED_RETRY = 0.3

RETARGET = "retarget"
"""The move intent a fence or a failed start leaves for the next placement
(another host, a fenced one as a last resort). It steers that placement
only: unlike an operator's move it never asks to stop an incarnation."""


def move_requested(intent: dict) -> bool:
    """Whether an operator asked to move the persona (`voe persona move`):
    a running incarnation is then stopped and placed again. A retarget
    left behind by a controller killed between recording a replacement's
    incarnation and clearing the intent must not stop that replacement."""
    return intent.get("move_kind") not in (None, RETARGET)


def silence_from(state: State, beat_at: datetime | None, grace_from: datetime) -> datetime | None:
    """From when a persona counts as silent: its current generation's last
    beat, but never before ``grace_from`` (when this controller began
    hearing beats: those missed while it was not running, or was paused,
    say nothing about the persona). The grace is no beat, though: a
    persona already suspect resumes only on a beat it really sent (a
    controller killed just after suspecting it must not, on restart, read
    its own grace as the persona's recovery and wait out another second)."""
    if state == State.SUSPECT:
        return beat_at
    if beat_at is not None:
        return max(beat_at, grace_from)
    return grace_from if state == State.RUNNING else None


@dataclass(frozen=True)
class Observed:
    state: PersonaState
    desired_running: bool
    deps_ready: bool
    move_requested: bool
    confirm_dead_requested: bool
    heartbeat_at: datetime | None  # of the current generation
    heartbeat_ready: bool
    now: datetime
    dependents_down: bool = True  # every member that needs this one is stopped
    beat_interval: float | None = None  # the interval this persona's agent beats by (see ``pacing``); None: the timing's
    boot_stage: str | None = UNREAD  # the last boot stage its incarnation reached (None: none yet)
    host: str | None = None  # where its incarnation runs, when the boot stage was read
    retry_requested: bool = False  # an operator started it again since it failed


@dataclass(frozen=True)
class Next:
    event: Event | None = None
    step: str | None = None
    reason: str | None = None


def decide(o: Observed, t: Timing) -> Next | None:
    s = o.state.state
    age_in_state = (o.now - o.state.since).total_seconds()
    hb_age = (o.now - o.heartbeat_at).total_seconds() if o.heartbeat_at else None
    beat = o.beat_interval or t.heartbeat_interval
    suspect_after = beat * (t.heartbeat_misses + 1)
    wants_down = not o.desired_running or o.move_requested

    if s == State.STOPPED:
        if not o.desired_running:
            return None
        if not o.deps_ready:
            return Next(Event.DEPENDENCIES_PENDING, reason="waiting for its dependencies to be ready")
        return Next(Event.START)
    if s == State.WAITING:
        if not o.desired_running:
            return Next(Event.STOP)
        return Next(Event.DEPENDENCIES_READY) if o.deps_ready else None
    if s == State.PENDING:
        if not o.desired_running:
            return Next(Event.STOP)
        if not o.deps_ready:
            return Next(Event.DEPENDENCIES_PENDING)
        retry = t.pending_retry
        if (o.state.reason or "").startswith(NEVER_STARTED):
            retry = min(retry, NEVER_STARTED_RETRY)
        return Next(Event.START, reason="trying again") if age_in_state >= retry else None
    if s == State.PLACING:
        return Next(Event.STOP) if not o.desired_running else Next(step="place")
    if s == State.POWERING_ON:
        return Next(Event.STOP) if wants_down else Next(step="power-on")
    if s == State.BOOTING:
        if wants_down:
            return Next(Event.STOP)
        if o.heartbeat_ready:
            return Next(Event.AGENT_READY, reason="agent reports ready")
        if hb_age is not None and hb_age > suspect_after:
            return Next(Event.HEARTBEAT_MISSED, reason=f"agent silent for {hb_age:.1f} s")
        if o.boot_stage is None and o.heartbeat_at is None and age_in_state > t.boot_script_timeout:
            return Next(Event.FAILED, reason=f"{o.host or 'its machine'} powered on but {NEVER_ASKED} within "
                                             f"{t.boot_script_timeout:g} s: check its PXE boot order and DHCP, "
                                             "and the controller URL it boots from")
        if age_in_state > t.boot_timeout:
            reached = "" if o.boot_stage == UNREAD else \
                f" (last boot stage: {o.boot_stage or 'none'}{', agent beating' if o.heartbeat_at else ''})"
            return Next(Event.FAILED, reason=f"no ready agent within {t.boot_timeout:g} s{reached}")
        return None
    if s == State.RUNNING:
        if not o.desired_running and not o.dependents_down:
            return None  # a group stops dependents first: wait for them
        if wants_down:
            return Next(Event.STOP, reason="moving" if o.move_requested and o.desired_running else None)
        if hb_age is None or hb_age > suspect_after:
            silent = f"{hb_age:.1f} s" if hb_age is not None else "ever"
            return Next(Event.HEARTBEAT_MISSED, reason=f"no heartbeat for {silent}")
        return None
    if s == State.SUSPECT:
        if hb_age is not None and hb_age <= beat * 1.5:
            return Next(Event.HEARTBEAT_RESUMED)
        return Next(step="suspect")
    if s == State.STOPPING:
        return Next(step="stop")
    if s == State.FENCING:
        return Next(step="fence")
    if s == State.FENCED:
        return Next(step="settle")
    if s == State.BLOCKED:
        return Next(step="confirm-dead") if o.confirm_dead_requested else None
    if s == State.FAILED:
        if not o.desired_running:
            return Next(Event.STOP)
        return Next(Event.START, reason="an operator started it again") if o.retry_requested else None
    return None


def give_up(history: list[Incarnation], now: datetime, t: Timing, retry_at: datetime | None) -> str | None:
    """Why a persona's starts are to stop, or None to place it again.
    ``history``: its incarnations, newest first. Only starts begun within
    ``start_failure_window`` and after an operator's last retry count. The
    last ``start_failures`` failed before they were ever ready; or the
    last two machines, each a different server, never asked for their boot
    script: the same fault twice is then the boot network's (DHCP, PXE,
    the controller's URL), and a third server would fare no better."""
    since = now.timestamp() - t.start_failure_window
    if retry_at is not None:
        since = max(since, retry_at.timestamp())
    failed: list[Incarnation] = []
    for inc in history:
        if inc.started_at.timestamp() < since or inc.failure is None or inc.ready_at is not None:
            break
        failed.append(inc)
    silent = failed[:2]
    if len(silent) == 2 and all(NEVER_ASKED in (i.failure or "") for i in silent) \
            and silent[0].host != silent[1].host:
        return (f"{silent[1].host} and {silent[0].host} both powered on but {NEVER_ASKED}: the boot network "
                "(DHCP, PXE, the controller URL the machines boot from) is at fault, not the servers; "
                "fix it, then start the persona again")
    if len(failed) >= t.start_failures:
        reasons = "; ".join(f"generation {i.generation} on {i.host}: {i.failure}" for i in failed[:t.start_failures])
        return f"its last {t.start_failures} starts failed ({reasons}); start it again once the cause is fixed"
    return None
