"""What the switch ports of some hosts must carry now: from the incarnations
live there, the personas a group start reserved there, and the hosts being
fenced at the fabric. Pure; the controller's port keeper writes the result.

A server reserved for a persona still waiting for its dependencies counts
as that persona's, so its ports are configured ahead; the server is off
meanwhile, so the VLANs reach nothing running. A hypervisor host's uplink
carries its reserved VMs' networks ahead too: each VM's vNICs are bound to
their own VLANs by the hypervisor, as on any host trunked for the VMs it
may run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from voe.domain import wiring
from voe.domain.inventory import Inventory
from voe.domain.ports import PortConfig

Reserved = Mapping[str, tuple[tuple[str, str], ...]]
"""host -> the personas a group start reserved there, as (persona, kind):
one physical persona on a server, VMs on a hypervisor host."""


def plan_ports(inv: Inventory, live: Iterable[wiring.Placement], reserved: Reserved, hosts: Iterable[str],
               down: frozenset[str], shut: set[str]) -> dict[tuple[str, str], PortConfig]:
    """Every cabled port of ``hosts``: ``live``, the incarnations on those
    hosts; a reserved server with none is planned for the persona it is
    reserved for, a hypervisor host for its reserved VMs besides its live
    ones; ``down``, switches that do not answer (an uplink avoids them);
    ``shut``, hosts whose ports stay admin down (fenced at the fabric)."""
    hosts = list(hosts)
    placements = list(live)
    occupied = {pl.host for pl in placements}
    placements += [wiring.Placement(persona, kind, h) for h in hosts for persona, kind in reserved.get(h, ())
                   if kind == "vm" or h not in occupied]
    plan = wiring.port_plan(inv, placements, hosts, down)
    for name in hosts:
        if name in shut:
            for nic in wiring.cabled_nics(inv, inv.by_name("hosts")[name]):
                cfg = plan[nic.port_key]
                plan[nic.port_key] = PortConfig(cfg.mode, cfg.native_vlan, cfg.tagged, admin_up=False)
    return plan


def describe(cfg: PortConfig) -> str:
    """One port's configuration, as the event log says it."""
    tagged = ",".join(str(v) for v in sorted(cfg.tagged)) or "none"
    state = "up" if cfg.admin_up else "DOWN"
    return f"{cfg.mode}, native {cfg.native_vlan or 'none'}, tagged {tagged}, admin {state}"
