"""The ``live`` network backend: the persona's identity configured on the
running kernel, read over rtnetlink (``voe.agent.netlink``) and changed by
iproute2's ``ip``, which every Linux persona has: the agent needs no
library beyond Python's own.

On the trunk NIC (matched by its hardware MAC) the boot vNIC's MAC and
address; an 802.1q VLAN interface per tagged vNIC with the persona's MAC and
address; a dedicated vNIC (or a VM's NIC) matched by MAC; a bond (the
trunk's, or a vNIC's) over its members with the persona's MAC. Idempotent:
what is already there is left alone. A kernel without 802.1q or bonding
support (no 8021q or bonding module) cannot create VLAN interfaces or
bonds; that is reported as such."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from voe.agent import netlink


class NoVlanSupport(RuntimeError):
    pass


class NoBondSupport(RuntimeError):
    pass


class IpFailed(RuntimeError):
    """An ``ip`` command failed: the command and what it said."""


BOND_MODES = {"active-backup": "active-backup", "lacp": "802.3ad"}
"""voe's bond mode -> the kernel's."""


class Ip:
    """The kernel's interfaces: read over rtnetlink, changed by ``ip``."""

    def __init__(self, program: str = "ip") -> None:
        self.program = program

    def __call__(self, *args: str) -> str:
        done = subprocess.run([self.program, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise IpFailed(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
        return done.stdout

    def links(self) -> list[dict]:
        return netlink.links()

    def link(self, name: str) -> dict | None:
        return next((link for link in self.links() if link["name"] == name), None)

    def addresses(self, name: str) -> set[str]:
        index = self.link(name)["index"]
        return {a["cidr"] for a in netlink.ipv4_addresses() if a["index"] == index}

    def gateway_routes(self, name: str) -> list[tuple[str, str]]:
        """(destination, gateway) of each IPv4 route through ``name`` by a gateway."""
        return [(r["dst"], r["gateway"]) for r in json.loads(self("-json", "-4", "route", "show", "dev", name) or "[]")
                if r.get("gateway")]

    def has_default_route(self) -> bool:
        return bool(json.loads(self("-json", "-4", "route", "show", "default") or "[]"))


def _by_mac(ip: Ip) -> dict[str, str]:
    """MAC -> interface name; a NIC is known by its permanent MAC too,
    which stays when a bond or voe gives it another."""
    out: dict[str, str] = {}
    links = ip.links()
    for link in links:
        out.setdefault(link["mac"], link["name"])
    for link in links:
        if link["perm_mac"]:
            out[link["perm_mac"]] = link["name"]
    return out


def _set_mac(ip: Ip, name: str, mac: str) -> None:
    """``mac`` on the NIC, while it stays up where its driver allows (most
    do): a NIC taken down loses the routes through it, among them the one
    to an NFS root beyond a gateway, whose reads the agent itself needs.
    A NIC that must be down first gets those routes back at once."""
    if ip.link(name)["mac"] != mac:
        try:
            ip("link", "set", "dev", name, "address", mac)
        except IpFailed:
            routes = ip.gateway_routes(name)
            ip("link", "set", "dev", name, "down")
            ip("link", "set", "dev", name, "address", mac)
            ip("link", "set", "dev", name, "up")
            for dst, gateway in routes:
                ip("route", "replace", dst, "via", gateway, "dev", name)
    ip("link", "set", "dev", name, "up")


def _name(ip: Ip, name: str, wanted: str) -> str:
    """A NIC of the vNIC's own (a VM's, say) takes the vNIC's name, as a
    VLAN interface does, while it carries nothing yet: a rename needs the
    link down, which a NIC the initramfs brought up (the root's) must not
    go. A name another interface holds stays with it. Returns the NIC's
    name."""
    if name == wanted or ip.addresses(name) or ip.link(wanted):
        return name
    ip("link", "set", "dev", name, "down")
    ip("link", "set", "dev", name, "name", wanted)
    return wanted


def _address(ip: Ip, name: str, cidr: str) -> None:
    iface = ipaddress.ip_interface(cidr)
    if iface.with_prefixlen not in ip.addresses(name):
        ip("addr", "add", iface.with_prefixlen, "dev", name)


def _nic(macs: dict[str, str], mac: str) -> str:
    if mac not in macs:
        raise RuntimeError(f"no NIC with MAC {mac} on this machine")
    return macs[mac]


def _bond(ip: Ip, macs: dict[str, str], name: str, mode: str, members: list[str], mac: str | None) -> str:
    """The bond ``name`` over the NICs ``members`` (the first is an
    active-backup bond's primary), wearing ``mac``; made once."""
    if not ip.link(name):
        extra = ("lacp_rate", "fast", "xmit_hash_policy", "layer3+4") if mode == "lacp" else ()
        try:
            ip("link", "add", name, "type", "bond", "mode", BOND_MODES[mode], "miimon", "100", *extra)
        except IpFailed as e:
            raise NoBondSupport(f"cannot create bond {name} ({mode}): {e} (is the bonding module loaded?)") from None
    index = ip.link(name)["index"]
    for member in (_nic(macs, m) for m in members):
        if ip.link(member)["master"] != index:
            ip("link", "set", "dev", member, "down")
            ip("link", "set", "dev", member, "master", name)
        ip("link", "set", "dev", member, "up")
    if mode == "active-backup":
        ip("link", "set", "dev", name, "type", "bond", "primary", _nic(macs, members[0]))
    if mac:
        _set_mac(ip, name, mac)
    ip("link", "set", "dev", name, "up")
    return name


def apply(config: dict, ip: Ip | None = None) -> None:
    ip = ip or Ip()
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
            name = i["name"]
            if not ip.link(name):
                try:
                    ip("link", "add", "link", parent, "name", name, "address", i["mac"], "type", "vlan",
                       "id", str(i["vlan"]))
                except IpFailed as e:
                    raise NoVlanSupport(f"cannot create VLAN {i['vlan']} on {trunk['nic_mac']}: {e} "
                                        "(is the 8021q module loaded?)") from None
            ip("link", "set", "dev", name, "up")
        elif trunk and not i["dedicated"]:
            name = parent
            _set_mac(ip, name, i["mac"])
        elif i.get("bond"):
            name = _bond(ip, macs, i["name"], i["bond"], i["members"], i["mac"])
        else:
            name = _name(ip, macs.get(i["nic_mac"]) or _nic(macs, i["mac"]), i["name"])
            _set_mac(ip, name, i["mac"])
        _address(ip, name, i["address"])
    if gateway and not ip.has_default_route():
        ip("route", "add", "default", "via", gateway)
