"""Probing many devices is paced: a probe costs the controller CPU (about
1.5 ms over SNMP), and dozens of switches probed every half second took a
tenth of a controller starting a thousand personas. A handful of devices
is probed at the configured interval, as failover timing assumes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from voe.controller.device_watch import DeviceWatch


class Counted:
    def __init__(self) -> None:
        self.probes = 0
        self._lock = threading.Lock()

    def check(self) -> str:
        with self._lock:
            self.probes += 1
        return "ok"


def watch_for(devices: int, seconds: float, interval: float, max_rate: float) -> int:
    """Probes answered while a watch of ``devices`` ran for ``seconds``."""
    driver = Counted()
    names = {f"sw{i}": object() for i in range(devices)}
    watch = DeviceWatch("switch", lambda inv: names, lambda device: driver, lambda *a, **k: None, interval,
                        ThreadPoolExecutor(8), shunned="new trunks", max_probes_per_second=max_rate)
    stop = threading.Event()
    watch.start(lambda: None, stop)
    time.sleep(seconds)
    stop.set()
    time.sleep(0.1)  # the last probes answered
    return driver.probes


def test_many_devices_are_probed_no_faster_than_the_rate_allows():
    # forty devices at 40 probes a second: a pass a second, not one every 0.05 s
    probes = watch_for(devices=40, seconds=1.5, interval=0.05, max_rate=40)
    assert 40 <= probes <= 80


def test_a_handful_of_devices_is_probed_at_the_interval():
    probes = watch_for(devices=2, seconds=1.0, interval=0.05, max_rate=40)
    assert probes >= 2 * 10  # at least half the passes of one every 0.05 s, under any load


def test_the_spacing_follows_the_device_count():
    watch = DeviceWatch("switch", lambda inv: {}, lambda d: None, lambda *a, **k: None, 0.5, ThreadPoolExecutor(1),
                        shunned="new trunks",
                        max_probes_per_second=20)
    assert watch.pass_every(2) == 0.5 and watch.pass_every(24) == 1.2
