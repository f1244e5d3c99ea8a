"""A controller just restarted places nothing blind: a switch that died
under its predecessor is known silent before the first placement, so a
fenced persona's new trunk does not go there (a start that fails on the
dead switch costs the failover a second and a half and another placement)."""

from __future__ import annotations

import socket
import threading

from harness import free_port, load
from voe.controller.context import Ctx
from voe.controller.devices import Devices
from voe.controller.start import machines_now
from voe.controller.timing import Timing
from voe.domain.inventory import parse
from voe.lab.switch_emulator import SwitchEmulator


def test_the_first_placement_of_a_fresh_controller_keeps_off_a_switch_that_died_before_it(services):
    doc = load()
    for sw in doc["switches"]:
        sw["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    inv = parse(doc)
    services.inventory.write(lambda _: inv)
    emulators = {sw.name: SwitchEmulator(sw, "127.0.0.1", sw.settings["port"]) for sw in inv.switches}
    for e in emulators.values():
        e.start()
    emulators["sw1"].set_down(True)
    ctx = Ctx(services, services.runtime, Devices(3.0), Timing(), "http://127.0.0.1:1")
    stop = threading.Event()
    ctx.switches.start(ctx.inventory, stop)
    try:
        _, machines = machines_now(ctx)  # at once, as a restarted controller's first retarget does
        assert machines and all("sw1" not in m.nic_switches for m in machines)
        assert any("sw2" in m.nic_switches for m in machines)  # the live switch was heard, not guessed
        assert "sw1" in ctx.switches.avoid()
    finally:
        stop.set()
        for e in emulators.values():
            e.stop()
