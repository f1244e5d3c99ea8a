"""The ``live`` network backend: the persona's identity configured on the
running kernel over netlink (pyroute2), for images without networkd.

On the trunk NIC (matched by its hardware MAC) the boot vNIC's MAC and
address; an 802.1q VLAN interface per tagged vNIC with the persona's MAC and
address; a dedicated vNIC (or a VM's NIC) matched by MAC; a bond (the
trunk's, or a vNIC's) over its members with the persona's MAC. Idempotent:
what is already there is left alone. A kernel without 802.1q or bonding
support (no 8021q or bonding module) cannot create VLAN interfaces or
bonds; that is reported as such."""

from __future__ import annotations

import ipaddress
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError


class NoVlanSupport(RuntimeError):
    pass


class NoBondSupport(RuntimeError):
    pass


BOND_MODES = {"active-backup": 1, "lacp": 4}
"""voe's bond mode -> the kernel's number (802.3ad is 4)."""


def _by_mac(ip: IPRoute) -> dict[str, int]:
    """MAC -> link index; a NIC is known by its permanent MAC too, which
    stays when a bond or voe gives it another."""
    out: dict[str, int] = {}
    links = ip.get_links()
    for link in links:
        out.setdefault(link.get_attr("IFLA_ADDRESS"), link["index"])
    for link in links:
        if link.get_attr("IFLA_PERM_ADDRESS"):
            out[link.get_attr("IFLA_PERM_ADDRESS")] = link["index"]
    return out


def _set_mac(ip: IPRoute, index: int, mac: str) -> None:
    """``mac`` on the NIC, while it stays up where its driver allows (most
    do): a NIC taken down loses the routes through it, among them the one
    to an NFS root beyond a gateway, whose reads the agent itself needs.
    A NIC that must be down first gets those routes back at once."""
    link = ip.get_links(index)[0]
    if link.get_attr("IFLA_ADDRESS") != mac:
        try:
            ip.link("set", index=index, address=mac)
        except NetlinkError:
            routes = [(r.get_attr("RTA_DST") or "0.0.0.0", r["dst_len"], r.get_attr("RTA_GATEWAY"))
                      for r in ip.get_routes(family=socket.AF_INET, oif=index) if r.get_attr("RTA_GATEWAY")]
            ip.link("set", index=index, state="down")
            ip.link("set", index=index, address=mac)
            ip.link("set", index=index, state="up")
            for dst, length, gateway in routes:
                ip.route("replace", dst=dst, dst_len=length, gateway=gateway, oif=index)
    ip.link("set", index=index, state="up")


def _name(ip: IPRoute, index: int, name: str) -> None:
    """A NIC of the vNIC's own (a VM's, say) takes the vNIC's name, as a
    VLAN interface does, while it carries nothing yet: a rename needs the
    link down, which a NIC the initramfs brought up (the root's) must not
    go. A name another interface holds stays with it."""
    link = ip.get_links(index)[0]
    if link.get_attr("IFLA_IFNAME") == name or ip.get_addr(index=index, family=socket.AF_INET) \
            or ip.link_lookup(ifname=name):
        return
    ip.link("set", index=index, state="down")
    ip.link("set", index=index, ifname=name)


def _address(ip: IPRoute, index: int, cidr: str) -> None:
    iface = ipaddress.ip_interface(cidr)
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr(index=index)}
    if (str(iface.ip), iface.network.prefixlen) not in have:
        ip.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def _nic(macs: dict[str, int], mac: str) -> int:
    if mac not in macs:
        raise RuntimeError(f"no NIC with MAC {mac} on this machine")
    return macs[mac]


def _bond(ip: IPRoute, macs: dict[str, int], name: str, mode: str, members: list[str], mac: str | None) -> int:
    """The bond ``name`` over the NICs ``members`` (the first is an
    active-backup bond's primary), wearing ``mac``; made once."""
    existing = ip.link_lookup(ifname=name)
    if not existing:
        extra = {"bond_ad_lacp_rate": 1, "bond_xmit_hash_policy": 1} if mode == "lacp" else {}
        try:
            ip.link("add", ifname=name, kind="bond", bond_mode=BOND_MODES[mode], bond_miimon=100, **extra)
        except NetlinkError as e:
            raise NoBondSupport(f"cannot create bond {name} ({mode}): {e} (is the bonding module loaded?)") from None
        existing = ip.link_lookup(ifname=name)
    index = existing[0]
    for member in (_nic(macs, m) for m in members):
        if ip.get_links(member)[0].get_attr("IFLA_MASTER") != index:
            ip.link("set", index=member, state="down")
            ip.link("set", index=member, master=index)
        ip.link("set", index=member, state="up")
    if mode == "active-backup":
        ip.link("set", index=index, kind="bond", bond_primary=_nic(macs, members[0]))
    if mac:
        _set_mac(ip, index, mac)
    ip.link("set", index=index, state="up")
    return index


def apply(config: dict) -> None:
    with IPRoute() as ip:
        macs = _by_mac(ip)
        trunk = config.get("trunk")
        ifaces = config["interfaces"]
        gateway = next((i["gateway"] for i in ifaces if i.get("gateway")), None)
        parent = None
        if trunk:
            native = next((i for i in ifaces if not i["tagged"] and not i["dedicated"]), None)
            parent = (_bond(ip, macs, "trunk", trunk["bond"], trunk["members"], native["mac"] if native else None)
                      if trunk.get("bond") else _nic(macs, trunk["nic_mac"]))
        for i in ifaces:
            if trunk and i["tagged"]:
                existing = ip.link_lookup(ifname=i["name"])
                if not existing:
                    try:
                        ip.link("add", ifname=i["name"], kind="vlan", link=parent, vlan_id=i["vlan"], address=i["mac"])
                    except NetlinkError as e:
                        raise NoVlanSupport(f"cannot create VLAN {i['vlan']} on {trunk['nic_mac']}: {e} "
                                            "(is the 8021q module loaded?)") from None
                    existing = ip.link_lookup(ifname=i["name"])
                index = existing[0]
                ip.link("set", index=index, state="up")
            elif trunk and not i["dedicated"]:
                index = parent
                _set_mac(ip, index, i["mac"])
            elif i.get("bond"):
                index = _bond(ip, macs, i["name"], i["bond"], i["members"], i["mac"])
            else:
                index = macs.get(i["nic_mac"]) or _nic(macs, i["mac"])
                _name(ip, index, i["name"])
                _set_mac(ip, index, i["mac"])
            _address(ip, index, i["address"])
        if gateway and not ip.get_default_routes():
            ip.route("add", dst="default", gateway=gateway)
