"""Reading a switch with net-snmp's own tools, not voe's client: what the
switch says is the truth a test checks voe against."""

from __future__ import annotations

import re
import subprocess

# RFC 4363 Q-BRIDGE-MIB
DOT1Q_VLAN_STATIC_EGRESS = "1.3.6.1.2.1.17.7.1.4.3.1.2"
DOT1Q_VLAN_STATIC_UNTAGGED = "1.3.6.1.2.1.17.7.1.4.3.1.4"
DOT1Q_PVID = "1.3.6.1.2.1.17.7.1.4.5.1.1"


def snmpget(port: int, oid: str, community: str = "private", hex_strings: bool = True) -> str:
    fmt = ["-Ox"] if hex_strings else []
    out = subprocess.run(["snmpget", "-v2c", "-c", community, *fmt, "-On", f"127.0.0.1:{port}", oid],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def portlist(port: int, oid: str) -> set[int]:
    """Ports whose bit is set in a PortList (RFC 4363: the most significant
    bit of the first octet is port 1); an absent VLAN has no ports."""
    text = snmpget(port, oid)
    m = re.search(r"(?:Hex-STRING|STRING): ([0-9A-Fa-f ]*)", text)
    if not m or "No Such" in text:
        return set()
    octets = bytes.fromhex(m.group(1).replace(" ", ""))
    return {i * 8 + b + 1 for i, o in enumerate(octets) for b in range(8) if o & (0x80 >> b)}


def pvid(port: int, bridge_port: int) -> int:
    text = snmpget(port, f"{DOT1Q_PVID}.{bridge_port}")
    m = re.search(r"(?:Gauge32|INTEGER): (\d+)", text)
    return int(m.group(1)) if m else 0


def vlans_on_port(snmp_port: int, bridge_port: int, vlans: list[int]) -> tuple[set[int], set[int], int]:
    """(tagged, untagged, pvid) of one port, as the switch reports them."""
    tagged, untagged = set(), set()
    for v in vlans:
        egress = portlist(snmp_port, f"{DOT1Q_VLAN_STATIC_EGRESS}.{v}")
        bare = portlist(snmp_port, f"{DOT1Q_VLAN_STATIC_UNTAGGED}.{v}")
        if bridge_port in egress:
            (untagged if bridge_port in bare else tagged).add(v)
    return tagged, untagged, pvid(snmp_port, bridge_port)
