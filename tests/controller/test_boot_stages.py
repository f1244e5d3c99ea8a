"""A start whose machine never asks for its boot script fails early and
says so; a persona whose starts keep failing is failed, with its reasons,
instead of being placed again and again; the boot stages an incarnation
reached are recorded once, in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voe.controller.decide import NEVER_ASKED, UNREAD, Observed, decide, give_up
from voe.controller.timing import Timing
from voe.domain.lifecycle import Event, State
from voe.store.events import EventQuery
from voe.store.runtime import Incarnation, PersonaState

T = Timing(boot_script_timeout=10.0, boot_timeout=90.0, start_failures=3, start_failure_window=600.0)
NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def booting(since: float, stage: str | None = UNREAD, beat_age: float | None = None, host: str | None = "dl360-2"):
    return Observed(PersonaState("web-1", State.BOOTING, 2, NOW - timedelta(seconds=since), None, None),
                    True, True, False, False,
                    NOW - timedelta(seconds=beat_age) if beat_age is not None else None, False, NOW,
                    boot_stage=stage, host=host)


def test_a_machine_that_never_asked_for_its_script_fails_the_start_after_the_short_timeout():
    assert decide(booting(since=9.0, stage=None), T) is None
    nxt = decide(booting(since=10.5, stage=None), T)
    assert nxt.event == Event.FAILED
    assert "dl360-2 powered on but never asked for its boot script" in nxt.reason
    assert "PXE boot order and DHCP" in nxt.reason


def test_a_machine_that_asked_or_whose_agent_beats_waits_for_the_whole_boot_timeout():
    assert decide(booting(since=30.0, stage="script"), T) is None
    assert decide(booting(since=30.0, stage=None, beat_age=0.1), T) is None  # its agent beats: it booted
    assert decide(booting(since=30.0), T) is None  # stages not read: no verdict from them
    nxt = decide(booting(since=91.0, stage="config"), T)
    assert nxt.event == Event.FAILED and "last boot stage: config" in nxt.reason


def inc(generation: int, host: str, failure: str | None, age: float = 60.0, ready: bool = False) -> Incarnation:
    started = NOW - timedelta(seconds=age)
    return Incarnation("web-1", generation, "physical", host, None, "00:0b:cd:02:00:01", "test", started,
                       started if ready else None, started + timedelta(seconds=20), "bmc: off", failure)


def test_two_servers_that_never_asked_for_their_script_blame_the_boot_network_not_a_third_server():
    silent = f"x powered on but {NEVER_ASKED} within 10 s"
    reason = give_up([inc(2, "dl360-3", silent), inc(1, "dl360-2", silent)], NOW, T, None)
    assert reason is not None and "dl360-2 and dl360-3" in reason and "boot network" in reason
    assert give_up([inc(1, "dl360-2", silent)], NOW, T, None) is None  # one server: its own fault, maybe


def test_starts_that_keep_failing_give_up_with_every_reason_and_a_retry_counts_afresh():
    history = [inc(3, "v20z", "no ready agent within 90 s"), inc(2, "dl360-3", "BMC refused"),
               inc(1, "dl360-2", "no ready agent within 90 s")]
    reason = give_up(history, NOW, T, None)
    assert reason is not None and "last 3 starts failed" in reason
    assert all(f"generation {i.generation} on {i.host}" in reason for i in history)
    assert give_up(history[:2], NOW, T, None) is None
    assert give_up(history, NOW, T, retry_at=NOW - timedelta(seconds=59)) is None  # the operator started it again since
    assert give_up(history, NOW, Timing(start_failure_window=30.0), None) is None  # too long ago to count


def test_a_start_that_once_ran_breaks_the_run_of_failures():
    history = [inc(3, "v20z", "no ready agent within 90 s"), inc(2, "dl360-3", "BMC refused"),
               inc(1, "dl360-2", None, ready=True)]
    assert give_up(history, NOW, Timing(start_failures=2), None) is not None
    assert give_up(history, NOW, T, None) is None


def test_failed_is_quiet_and_only_an_operator_or_a_stop_leaves_it():
    from voe.domain.lifecycle import QUIET_STATES, TRANSITIONS

    assert State.FAILED in QUIET_STATES
    assert {e for (s, e) in TRANSITIONS if s == State.FAILED} == {Event.START, Event.STOP}
    failed = Observed(PersonaState("web-1", State.FAILED, 2, NOW - timedelta(seconds=5), "given up", None),
                      True, True, False, False, None, False, NOW)
    assert decide(failed, T) is None
    assert decide(Observed(**{**failed.__dict__, "retry_requested": True}), T).event == Event.START
    assert decide(Observed(**{**failed.__dict__, "desired_running": False}), T).event == Event.STOP


def test_a_boot_stage_is_recorded_once_per_incarnation_and_an_older_generations_are_dropped(services):
    rt = services.runtime
    rt.register_boot("00:0b:cd:02:00:01", "web-1", 1, "#!ipxe\n")
    assert rt.record_boot_stage("web-1", 1, "script") is True
    assert rt.record_boot_stage("web-1", 1, "script") is False  # fetched again: nothing new
    assert rt.record_boot_stage("web-1", 1, "config") is True
    assert set(rt.boot_stages(["web-1"])["web-1"][1]) == {"script", "config"}
    logged = services.events.query(EventQuery(persona="web-1", kind="boot"))
    assert [e["data"]["stage"] for e in logged] == ["script", "config"]  # once each
    rt.register_boot("00:0b:cd:02:00:01", "web-1", 2, "#!ipxe\n")  # its next incarnation
    assert rt.boot_stages(["web-1"]) == {}
    target = rt.boot_target("00:0b:cd:02:00:01")
    assert (target.persona, target.generation) == ("web-1", 2)
