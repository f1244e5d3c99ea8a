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
    nic_mac: str | None  # the NIC it rides on (matched by MAC), when known
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
    for f in sorted(netdir.glob("*.netdev")):
        cp = _read(f)
        if cp.get("NetDev", "Kind", fallback="") == "vlan":
            vlans[cp.get("NetDev", "Name")] = int(cp.get("VLAN", "Id"))
    parents: dict[str, str] = {}  # VLAN name -> parent NIC MAC
    out = []
    for f in sorted(netdir.glob("*.network")):
        cp = _read(f)
        name = cp.get("Match", "Name", fallback=None)
        mac = cp.get("Match", "MACAddress", fallback=None)
        addrs = tuple(ipaddress.ip_interface(a) for a in _multi(cp, "Network", "Address"))
        for v in _multi(cp, "Network", "VLAN"):
            if mac:
                parents[v] = mac.lower()
        if name in vlans:
            out.append(OsInterface(name, vlans[name], None, addrs))
        elif mac:
            out.append(OsInterface(name or mac, None, mac.lower(), addrs))
    return [OsInterface(i.name, i.vlan, parents.get(i.name, i.nic_mac), i.addresses) if i.vlan else i for i in out]


def _multi(unit: Unit, section: str, key: str) -> list[str]:
    return [w for v in unit.all(section, key) for w in v.split()]
