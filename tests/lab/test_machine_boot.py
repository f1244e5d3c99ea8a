"""A lab machine boots after its BMC has answered, as firmware does: the
lab's BMCs share one I/O loop, and a network boot inside the power call (an
HTTP fetch of the iPXE script, a process start) stalled every BMC of the lab
for as long. A power-off during the boot starts nothing."""

from __future__ import annotations

import sys
import threading
import time

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

    def url_for(self, machine: str) -> str:
        return "http://127.0.0.1:1"


def machine(tmp_path, network) -> Machine:
    m = Machine("dl360-7", ["00:0b:cd:07:00:01"], network, ProcessOS([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path))
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
                CountingOS([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path))
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
