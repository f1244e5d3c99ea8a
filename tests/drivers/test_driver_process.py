"""Drivers in a process of their own: the controller's calls reach the real
driver there, with its settings; its failures come back as the typed errors
they were, naming the device; a BMC that stays silent, or a power process
that dies, fails the call as transient (a start asks again, a fence tries
its next level), and the next call finds a new process."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import child_ends_with_its_killed_parent
from voe.drivers.base import DriverSettings, PowerDriver, PowerState
from voe.drivers.driver_process import DriverProcess, RemotePower
from voe.errors import DriverError, DriverTimeout


class FileBackedPower(PowerDriver):
    """A machine whose power lives in a file, so the test can see what the
    driver in the other process did. ``refuse``: a BMC that rejects the
    credentials; ``silent``: one that never answers a power-on."""

    class Settings(DriverSettings):
        path: str
        refuse: bool = False
        silent: bool = False

    def check(self) -> str:
        return f"pid {os.getpid()}"

    def _state(self) -> str:
        try:
            with open(self.settings.path) as f:
                return f.read()
        except FileNotFoundError:
            return "off"

    def _write(self, state: str) -> None:
        with open(self.settings.path, "w") as f:
            f.write(state)

    def _power_on(self) -> None:
        if self.settings.refuse:
            raise DriverError(self.device, "power on", "insufficient privilege")
        if self.settings.silent:
            time.sleep(self.settings.timeout)
            raise DriverTimeout(self.device, "power on", self.settings.timeout)
        self._write("on")

    def _power_off(self) -> None:
        self._write("off")

    _soft_off = _power_off

    def _reset(self) -> None:
        self._write("on")

    def _get_power_state(self) -> PowerState:
        return PowerState(self._state())

    def _set_boot_device(self, device, persistent) -> None:
        self._write(self._state())

    def _get_boot_device(self):
        return ("pxe", True)


@pytest.fixture
def process():
    p = DriverProcess()
    p.start()
    yield p
    p.close()


def driver(process, tmp_path, **settings) -> RemotePower:
    real = FileBackedPower("h1", FileBackedPower.Settings(path=str(tmp_path / "power"), timeout=0.5, **settings))
    return RemotePower(real, process)


def test_calls_run_in_the_power_process_and_confirm_there_as_here(process, tmp_path):
    power = driver(process, tmp_path)
    assert power.check() == f"pid {process.pid}" and process.pid != os.getpid()
    power.power_on_or_reset()  # the read-back in this process sees what the driver there did
    assert (tmp_path / "power").read_text() == "on"
    power.power_off(confirm=True)
    assert power.power_state() == PowerState.OFF


def test_a_refusal_crosses_as_the_typed_error_it_was(process, tmp_path):
    power = driver(process, tmp_path, refuse=True)
    with pytest.raises(DriverError) as e:
        power.power_on()
    assert (e.value.device, e.value.operation, e.value.cause, e.value.transient) == \
        ("h1", "power on", "insufficient privilege", False)


def test_a_silent_bmc_is_a_transient_timeout_naming_the_host(process, tmp_path):
    power = driver(process, tmp_path, silent=True)
    with pytest.raises(DriverTimeout) as e:
        power.power_on()
    assert e.value.device == "h1" and e.value.transient


def test_a_power_process_that_dies_fails_its_calls_as_transient_and_is_started_again(process, tmp_path):
    silent, healthy = driver(process, tmp_path, silent=True), driver(process, tmp_path)
    silent.settings = silent.settings.model_copy(update={"timeout": 30.0})
    first = process.pid
    began = time.monotonic()
    threading.Timer(0.3, os.kill, (first, signal.SIGKILL)).start()
    with pytest.raises(DriverError) as e:
        silent.power_on()
    assert e.value.transient and "exited" in e.value.cause and time.monotonic() - began < 10
    healthy.power_on()
    assert process.pid not in (None, first) and healthy.power_state() == PowerState.ON


def test_the_power_process_ends_when_the_controller_closes_it(tmp_path):
    p = DriverProcess()
    p.start()
    pid = p.pid
    p.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_terminals_ctrl_c_reaches_the_controller_not_its_driver_process(process):
    """A Ctrl-C at the terminal goes to the foreground process group: the
    driver process is in a session of its own, so it does not die with a
    traceback under a controller still shutting down (and get started
    again); it ends when the controller closes its pipe."""
    assert os.getsid(process.pid) == process.pid != os.getsid(0)
    assert os.getpgid(process.pid) != os.getpgid(0)


def test_the_power_process_ends_with_a_controller_killed_outright():
    """A controller SIGKILLed leaves no power process behind to send a
    call it had queued after the next controller has taken over."""
    assert child_ends_with_its_killed_parent(
        "from voe.drivers.driver_process import DriverProcess\n"
        "import time\np = DriverProcess(); p.start(); print(p.pid, flush=True); time.sleep(60)"), \
        "the power process outlived its controller"


def test_a_call_the_power_process_could_not_begin_in_time_is_dropped_unbegun(process, tmp_path, monkeypatch):
    """A power process stalled (swapped out, stopped) past the grace while
    calls queued for it: once it runs again, those calls must not go out,
    since their controller may have given up, fenced the server, and be
    counting on it staying off."""
    from voe.drivers import driver_process

    monkeypatch.setattr(driver_process, "GRACE", 0.3)
    power = driver(process, tmp_path)
    power.power_state()  # the process's driver is built and warm
    os.kill(process.pid, signal.SIGSTOP)
    threading.Timer(0.8, os.kill, (process.pid, signal.SIGCONT)).start()
    with pytest.raises(DriverError) as e:
        power.power_on(confirm=False)
    assert e.value.transient and "too busy" in e.value.cause
    assert not (tmp_path / "power").exists() or (tmp_path / "power").read_text() == "off"


def test_probes_run_in_the_probe_process_and_miss_a_device_that_does_not_answer(process, monkeypatch):
    """The switch watch's probe answers from the switch's SNMP agent with no
    SNMP driver built in this process; a switch that stops answering, and a
    hypervisor API that does not listen, fail the probe as transient errors
    naming the device, within the probe's timeout."""
    import socket

    from harness import free_port, load
    from voe.controller.devices import Devices
    from voe.domain.inventory import parse
    from voe.drivers.switch import snmp
    from voe.lab.switch_emulator import SwitchEmulator

    doc = load()
    doc["switches"][0]["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    doc["hosts"][0]["hypervisor"]["url"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    inv = parse(doc)
    switch, hv_host = inv.switches[0], inv.hosts[0]
    monkeypatch.setattr(snmp.SnmpSwitch, "__init__", lambda *a, **k: pytest.fail("an SNMP driver built here"))
    devices = Devices(3.0, probe_process=process)
    emulator = SwitchEmulator(switch, "127.0.0.1", switch.settings["port"])
    emulator.start()
    try:
        assert devices.switch_probe(switch, 0.5).check()
    finally:
        emulator.stop()
    began = time.monotonic()
    with pytest.raises(DriverError) as e:
        devices.switch_probe(switch, 0.5).check()
    assert (e.value.device, e.value.transient) == (switch.name, True) and time.monotonic() - began < 2.0
    with pytest.raises(DriverError) as e:
        devices.hypervisor_probe(hv_host, 0.5).check()
    assert (e.value.device, e.value.transient) == (hv_host.name, True)


def test_a_switch_probed_through_a_process_just_started_is_not_taken_for_a_slow_one():
    """A controller restarted in a failover probes its switches through a
    probe process that is starting (an interpreter, its imports, an SNMP
    engine). Counted in the probe's time, that start made every switch look
    slow, hence in doubt, and the restarted controller's fences tried the
    fabric last: the probe's time must be the switch's answer alone."""
    import socket

    from harness import free_port, load
    from voe.controller.device_watch import DeviceWatch
    from voe.controller.devices import Devices
    from voe.domain.inventory import parse
    from voe.lab.switch_emulator import SwitchEmulator

    doc = load()
    doc["switches"][0]["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    inv = parse(doc)
    switch = inv.switches[0]
    probes = DriverProcess(warm=("switch",))  # not started: the first probe starts it
    devices = Devices(3.0, probe_process=probes)
    watch = DeviceWatch("switch", lambda i: {switch.name: switch}, lambda sw: devices.switch_probe(sw, 1.0),
                        lambda *a, **k: None, 0.1, ThreadPoolExecutor(8), shunned="new trunks", probe_timeout=1.0)
    emulator = SwitchEmulator(switch, "127.0.0.1", switch.settings["port"])
    emulator.start()
    try:
        watch.probe_all(inv)
        deadline = time.monotonic() + 15
        while switch.name not in watch._answered:
            assert switch.name not in watch.avoid(), "the process's start was counted as the switch's slowness"
            assert time.monotonic() < deadline, "the switch was never heard"
            time.sleep(0.005)
    finally:
        emulator.stop()
        probes.close()
