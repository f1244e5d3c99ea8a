"""The controller's metrics, in the Prometheus format (``GET /metrics``).

Each controller keeps a registry of its own, so that several in one process
(as the tests run them) count apart. What it counts, it sees itself: the
moves the store commits for it, the calls its drivers make, its reconciler's
ticks and the beats it is told of. A start or a failover is timed from the
moves of one persona, by the controller that makes them; one that spans a
controller's restart is counted but not timed, since its beginning is in
the memory of the process before.

Failover phases: *detection* is the silence a persona's agent kept before it
was suspected (from its last beat heard), *fencing* from fencing to fenced,
*restart* from fenced to running again elsewhere, *total* from its last beat
heard (else from suspected) to running again: the outage as the controller
can know it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from voe.domain.inventory import Inventory
from voe.domain.lifecycle import State
from voe.drivers.base import Driver
from voe.store.runtime import RuntimeStore
from voe.store.time import now

SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)
"""Starts, failovers and their phases: from a fence by power-off to a real
server's firmware and boot."""
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
TICK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
PLACING, SUSPECT, FENCING, FENCED = (s.value for s in (State.PLACING, State.SUSPECT, State.FENCING, State.FENCED))
SILENT = "silent"  # the mark of a suspected persona's last beat heard


class Metrics:
    def __init__(self, runtime: RuntimeStore, inventory: Callable[[], Inventory],
                 clock: Callable[[], float] = time.monotonic):
        self.registry = CollectorRegistry()
        self._runtime, self._clock = runtime, clock
        self.leader = False  # this process runs the reconciler
        r = self.registry
        self.transitions = Counter("voe_transitions", "Lifecycle moves this controller made",
                                   ["from_state", "to_state"], registry=r)
        self.starts = Histogram("voe_start_seconds", "A start, from placing to its agent ready and running",
                                buckets=SECONDS_BUCKETS, registry=r)
        self.failovers = Counter("voe_failovers", "Suspected personas fenced and running again elsewhere",
                                 registry=r)
        self.failover_seconds = Histogram("voe_failover_seconds", "A failover's phases: detection, fencing, "
                                          "restart, and the total from suspected to running", ["phase"],
                                          buckets=SECONDS_BUCKETS, registry=r)
        self.driver_calls = Counter("voe_driver_calls", "Device calls by the controller's drivers",
                                    ["concern", "driver", "kind", "outcome"], registry=r)
        self.driver_seconds = Histogram("voe_driver_call_seconds", "A device call's duration, a read's retries "
                                        "included", ["concern", "driver", "kind"], buckets=CALL_BUCKETS, registry=r)
        self.ticks = Histogram("voe_reconciler_tick_seconds", "A reconciler tick's duration", buckets=TICK_BUCKETS,
                               registry=r)
        r.register(_Readings(self, runtime, inventory))
        self._marks: dict[str, dict[str, float]] = {}  # persona -> when it entered the states timed, fell silent
        self._lock = threading.Lock()

    def moved(self, persona: str, seen: State, new: State) -> None:
        """A move the store committed (``RuntimeStore.on_move``)."""
        t = self._clock()
        self.transitions.labels(seen.value, new.value).inc()
        silence = self._silence(persona) if new == State.SUSPECT else None
        with self._lock:
            if new == State.RUNNING:
                self._arrived(self._marks.pop(persona, {}), t)
            elif new in (State.STOPPED, State.FAILED, State.STOPPING):
                self._marks.pop(persona, None)
            else:
                marks = self._marks.setdefault(persona, {})
                if new == State.FENCED and FENCING in marks:
                    self.failover_seconds.labels("fencing").observe(t - marks[FENCING])
                if new == State.FENCING:
                    marks[FENCING] = t  # each fencing is timed alone
                else:
                    marks.setdefault(new.value, t)  # a start's retries keep its first placing, its first fenced
                if silence is not None:
                    self.failover_seconds.labels("detection").observe(silence)
                    marks.setdefault(SILENT, t - silence)

    def _silence(self, persona: str) -> float | None:
        """Seconds since the persona's last beat heard, if one was."""
        beat = self._runtime.beats.of(persona)
        return None if beat is None else max(0.0, (now() - beat["at"]).total_seconds())

    def _arrived(self, marks: dict[str, float], t: float) -> None:
        if PLACING in marks:
            self.starts.observe(t - marks[PLACING])
        if SUSPECT in marks and FENCED in marks:
            self.failovers.inc()
            self.failover_seconds.labels("restart").observe(t - marks[FENCED])
            self.failover_seconds.labels("total").observe(t - marks.get(SILENT, marks[SUSPECT]))

    def driver_call(self, driver: Driver, kind: str, seconds: float, outcome: str) -> None:
        """A driver's device call (``Driver.observer``)."""
        name = driver.driver_name
        self.driver_calls.labels(driver.concern, name, kind, outcome).inc()
        self.driver_seconds.labels(driver.concern, name, kind).observe(seconds)


class _Readings(Collector):
    """What is read at each scrape rather than counted: personas by state,
    beats heard, leadership."""

    def __init__(self, metrics: Metrics, runtime: RuntimeStore, inventory: Callable[[], Inventory]):
        self._metrics, self._runtime, self._inventory = metrics, runtime, inventory

    def collect(self) -> Iterable:
        by_state = GaugeMetricFamily("voe_personas", "Personas of the inventory by lifecycle state", labels=["state"])
        recorded = self._runtime.states()
        counts = dict.fromkeys((s.value for s in State), 0)
        for p in self._inventory().personas:
            st = recorded.get(p.name)
            counts[st.state.value if st else State.STOPPED.value] += 1
        for state, n in counts.items():
            by_state.add_metric([state], n)
        yield by_state
        beats = CounterMetricFamily("voe_heartbeats_received", "Agents' heartbeats this controller was told of")
        beats.add_metric([], self._runtime.beats.received)
        yield beats
        leader = GaugeMetricFamily("voe_leader", "1 while this process runs the reconciler")
        leader.add_metric([], 1 if self._metrics.leader else 0)
        yield leader
