"""Fencing a host at the fabric: every cabled switch port admin down, each
read back by the driver, then the evidence recorded. The writes go through
the port keeper's per-switch slots, so no pass of the keeper interleaves."""

from __future__ import annotations

from collections.abc import Callable

from voe.controller.ports import PortKeeper
from voe.domain import wiring
from voe.domain.inventory import Inventory
from voe.domain.models import Host, Nic
from voe.errors import DriverError


class GaveWay(DriverError):
    """A fabric fence that did not wait for a switch known silent, so that
    the next fence level could be tried first."""


class FabricFence:
    def __init__(self, ports: PortKeeper):
        self.ports = ports

    def shut(self, inv: Inventory, host: Host, patient: bool, record: Callable[[list[str]], None]) -> list[str]:
        """Every cabled port of ``host`` admin down, then ``record`` (the
        fence's evidence in the store). Until recorded, the host plans admin
        down in every pass (``PortKeeper.shutting``). Unless ``patient``
        (the last level left), a switch that is not answering fails the
        level at once instead of waiting out its timeouts, so the next
        level is tried."""
        switches = inv.by_name("switches")
        shut: list[str] = []
        with self.ports.shutting(host.name):
            for nic in wiring.cabled_nics(inv, host):
                with self.ports.holding(nic.switch, patient, lambda nic=nic: self._give_way_if_silent(nic)):
                    if not patient:
                        self._give_way_if_silent(nic)
                    self.ports.forget(nic.switch, nic.port)
                    self.ports.switch_driver(switches[nic.switch]).set_admin(nic.port, False)
                shut.append(f"{nic.switch}:{nic.port}")
            if not shut:
                raise DriverError(host.name, "fence fabric", "no cabled switch port to shut")
            record(shut)
        return shut

    def _give_way_if_silent(self, nic: Nic) -> None:
        if nic.switch in self.ports.switches.failing():
            raise GaveWay(nic.switch, f"set port {nic.port} admin down", "the switch does not answer", transient=True)
