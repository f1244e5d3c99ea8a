"""Which switches and hypervisors answer. A switch that stops answering its
management protocol is taken out of placement: a new incarnation's trunk
goes to a NIC on another switch (every host in a mature datacenter has
one), and a hypervisor host's uplink moves to its next NIC, as an
active-backup bond does. When the switch answers again, its ports are read
afresh and brought back to what voe wants (a switch that rebooted has
forgotten its VLANs). A hypervisor whose API does not answer (its host
crashed, or is still off after a fence an operator cleared) gets no new
VMs: a start there would fail and cost a fence and another placement.

A device that does not answer is not evidence that nothing runs behind it,
so this never fences anything by itself: it only steers new placements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, Protocol

from voe.domain.inventory import Inventory
from voe.errors import DriverError


class Probe(Protocol):
    """What a watch asks of a device: one answer, or a ``DriverError``."""

    def check(self) -> str: ...


MISSES_TO_DOWN = 2
VERDICT_PATIENCE = 3  # probe timeouts a caller waits for a device's first verdict
DOUBT_POLL = 0.05  # seconds between looks while a placement waits for a verdict or a doubt


class DeviceWatch:
    def __init__(self, kind: str, devices: Callable[[Inventory], dict[str, object]],
                 probe_driver: Callable[[Any], Probe], log: Callable[..., None], interval: float,
                 pool: Executor, shunned: str, doubt_early: bool = True, probe_timeout: float = 1.0,
                 max_probes_per_second: float = float("inf")):
        """``devices`` names the devices to watch in an inventory (switch
        name -> switch; host name -> host, for hypervisors);
        ``probe_driver`` gives the driver probes use: its own session with a
        short timeout, so a probe neither waits behind other calls (port
        writes, table walks) nor lingers; ``pool`` runs the probes and what
        a verdict sets off (the controller's, see ``Workers``). ``shunned`` says in the log what
        placement keeps off a device that went down. ``doubt_early``: a
        device is avoided from its first missed or slow probe, before it is
        down (right for a switch, which answers in milliseconds and whose
        death fences servers; a hypervisor busy defining VMs is slow, not
        gone, and one just booting has not answered yet). ``probe_timeout``
        is how long a probe waits for its answer; ``max_probes_per_second``
        spaces the passes over many devices (see ``pass_every``)."""
        self.max_probes_per_second = max_probes_per_second
        self._pool = pool
        self.doubt_early = doubt_early
        self.probe_timeout = probe_timeout
        self.kind = kind
        self.devices = devices
        self.probe_driver = probe_driver
        self.shunned = shunned
        self.log = log
        self.interval = interval
        self._down: dict[str, str] = {}
        self._missed: dict[str, int] = {}  # probes failed in a row
        self._answered: set[str] = set()  # devices that answered a probe since this controller began
        self._last_answer: dict[str, float] = {}  # device -> when its latest probe answer came
        self._period = interval  # seconds between passes, as last paced (see ``pass_every``)
        self._lock = threading.Lock()
        self._verdict = threading.Condition(self._lock)  # notified after every probe
        self._watching = False  # ``run`` is probing (a controller serving only its API does not)
        self._in_flight: dict[str, float] = {}  # device -> when its probe began
        self._sent: dict[str, float] = {}  # device -> when its probe's request went (its driver built)
        # what to do when a device goes or comes back (a switch: its ports follow);
        # run on the watch's own threads, never under a caller's lock
        self.on_down: Callable[[str], None] = lambda name: None
        self.on_back: Callable[[str], None] = lambda name: None

    def down(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._down)

    def failing(self) -> frozenset[str]:
        """Down, or missed its last probe: a device that gave no answer at
        all lately (not merely a slow one)."""
        with self._lock:
            return frozenset(self._down) | {n for n, k in self._missed.items() if k}

    def avoid(self) -> frozenset[str]:
        """What new placements keep off: the devices that are
        down, and those in doubt (a probe missed, or one waiting longer than
        a probe interval, where a live switch answers in milliseconds). A
        persona fenced because its switch died is placed again about when
        the first probe misses, before the second confirms the outage; on a
        switch merely slow, a trunk on another switch costs nothing."""
        with self._lock:
            if not self.doubt_early:
                return frozenset(self._down)
            missed = {n for n, k in self._missed.items() if k}
            return frozenset(self._down) | missed | self._slow()

    def _slow(self) -> set[str]:
        """Devices whose probe request has waited longer than a probe
        interval (counted from the request, not from building its driver:
        a process just started builds its SNMP engines first)."""
        slow = time.monotonic() - self.interval
        return {n for n in self._in_flight if self._sent.get(n, float("inf")) < slow}

    def await_verdicts(self, names: Iterable[str], doubt_is_enough: bool = False) -> None:
        """Until each device has answered or missed a probe of this
        controller's (at most ``VERDICT_PATIENCE`` probe timeouts in all).
        A controller just restarted knows nothing of a switch that died
        under its predecessor: a port write sent there would wait out a
        whole driver timeout (and a read before it another), where the
        first probe says so within about ``probe_timeout``. With
        ``doubt_is_enough`` (placement), a probe unanswered for a probe
        interval will do: a placement made blind may put a fenced persona's
        new trunk on a dead switch, and one that waits for the miss loses a
        second; in doubt the switch is
        avoided, as in ``avoid``. Once every device has had its first probe,
        this returns at once."""
        deadline = time.monotonic() + VERDICT_PATIENCE * self.probe_timeout
        names = list(names)
        with self._verdict:
            while self._watching:
                judged = self._answered | {n for n, k in self._missed.items() if k} | set(self._down)
                if doubt_is_enough:
                    judged |= self._slow()
                left = deadline - time.monotonic()
                if all(n in judged for n in names) or left <= 0:
                    return
                # a probe turns slow without notifying: look again soon
                self._verdict.wait(min(left, DOUBT_POLL) if doubt_is_enough else left)

    def unheard(self, name: str) -> bool:
        """Not heard from since this controller began, and in doubt (a
        probe missed or unanswered for a probe interval): a switch that may
        have died under the previous controller."""
        with self._lock:
            return name not in self._answered and (
                name in self._down or bool(self._missed.get(name)) or name in self._slow())

    def answered_lately(self, name: str) -> bool:
        """Answered a probe within the last pass period: no later than the
        probe that would have doubted it, had it died since. A switch that
        died a moment ago is not yet doubted, and only this says that it
        may be dead."""
        with self._lock:
            return time.monotonic() - self._last_answer.get(name, float("-inf")) <= self._period

    def mark_down(self, name: str, reason: str) -> None:
        with self._lock:
            if name in self._down:
                return
            self._down[name] = reason
        self.log("error", self.kind, f"{self.kind} {name} does not answer ({reason}): {self.shunned} avoid it")
        self._pool.submit(self.on_down, name)

    def _mark_up(self, name: str) -> None:
        with self._lock:
            if self._down.pop(name, None) is None:
                return
        self.log("info", self.kind, f"{self.kind} {name} answers again")
        self._pool.submit(self.on_back, name)

    def probe_all(self, inv: Inventory) -> int:
        """Ask every device a cheap question, each at most once at a time
        (a probe still waiting for its answer is not doubled); returns how
        many devices are watched."""
        devices = self.devices(inv)
        for name, device in devices.items():
            with self._lock:
                if name in self._in_flight:
                    continue
                self._in_flight[name] = time.monotonic()
            self._pool.submit(self._probe, name, device)
        return len(devices)

    def _probe(self, name: str, device: object) -> None:
        try:
            driver = self.probe_driver(device)
            with self._lock:
                self._sent[name] = time.monotonic()
            driver.check()
        except DriverError as e:
            self._missed_one(name, str(e))
        except Exception as e:  # a bug, not the device: say so, and do not count it against the device
            self.log("error", "controller", f"probe of {self.kind} {name} failed: {e!r}")
        else:
            with self._lock:
                self._missed.pop(name, None)
                self._answered.add(name)
                self._last_answer[name] = time.monotonic()
            self._mark_up(name)
        finally:
            with self._verdict:
                self._in_flight.pop(name, None)
                self._sent.pop(name, None)
                self._verdict.notify_all()

    def _missed_one(self, name: str, reason: str) -> None:
        """Down after ``MISSES_TO_DOWN`` failed probes in a row: one slow
        answer (a busy switch CPU, the SNMP stack's first use) is not an
        outage, and taking a switch out of placement moves trunks."""
        with self._lock:
            self._missed[name] = self._missed.get(name, 0) + 1
            missed = self._missed[name]
        if missed >= MISSES_TO_DOWN:
            self.mark_down(name, reason)

    def start(self, inventory: Callable[[], Inventory], stop: threading.Event,
              acting: Callable[[Callable], Callable] = lambda f: f) -> None:
        """Probe on a thread of its own until ``stop``; a caller waiting for
        verdicts from now on waits for this watch's first probes.
        ``acting``: wraps the thread's work (``Workers.acting``)."""
        self._watching = True
        threading.Thread(target=acting(self.run), args=(inventory, stop), name=f"voe-{self.kind}-watch", daemon=True).start()

    def run(self, inventory: Callable[[], Inventory], stop: threading.Event) -> None:
        self._watching = True
        watched = 0
        while not stop.is_set():
            began = time.monotonic()
            try:
                watched = self.probe_all(inventory())
            except Exception as e:  # the watch must outlive one bad pass
                self.log("error", "controller", f"{self.kind} watch pass failed: {e!r}")
            self._period = self.pass_every(watched)
            stop.wait(max(0.0, self._period - (time.monotonic() - began)))

    def pass_every(self, watched: int) -> float:
        """Seconds between probe passes: the interval, or longer when
        ``watched`` devices at that interval would exceed
        ``max_probes_per_second`` (each probe costs CPU, in the probe
        process, that a busy controller's machine shares). A dead device
        is then known a little later at scale; a handful is probed as
        often as ever."""
        return max(self.interval, watched / self.max_probes_per_second)

