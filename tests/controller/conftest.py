"""A controller's context over the review datacenter, its switches
emulated on free ports, for tests of placement against live switches."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager

import pytest

from harness import free_port, load
from voe.controller.context import Ctx
from voe.controller.devices import Devices
from voe.controller.timing import Timing
from voe.domain.inventory import parse
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


@contextmanager
def watching(services):
    """A controller's context whose switch watch runs, as a started
    controller's does."""
    ctx = Ctx(services, services.runtime, Devices(3.0), Timing(), "http://127.0.0.1:1")
    stop = threading.Event()
    ctx.switches.start(ctx.inventory, stop)
    try:
        yield ctx
    finally:
        stop.set()
