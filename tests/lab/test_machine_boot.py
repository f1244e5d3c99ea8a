"""A lab machine boots after its BMC has answered, as firmware does: the
lab's BMCs share one I/O loop, and a network boot inside the power call (an
HTTP fetch of the iPXE script, a process start) stalled every BMC of the lab
for as long. A power-off during the boot starts nothing. A fetch the
controller does not answer is tried again, as iPXE does."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

from voe.lab import machine as machine_module
from voe.lab.machine import Machine, ProcessOS

SCRIPT = "#!ipxe\nset voe_args voe.persona=web-1 voe.generation=3\n"


class SlowBootNetwork:
    """A controller whose boot script arrives only when the test says so."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked = threading.Event()

    def boot_script(self, mac: str) -> str:
        self.asked.set()
        self.release.wait(10)
        return SCRIPT

    def proxy_for(self, machine: str) -> None:
        return None


def machine(tmp_path, network) -> Machine:
    sleeper = ProcessOS([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path)
    m = Machine("dl360-7", ["00:0b:cd:07:00:01"], network, sleeper, ThreadPoolExecutor(1))
    m.set_boot("pxe", False)
    return m


def test_power_on_returns_before_the_network_boot_and_the_boot_then_starts_the_persona(tmp_path):
    network = SlowBootNetwork()
    m = machine(tmp_path, network)
    began = time.monotonic()
    m.power_on()
    assert time.monotonic() - began < 0.5 and m.power_state() == "on"
    assert network.asked.wait(5) and m.last_boot is None  # booting
    network.release.set()
    boot = m.wait_booted(5)
    try:
        assert boot is not None and boot.outcome == "os" and (boot.persona, boot.generation) == ("web-1", 3)
        assert m.os.alive()
        assert m.boot_device() == (None, False)  # the one-time PXE override is used up
    finally:
        m.power_off()


def test_a_power_off_during_the_network_boot_starts_nothing(tmp_path):
    network = SlowBootNetwork()
    m = machine(tmp_path, network)
    m.power_on()
    assert network.asked.wait(5)
    m.power_off()
    network.release.set()
    time.sleep(0.3)
    assert m.power_state() == "off" and not m.os.alive() and m.last_boot is None


class CountingOS(ProcessOS):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.starts = 0

    def start(self, *a, **k):
        self.starts += 1
        super().start(*a, **k)


def test_a_reset_during_the_network_boot_boots_once_not_twice(tmp_path):
    network = SlowBootNetwork()
    m = Machine("dl360-7", ["00:0b:cd:07:00:01"], network,
                CountingOS([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path), ThreadPoolExecutor(1))
    m.set_boot("pxe", True)
    m.power_on()
    assert network.asked.wait(5)
    m.reset()  # the first boot is still fetching its script
    network.release.set()
    try:
        assert m.wait_booted(5).outcome == "os"
        time.sleep(0.3)
        assert m.os.starts == 1 and m.os.alive()
    finally:
        m.power_off()


class BusyController:
    """A controller that does not answer the first ``late`` fetches."""

    def __init__(self, late: int) -> None:
        self.late = late
        self.asked = 0

    def boot_script(self, mac: str) -> str:
        self.asked += 1
        if self.asked <= self.late:
            raise TimeoutError("timed out")
        return SCRIPT

    def proxy_for(self, machine: str) -> None:
        return None


def test_a_boot_script_fetch_that_timed_out_is_tried_again_as_firmware_does(tmp_path, monkeypatch):
    monkeypatch.setattr(machine_module, "FETCH_PAUSE", 0.01)
    network = BusyController(late=2)
    m = machine(tmp_path, network)
    m.power_on()
    boot = m.wait_booted(5)
    try:
        assert boot is not None and boot.outcome == "os" and network.asked == 3
    finally:
        m.power_off()


def test_a_controller_that_never_answers_leaves_no_bootable_device(tmp_path, monkeypatch):
    monkeypatch.setattr(machine_module, "FETCH_PAUSE", 0.01)
    network = BusyController(late=10**6)
    m = machine(tmp_path, network)
    m.power_on()
    boot = m.wait_booted(5)
    assert boot is not None and boot.outcome == "no bootable device" and network.asked == machine_module.FETCH_TRIES
    m.power_off()


def test_a_thaw_that_finds_the_os_gone_does_nothing(tmp_path):
    """A repair thaws a hung OS while a fence's power-off may be killing
    it: a process group gone between the look and the signal is an OS
    no longer there to thaw, not a failed repair (it failed a fault
    campaign's control call)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    gone.wait()
    os_ = ProcessOS([sys.executable, "-c", "pass"], tmp_path)
    os_.proc = types.SimpleNamespace(pid=gone.pid, poll=lambda: None)  # still looked alive a moment ago
    os_.freeze(False)  # the group is gone: no ProcessLookupError
