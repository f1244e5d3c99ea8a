"""What a persona's OS configured, read from the systemd-networkd files its
agent rendered into the machine's root (docs/agent-protocol.md, section 4):
which MAC sends on which VLAN with which address. The data plane uses this
and the switches' state; voe's database is never consulted."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OsInterface:
    name: str
    vlan: int | None  # None: untagged frames on the NIC
    nic_macs: tuple[str, ...]  # the NICs it rides on (a bond's members), matched by MAC; () when unknown
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]


class Unit:
    """A systemd unit file: sections of keys that may repeat (networkd
    takes ``Address=`` and ``VLAN=`` once per value)."""

    def __init__(self, text: str):
        self.values: dict[tuple[str, str], list[str]] = {}
        section = ""
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif "=" in line:
                k, v = line.split("=", 1)
                self.values.setdefault((section, k.strip()), []).append(v.strip())

    def get(self, section: str, key: str, fallback: str | None = None) -> str | None:
        vals = self.values.get((section, key))
        return vals[-1] if vals else fallback

    def all(self, section: str, key: str) -> list[str]:
        return self.values.get((section, key), [])


def _read(path: Path) -> Unit:
    return Unit(path.read_text())


def interfaces(root: Path) -> list[OsInterface]:
    netdir = root / "etc" / "systemd" / "network"
    if not netdir.is_dir():
        return []
    vlans: dict[str, int] = {}
    members: dict[str, list[str]] = {}  # bond name -> its members' MACs
    for f in sorted(netdir.glob("*.netdev")):
        cp = _read(f)
        kind = cp.get("NetDev", "Kind", fallback="")
        if kind == "vlan":
            vlans[cp.get("NetDev", "Name")] = int(cp.get("VLAN", "Id"))
        elif kind == "bond":
            members[cp.get("NetDev", "Name")] = []
    units = [_read(f) for f in sorted(netdir.glob("*.network"))]
    for cp in units:
        bond, mac = cp.get("Network", "Bond"), cp.get("Match", "PermanentMACAddress")
        if bond in members and mac:
            members[bond].append(mac.lower())
    parents: dict[str, tuple[str, ...]] = {}  # VLAN name -> the NICs under it
    out = []
    for cp in units:
        if cp.get("Network", "Bond"):
            continue  # a bond's member carries no address of its own
        name = cp.get("Match", "Name", fallback=None)
        mac = cp.get("Match", "MACAddress", fallback=None)
        nics = tuple(members[name]) if name in members else (mac.lower(),) if mac else ()
        addrs = tuple(ipaddress.ip_interface(a) for a in _multi(cp, "Network", "Address"))
        for v in _multi(cp, "Network", "VLAN"):
            parents[v] = nics
        if name in vlans:
            out.append(OsInterface(name, vlans[name], (), addrs))
        elif nics:
            out.append(OsInterface(name or nics[0], None, nics, addrs))
    return [OsInterface(i.name, i.vlan, parents.get(i.name, ()), i.addresses) if i.vlan else i for i in out]


def _multi(unit: Unit, section: str, key: str) -> list[str]:
    return [w for v in unit.all(section, key) for w in v.split()]
