"""The machines placement chooses from, built from the inventory and from
what already runs where. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from voe.domain.inventory import Inventory
from voe.domain.nic_choice import host_nics
from voe.domain.placement import Machine


@dataclass(frozen=True)
class Allocation:
    """A live incarnation holding a machine."""

    persona: str
    kind: str
    host: str


def machines(inv: Inventory, allocations: Iterable[Allocation] = (), unavailable: Iterable[str] = (),
             switches_down: Iterable[str] = ()) -> list[Machine]:
    """Every physical host that is not a hypervisor is one physical machine;
    every hypervisor host offers one pool of VM capacity. A NIC on a switch
    that does not answer cannot carry a new incarnation's networks."""
    down = set(unavailable)
    switches = set(inv.by_name("switches")) - set(switches_down)
    out: dict[str, Machine] = {}
    for h in inv.hosts:
        nics = host_nics(inv, h, switches)
        available = h.schedulable and h.name not in down
        if h.hypervisor is not None:
            out[f"vm:{h.name}"] = Machine("vm", h.name, h.hypervisor.cpus, h.hypervisor.memory, labels=h.labels,
                                          nics=nics, available=available)
        else:
            fc = frozenset(b.vendor.lower() for b in h.hbas if b.kind == "fc")
            out[f"physical:{h.name}"] = Machine("physical", h.name, h.cpus, h.memory, fc_vendors=fc, labels=h.labels,
                                                nics=nics, available=available)
    personas = inv.by_name("personas")
    for a in allocations:
        m = out.get(f"{a.kind}:{a.host}")
        p = personas.get(a.persona)
        if m is not None and p is not None:
            m.take(p)
    return list(out.values())
