"""The review datacenter with its switches emulated over real SNMP on free
ports: a controller's context for tests of placement against live
switches, and a port keeper for tests of the port passes."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager

import pytest

from harness import free_port, load
from voe.controller.context import Ctx
from voe.controller.device_watch import DeviceWatch
from voe.controller.devices import Devices
from voe.controller.ports import PortKeeper
from voe.controller.timing import Timing
from voe.controller.workers import Workers
from voe.domain.inventory import parse
from voe.drivers.boot.ipxe import ControllerLinks
from voe.drivers.switch.snmp import SnmpSwitch
from voe.lab.switch_emulator import SwitchEmulator


@pytest.fixture
def review_switches(services) -> dict[str, SwitchEmulator]:
    """The review datacenter in the store, each of its switches answering
    SNMP (a test may take one down before the controller first hears it)."""
    doc = load()
    for sw in doc["switches"]:
        sw["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    inv = parse(doc)
    services.inventory.write(lambda _: inv)
    emulators = {sw.name: SwitchEmulator(sw, "127.0.0.1", sw.settings["port"]) for sw in inv.switches}
    for e in emulators.values():
        e.start()
    yield emulators
    for e in emulators.values():
        e.stop()


@pytest.fixture
def fabric(services):
    """The review's datacenter with its two switches emulated over real
    SNMP, and web-1 running as a VM on dl360-1 (a hypervisor host)."""
    doc = load()
    for sw in doc["switches"]:
        sw["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    inv = parse(doc)
    emulators = {sw.name: SwitchEmulator(sw, "127.0.0.1", sw.settings["port"]) for sw in inv.switches}
    for e in emulators.values():
        e.start()
    drivers = {sw.name: SnmpSwitch.from_switch(sw) for sw in inv.switches}
    workers = Workers(Timing())
    watch = DeviceWatch("switch", lambda i: i.by_name("switches"), lambda sw: drivers[sw.name], lambda *a, **k: None,
                        0.5, workers.probes, shunned="new trunks")
    keeper = PortKeeper(services.runtime, lambda sw: drivers[sw.name], lambda *a, **k: None, watch, workers)
    services.runtime.begin_incarnation("web-1", "vm", "dl360-1", "web-1", "02:56:4f:00:00:07", "test")
    keeper.reconcile(lambda: inv, ["dl360-1"])
    yield inv, keeper, watch, {name: e.state for name, e in emulators.items()}, emulators
    workers.shutdown()
    for d in drivers.values():
        d.close()
    for e in emulators.values():
        e.stop()


@contextmanager
def watching(services):
    """A controller's context whose switch watch runs, as a started
    controller's does."""
    ctx = Ctx(services, services.runtime, Devices(3.0), Timing(), ControllerLinks("http://127.0.0.1:1", "http://127.0.0.1:1"))
    stop = threading.Event()
    ctx.switches.start(ctx.inventory, stop)
    try:
        yield ctx
    finally:
        stop.set()
