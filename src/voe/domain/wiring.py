"""How a persona is wired on a machine: which MAC boots, what the agent
configures, and what every switch port must carry. Pure; the same function
answers the agent, configures the switches and explains the physical view.

Physical machine: the persona's vNICs ride an 802.1q trunk on the host's boot
NIC (its first free NIC cabled to a managed switch that is up, chosen when
the incarnation is placed and kept for its life): the boot vNIC untagged on the
native VLAN, every other one tagged. A vNIC with NICs of its own (dedicated,
a NIC named or labelled, or a bond) gets access ports on its VLAN; a bonded
trunk puts the same VLANs on every member's port. Which NICs: see
``nic_choice``.

VM: the hypervisor gives the VM one NIC per vNIC, with the persona's MACs, and
tags each NIC's frames; the hypervisor host's trunk port (its first cabled
NIC on a switch that is up: an active-backup uplink) carries the union of its
VMs' VLANs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from voe.domain import nic_choice
from voe.domain.inventory import Inventory
from voe.domain.models import Host, Nic, Persona, Vnic
from voe.domain.ports import PortConfig


class WiringError(Exception):
    pass


@dataclass(frozen=True)
class Interface:
    name: str
    network: str
    vlan: int
    tagged: bool
    nic_mac: str
    mac: str
    address: str
    gateway: str | None
    dedicated: bool
    bond: str | None = None  # the bond mode of a bonded vNIC
    members: tuple[str, ...] = ()  # the MACs of its NICs, when it has NICs of its own
    dns: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {**self.__dict__, "members": list(self.members), "dns": list(self.dns)}


def boot_vnic(p: Persona) -> Vnic | None:
    return next((v for v in p.vnics if v.boot), p.vnics[0] if p.vnics else None)


def ordered_vnics(p: Persona) -> list[Vnic]:
    """Boot vNIC first: a VM network-boots from its first NIC."""
    b = boot_vnic(p)
    return ([b] if b else []) + [v for v in p.vnics if v is not b]


def cabled_nics(inv: Inventory, host: Host) -> list[Nic]:
    switches = inv.by_name("switches")
    return [n for n in host.nics if n.switch in switches]


def trunk_nic(inv: Inventory, host: Host, down: frozenset[str] = frozenset(), mac: str | None = None) -> Nic:
    """The NIC that carries a host's trunk: the one an incarnation booted
    from (``mac``) for its whole life, else the first cabled NIC on a switch
    not in ``down`` (switches that do not answer)."""
    nics = cabled_nics(inv, host)
    if mac is not None:
        found = next((n for n in nics if n.mac == mac), None)
        if found is not None:
            return found
    up = [n for n in nics if n.switch not in down]
    if not up:
        raise WiringError(f"host {host.name} has no NIC cabled to a managed switch"
                          + (" that is up" if nics else ""))
    return up[0]


def nic_roles(inv: Inventory, host: Host, p: Persona, boot_mac: str | None = None,
              down: frozenset[str] = frozenset()) -> nic_choice.NicRoles:
    """The host NICs of each of the persona's carriers on a physical server
    (``voe.domain.nic_choice``); ``boot_mac``: the incarnation's."""
    try:
        return nic_choice.choose(p, nic_choice.host_nics(inv, host), host.name, boot_mac, down)
    except nic_choice.NicShortage as e:
        raise WiringError(str(e)) from None


def interfaces(inv: Inventory, p: Persona, kind: str, host: Host, boot_mac: str | None = None) -> list[Interface]:
    """What the agent configures; ``boot_mac`` is the incarnation's (its
    NIC carries the trunk of a physical machine)."""
    nets = inv.by_name("networks")
    boot = boot_vnic(p)
    out = []
    roles = nic_roles(inv, host, p, boot_mac) if kind == "physical" else None
    for i, v in enumerate(p.vnics):
        net = nets[v.network]
        address = f"{v.ip}/{net.subnet.prefixlen}"
        gw = str(net.gateway) if net.gateway else None
        mac = assigned_mac(v)
        dns = tuple(str(a) for a in net.dns)
        if roles is None:
            out.append(Interface(v.network, v.network, net.vlan, False, mac, mac, address, gw, v.own_nics, dns=dns))
        elif i in roles.carriers:
            members = roles.carriers[i]
            out.append(Interface(v.network, v.network, net.vlan, False, members[0].mac, mac, address, gw, True,
                                 v.bond.mode if v.bond else None, tuple(n.mac for n in members), dns))
        else:
            out.append(Interface(v.network, v.network, net.vlan, v is not boot, roles.trunk[0].mac, mac, address, gw,
                                 False, dns=dns))
    return out


