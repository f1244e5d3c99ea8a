"""The controller's metrics: what each phase of a start and a failover
measures, which moves and device calls are counted, and who may scrape."""

from __future__ import annotations

import pytest

from harness import load
from voe.controller.metrics import Metrics
from voe.domain.inventory import parse
from voe.domain.lifecycle import Event, State
from voe.drivers.base import DriverSettings, PowerDriver, PowerState
from voe.errors import DriverError
from voe.store.runtime import StaleState

S = State


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def metrics(services):
    clock = Clock()
    inv = parse(load())
    m = Metrics(services.runtime, lambda: inv, clock)
    return m, clock


def value(m: Metrics, name: str, **labels) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def walk(m: Metrics, clock: Clock, persona: str, *steps: tuple[State, float]) -> None:
    """Move ``persona`` through ``steps`` (state, seconds spent before
    entering it), from stopped."""
    seen = S.STOPPED
    for new, after in steps:
        clock.t += after
        m.moved(persona, seen, new)
        seen = new


def test_a_failover_is_counted_and_each_phase_timed(metrics, services):
    m, clock = metrics
    walk(m, clock, "oracle", (S.PLACING, 0), (S.POWERING_ON, 0.1), (S.BOOTING, 0.4), (S.RUNNING, 2.0))
    assert value(m, "voe_start_seconds_sum") == pytest.approx(2.5)
    services.runtime.beats.record("oracle", 1, True, False, {})  # its last beat, just now
    walk(m, clock, "oracle", (S.SUSPECT, 0), (S.FENCING, 0.3), (S.FENCED, 0.2), (S.PLACING, 0.01),
         (S.POWERING_ON, 0.1), (S.BOOTING, 0.4), (S.RUNNING, 1.0))
    assert value(m, "voe_failovers_total") == 1
    assert value(m, "voe_failover_seconds_sum", phase="fencing") == pytest.approx(0.2)
    assert value(m, "voe_failover_seconds_sum", phase="restart") == pytest.approx(1.51)
    detection = value(m, "voe_failover_seconds_sum", phase="detection")
    assert 0 <= detection < 1  # the beat was heard moments before the suspicion
    assert value(m, "voe_failover_seconds_sum", phase="total") == pytest.approx(2.01 + detection)
    assert value(m, "voe_start_seconds_count") == 2
    assert value(m, "voe_start_seconds_sum") == pytest.approx(2.5 + 1.5)
    assert value(m, "voe_transitions_total", from_state="fenced", to_state="placing") == 1


def test_a_suspicion_that_clears_is_no_failover(metrics):
    m, clock = metrics
    walk(m, clock, "oracle", (S.PLACING, 0), (S.POWERING_ON, 0.1), (S.BOOTING, 0.1), (S.RUNNING, 0.1),
         (S.SUSPECT, 5), (S.RUNNING, 1))
    assert value(m, "voe_failovers_total") == 0
    assert value(m, "voe_start_seconds_count") == 1


def test_a_failed_start_tried_again_is_one_start_and_no_failover(metrics):
    """A boot that timed out is fenced and placed again: the start lasts
    from its first placing, and nothing had failed over."""
    m, clock = metrics
    walk(m, clock, "oracle", (S.PLACING, 0), (S.POWERING_ON, 0.1), (S.BOOTING, 0.1), (S.FENCING, 10),
         (S.FENCED, 0.5), (S.PLACING, 0), (S.POWERING_ON, 0.1), (S.BOOTING, 0.1), (S.RUNNING, 2))
    assert value(m, "voe_start_seconds_count") == 1
    assert value(m, "voe_start_seconds_sum") == pytest.approx(12.9)
    assert value(m, "voe_failovers_total") == 0
    assert value(m, "voe_failover_seconds_count", phase="fencing") == 1


def test_personas_by_state_count_the_inventory(metrics, services):
    m, _ = metrics
    services.runtime.transition("oracle", S.STOPPED, Event.START)
    personas = len(parse(load()).personas)
    assert value(m, "voe_personas", state="placing") == 1
    assert value(m, "voe_personas", state="stopped") == personas - 1
    assert value(m, "voe_personas", state="running") == 0


def test_the_store_tells_of_committed_moves_only(services):
    told = []
    services.runtime.on_move = lambda *move: told.append(move)
    services.runtime.transition("oracle", S.STOPPED, Event.START)
    with pytest.raises(StaleState):
        services.runtime.transition("oracle", S.STOPPED, Event.START)  # no longer stopped
    assert told == [("oracle", S.STOPPED, S.PLACING)]


class FlakyBmc(PowerDriver):
    """A BMC whose answers the test scripts: each call takes the next."""

    def __init__(self, answers: list):
        super().__init__("bmc-7", DriverSettings(retries=2))
        self.answers = answers

    def check(self) -> str:
        return "ok"

    def _next(self):
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _get_power_state(self) -> PowerState:
        return self._next()

    def _power_on(self) -> None:
        self._next()

    _power_off = _soft_off = _reset = _power_on

    def _set_boot_device(self, device, persistent) -> None:
        self._next()

    def _get_boot_device(self):
        return self._next()


def test_each_device_call_is_counted_by_driver_and_outcome(metrics):
    m, _ = metrics
    transient = DriverError("bmc-7", "power status", "no answer", transient=True)
    bmc = FlakyBmc([transient, PowerState.OFF, TimeoutError(), RuntimeError("insufficient privilege")])
    bmc.observer = m.driver_call
    assert bmc.power_state() == PowerState.OFF  # one read, its retry inside
    with pytest.raises(DriverError):
        bmc.power_on(confirm=False)
    with pytest.raises(DriverError, match="bmc-7.*insufficient privilege"):
        bmc.power_on(confirm=False)
    calls = {o: value(m, "voe_driver_calls_total", concern="power", driver="FlakyBmc", kind=k, outcome=o)
             for k, o in (("read", "ok"), ("write", "timeout"), ("write", "error"))}
    assert calls == {"ok": 1, "timeout": 1, "error": 1}
    assert value(m, "voe_driver_call_seconds_count", concern="power", driver="FlakyBmc", kind="read") == 1


def test_metrics_need_a_token_and_a_controller(api):
    assert api.get("/metrics", headers={"Authorization": ""}).status_code == 401
    answer = api.get("/metrics")  # the API alone, as a read replica serves it
    assert answer.status_code == 404 and "without a controller" in answer.json()["detail"]


def test_the_sample_dashboard_reads_only_metrics_the_controller_serves(metrics):
    import json
    import re
    from pathlib import Path

    m, _ = metrics
    served = {f.name for f in m.registry.collect()}
    board = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    read = {re.sub(r"_(bucket|total|count|sum)$", "", name) for e in exprs for name in re.findall(r"voe_\w+", e)}
    assert read and read <= served, read - served
