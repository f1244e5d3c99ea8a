"""The lifecycle table, walked: reachability, exits, and the structural
form of the invariant."""

from __future__ import annotations

import pytest

from voe.domain.lifecycle import LIVE_STATES, QUIET_STATES, TRANSITIONS, Event, IllegalTransition, State, next_state


def reachable(start: State) -> set[State]:
    seen, todo = {start}, [start]
    while todo:
        s = todo.pop()
        for (a, _), b in TRANSITIONS.items():
            if a == s and b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def test_every_state_is_reachable_from_stopped():
    assert reachable(State.STOPPED) == set(State)


def test_every_state_can_get_back_to_stopped():
    for s in State:
        assert State.STOPPED in reachable(s), s


def test_a_new_incarnation_only_follows_a_quiet_state():
    """placing (which records a new incarnation) is entered only from states
    where no earlier incarnation can run."""
    sources = {a for (a, _), b in TRANSITIONS.items() if b == State.PLACING}
    assert sources <= QUIET_STATES
    assert not (sources & LIVE_STATES)


def test_live_and_quiet_partition_the_states():
    assert LIVE_STATES.isdisjoint(QUIET_STATES)
    assert LIVE_STATES | QUIET_STATES == set(State)


def test_blocked_leaves_only_by_an_operator():
    exits = {e for (a, e) in TRANSITIONS if a == State.BLOCKED}
    assert exits == {Event.OPERATOR_CONFIRMED_DEAD}


def test_suspect_never_goes_straight_to_placing():
    """Missed heartbeats are never evidence: from suspect the only ways on
    are back to running, to fencing, or to a confirmed stop."""
    assert {b for (a, _), b in TRANSITIONS.items() if a == State.SUSPECT} == {State.RUNNING, State.FENCING, State.STOPPING}


def test_illegal_transition_is_refused():
    with pytest.raises(IllegalTransition):
        next_state(State.RUNNING, Event.PLACED)
