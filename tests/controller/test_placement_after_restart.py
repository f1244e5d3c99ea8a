"""A controller just restarted places nothing blind: a switch that died
under its predecessor is known silent before the first placement, so a
fenced persona's new trunk does not go there (a start that fails on the
dead switch costs the failover a second and a half and another placement)."""

from __future__ import annotations

from tests.controller.conftest import watching
from voe.controller.start import machines_now


def test_the_first_placement_of_a_fresh_controller_keeps_off_a_switch_that_died_before_it(services, review_switches):
    review_switches["sw1"].set_down(True)
    with watching(services) as ctx:
        _, machines = machines_now(ctx)  # at once, as a restarted controller's first retarget does
        assert machines and all(n.switch != "sw1" for m in machines for n in m.nics)
        assert any(n.switch == "sw2" for m in machines for n in m.nics)  # the live switch was heard, not guessed
        assert "sw1" in ctx.switches.avoid()
