"""Heartbeat pacing (``controller.pacing``): the interval agents are told
grows with how many beat, and suspicion never comes sooner than what a
persona's agent was told allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voe.controller.decide import Observed, decide
from voe.controller.pacing import BeatPace
from voe.controller.timing import Timing
from voe.domain.lifecycle import Event, State
from voe.store.runtime import PersonaState

T = Timing()
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def running(silent_for: float, beat: float) -> Observed:
    return Observed(PersonaState("p", State.RUNNING, 1, NOW - timedelta(minutes=5), None, None), True, True, False,
                    False, NOW - timedelta(seconds=silent_for), True, NOW, beat_interval=beat)


def test_the_interval_told_keeps_beats_within_the_budget_and_never_below_the_configured_one():
    pace = BeatPace(T)
    pace.follow(7)
    assert pace.interval == T.heartbeat_interval  # a small datacenter beats as configured
    pace.follow(1000)
    assert pace.interval == 1000 / T.max_heartbeats_per_second
    assert 1000 / pace.interval <= T.max_heartbeats_per_second
    assert pace.lease() == pace.interval * (T.heartbeat_misses + 1)


def test_a_persona_told_a_long_interval_is_not_suspect_within_it_even_after_the_pace_fell():
    pace = BeatPace(T)
    pace.follow(1000)
    told = pace.interval  # 10 s: its last answer said so
    pace.follow(7)  # most personas stopped since: others are told 0.25 s now
    beat = pace.interval_for(told)
    assert beat == told
    assert decide(running(told * 2, beat), T) is None  # the default pace would have suspected it 19 s ago
    limit = pace.silence_limit(told)
    assert decide(running(limit + 0.1, beat), T).event == Event.HEARTBEAT_MISSED


def test_a_persona_told_a_short_interval_is_judged_by_the_new_pace_once_it_grew():
    """The agent learns a longer pace only from its next answer: until
    then it beats more often than asked, never less."""
    pace = BeatPace(T)
    told = pace.interval
    pace.follow(500)
    assert pace.interval_for(told) == pace.interval > told
    assert pace.interval_for(None) == pace.interval  # beats heard before a restart: the pace now


def test_a_beat_is_answered_with_the_pace_and_its_lease(api, services):
    """The heartbeat's answer tells the agent the pace now; what it was told
    is what suspicion then allows it."""
    from voe.store.tokens import agent_token_name

    api.app.state.pace.follow(2000)
    services.runtime.begin_incarnation("p1", "vm", "h1", "p1", "02:00:00:00:00:01", "test")
    token = services.tokens.replace(agent_token_name("p1", 1), "agent", persona="p1")
    r = api.post("/api/v1/agent/heartbeat", json={"generation": 1, "ready": True},
                 headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    pace = api.app.state.pace
    assert r.json()["interval"] == pace.interval == 2000 / T.max_heartbeats_per_second
    assert r.json()["lease_expires_in"] == pace.lease()
    assert services.runtime.beats.of("p1")["told"] == pace.interval
