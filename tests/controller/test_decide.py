"""The reconciler's judgement, without hardware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voe.controller.decide import (
    NEVER_STARTED,
    NEVER_STARTED_RETRY,
    RETARGET,
    Observed,
    decide,
    move_requested,
    silence_from,
)
from voe.controller.timing import Timing
from voe.domain.lifecycle import Event, State
from voe.store.runtime import PersonaState

T = Timing()
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def obs(state: State, since: float = 0, hb_age: float | None = None, ready: bool = False, reason: str | None = None,
        **kw) -> Observed:
    base = dict(desired_running=True, deps_ready=True, move_requested=False, confirm_dead_requested=False)
    base.update(kw)
    return Observed(PersonaState("p", state, 1, NOW - timedelta(seconds=since), reason, None),
                    heartbeat_at=NOW - timedelta(seconds=hb_age) if hb_age is not None else None,
                    heartbeat_ready=ready, now=NOW, **base)


def test_stopped_and_desired_running_starts_or_waits_for_dependencies():
    assert decide(obs(State.STOPPED), T).event == Event.START
    assert decide(obs(State.STOPPED, deps_ready=False), T).event == Event.DEPENDENCIES_PENDING
    assert decide(obs(State.STOPPED, desired_running=False), T) is None


def test_running_with_fresh_heartbeats_is_left_alone():
    assert decide(obs(State.RUNNING, hb_age=0.2, ready=True), T) is None


def test_missed_heartbeats_make_a_persona_suspect_within_two_seconds():
    assert T.suspect_after <= 2.0
    nxt = decide(obs(State.RUNNING, hb_age=T.suspect_after + 0.01, ready=True), T)
    assert nxt.event == Event.HEARTBEAT_MISSED


def test_suspect_never_retargets_directly_it_fences():
    nxt = decide(obs(State.SUSPECT, hb_age=5), T)
    assert nxt.step == "suspect" and nxt.event is None
    assert decide(obs(State.SUSPECT, hb_age=0.1), T).event == Event.HEARTBEAT_RESUMED


def test_booting_becomes_running_only_when_the_agent_is_ready():
    assert decide(obs(State.BOOTING, hb_age=0.1, ready=False), T) is None
    assert decide(obs(State.BOOTING, hb_age=0.1, ready=True), T).event == Event.AGENT_READY
    assert decide(obs(State.BOOTING, since=T.boot_timeout + 1), T).event == Event.FAILED


def test_move_and_stop_go_through_stopping():
    assert decide(obs(State.RUNNING, hb_age=0.1, ready=True, move_requested=True), T).event == Event.STOP
    assert decide(obs(State.RUNNING, hb_age=0.1, ready=True, desired_running=False), T).event == Event.STOP
    assert decide(obs(State.STOPPING), T).step == "stop"


def test_blocked_waits_for_an_operator():
    assert decide(obs(State.BLOCKED), T) is None
    assert decide(obs(State.BLOCKED, confirm_dead_requested=True), T).step == "confirm-dead"


def test_pending_retries_after_a_pause():
    assert decide(obs(State.PENDING, since=0.5), T) is None
    assert decide(obs(State.PENDING, since=T.pending_retry + 0.1), T).event == Event.START


def test_a_start_that_never_began_is_retried_at_once_not_after_the_pending_pause():
    """A failover's replacement whose switch died under it: nothing can run
    it, and what failed is out of placement, so it is placed again soon."""
    never = f"{NEVER_STARTED}: sw1: configure ports 12 failed: the switch does not answer"
    assert decide(obs(State.PENDING, since=NEVER_STARTED_RETRY / 2, reason=never), T) is None
    assert decide(obs(State.PENDING, since=NEVER_STARTED_RETRY + 0.05, reason=never), T).event == Event.START
    assert decide(obs(State.PENDING, since=NEVER_STARTED_RETRY + 0.05, reason="fits nowhere"), T) is None


def test_a_group_stops_dependents_first():
    waiting = obs(State.RUNNING, hb_age=0.1, ready=True, desired_running=False, dependents_down=False)
    assert decide(waiting, T) is None
    assert decide(obs(State.RUNNING, hb_age=0.1, ready=True, desired_running=False), T).event == Event.STOP


def test_only_an_operators_move_stops_an_incarnation_a_leftover_retarget_does_not():
    # a controller SIGKILLed after recording a failover's replacement but
    # before clearing its retarget intent: on restart the replacement must
    # be powered on, not stopped and placed a third time
    assert move_requested({"move_kind": "physical"}) and move_requested({"move_kind": "any", "move_host": "h1"})
    assert not move_requested({"move_kind": RETARGET}) and not move_requested({})
    leftover = decide(obs(State.POWERING_ON, move_requested=move_requested({"move_kind": RETARGET})), T)
    assert leftover.step == "power-on"
    running = decide(obs(State.RUNNING, hb_age=0.1, ready=True, move_requested=move_requested({"move_kind": RETARGET})), T)
    assert running is None


def test_a_restarted_controllers_grace_delays_suspicion_but_never_reads_as_a_suspects_recovery():
    grace = NOW - timedelta(seconds=0.1)  # this controller began hearing beats 0.1 s ago
    old_beat = NOW - timedelta(seconds=3)
    assert silence_from(State.RUNNING, old_beat, grace) == grace
    assert silence_from(State.RUNNING, None, grace) == grace
    assert silence_from(State.BOOTING, None, grace) is None  # the boot timeout applies instead
    assert silence_from(State.SUSPECT, old_beat, grace) == old_beat
    suspect = obs(State.SUSPECT, hb_age=(NOW - silence_from(State.SUSPECT, old_beat, grace)).total_seconds())
    assert decide(suspect, T).step == "suspect"  # not HEARTBEAT_RESUMED on the grace alone
    fresh_beat = NOW - timedelta(seconds=0.05)
    assert silence_from(State.SUSPECT, fresh_beat, grace) == fresh_beat