def agent_network(inv: Inventory, p: Persona, kind: str, host: Host, boot_mac: str | None) -> dict:
    """The ``trunk`` and ``interfaces`` of an agent's configuration
    (docs/agent-protocol.md, section 2)."""
    return {"trunk": trunk_config(inv, p, host, boot_mac) if kind == "physical" else None,
            "interfaces": [i.as_dict() for i in interfaces(inv, p, kind, host, boot_mac)]}


def trunk_config(inv: Inventory, p: Persona, host: Host, boot_mac: str | None) -> dict | None:
    """The trunk as the agent builds it on a physical server: the NIC it
    rides (or the bond's members), and the network its untagged frames are
    on; None when every vNIC has NICs of its own."""
    roles = nic_roles(inv, host, p, boot_mac)
    if not roles.trunk:
        return None
    boot = boot_vnic(p)
    bond = p.trunk.bond
    return {"nic_mac": roles.trunk[0].mac, "native_network": boot.network if boot and not boot.own_nics else None,
            "bond": bond.mode if bond else None, "members": [n.mac for n in roles.trunk]}


def assigned_mac(v: Vnic) -> str:
    """A vNIC's MAC: the inventory assigns one to every vNIC it stores."""
    if v.mac is None:
        raise WiringError(f"vNIC on {v.network} has no MAC yet: the inventory assigns one when it is applied")
    return v.mac


def boot_mac(inv: Inventory, p: Persona, kind: str, host: Host, down: frozenset[str] = frozenset()) -> str:
    """The MAC whose iPXE script boots this incarnation: a physical machine
    boots from its trunk NIC, on a switch that is up."""
    if kind == "vm":
        b = boot_vnic(p)
        if b is None:
            raise WiringError(f"persona {p.name} has no vNIC to network-boot a VM from")
        return assigned_mac(b)
    return nic_roles(inv, host, p, down=down).boot.mac


def vm_vlans(inv: Inventory, p: Persona) -> tuple[int, ...]:
    nets = inv.by_name("networks")
    return tuple(nets[v.network].vlan for v in ordered_vnics(p))


@dataclass(frozen=True)
class Placement:
    persona: str
    kind: str
    host: str
    boot_mac: str | None = None


def port_plan(inv: Inventory, placements: Iterable[Placement], hosts_in_scope: Iterable[str],
              down: frozenset[str] = frozenset()) -> dict[tuple[str, str], PortConfig]:
    """What every cabled port of the hosts in scope must carry, given what
    runs where. A port with nothing on it carries no VLAN: removing a persona
    removes its VLANs. ``down``: switches that do not answer, which a
    hypervisor host's uplink avoids."""
    nets = inv.by_name("networks")
    hosts = inv.by_name("hosts")
    personas = inv.by_name("personas")
    plan: dict[tuple[str, str], PortConfig] = {}
    for name in hosts_in_scope:
        for nic in cabled_nics(inv, hosts[name]):
            plan[nic.port_key] = PortConfig.trunk(frozenset(), None)
    vm_vlans_by_host: dict[str, set[int]] = {}
    for pl in placements:
        p, host = personas.get(pl.persona), hosts.get(pl.host)
        if p is None or host is None:
            continue
        if pl.kind == "vm":
            vm_vlans_by_host.setdefault(host.name, set()).update(vm_vlans(inv, p))
            continue
        roles = nic_roles(inv, host, p, pl.boot_mac, down)
        boot = boot_vnic(p)
        tagged = {nets[v.network].vlan for i, v in enumerate(p.vnics) if i not in roles.carriers and v is not boot}
        native = nets[boot.network].vlan if boot is not None and not boot.own_nics else None
        for member in roles.trunk:  # a bond's members alike
            plan[member.port_key] = PortConfig.trunk(tagged, native)
        for i, members in roles.carriers.items():
            if i != nic_choice.TRUNK:
                for member in members:
                    plan[member.port_key] = PortConfig.access(nets[p.vnics[i].network].vlan)
    for host_name, vlans in vm_vlans_by_host.items():
        host = hosts[host_name]
        # with every switch of the host down the uplink stays where it is:
        # writing it then fails as the switch's error, and it is written
        # when a switch answers again
        trunk = trunk_nic(inv, host, down if any(n.switch not in down for n in cabled_nics(inv, host)) else frozenset())
        plan[trunk.port_key] = PortConfig.trunk(vlans, None)
    return plan
