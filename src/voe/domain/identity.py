"""Identity that voe hands out when the operator leaves it blank: persona MACs
from a locally administered pool, IPs from a network's subnet, iSCSI initiator
IQNs and FC WWPNs. Allocation is deterministic given what is already taken, so
a dry run and the real write agree.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Iterator

# 02:56:4f = locally administered (bit 1 of the first octet set), unicast,
# followed by "VO" in ASCII. IEEE 802 reserves locally administered addresses
# for exactly this: addresses assigned by software, not burned in.
MAC_POOL_PREFIX = (0x02, 0x56, 0x4F)
# NAA 5 style WWPNs with a locally chosen OUI-like prefix.
WWPN_PREFIX = "20:00:02:56:4f"
IQN_PREFIX = "iqn.2026-11.io.voe"


def mac_from_index(i: int) -> str:
    if not 0 <= i < 1 << 24:
        raise ValueError("MAC pool exhausted")
    tail = (i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF)
    return ":".join(f"{b:02x}" for b in MAC_POOL_PREFIX + tail)


def free_macs(taken: Container[str]) -> Iterator[str]:
    """The pool's MACs not in ``taken``, lowest first. ``taken`` is read
    as each is reached, so a caller that adds what it was handed gets the
    next free one from where it left off, not from the pool's start."""
    for i in range(1, 1 << 24):
        mac = mac_from_index(i)
        if mac not in taken:
            yield mac
    raise ValueError("MAC pool exhausted")


def free_ips(
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network,
    taken: Container[ipaddress.IPv4Address | ipaddress.IPv6Address],
    reserved: Container[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The subnet's free host addresses, lowest first, skipping the first
    ten (left for gateways and infrastructure, as most operators do) when
    the subnet is large enough; ``taken`` is read as each is reached (see
    ``free_macs``)."""
    skip = 10 if subnet.num_addresses > 64 else 0
    hosts: Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address] = subnet.hosts()
    for n, addr in enumerate(hosts):
        if n >= skip and addr not in taken and addr not in reserved:
            yield addr
    raise ValueError(f"subnet {subnet} has no free address left")


def initiator_iqn(persona: str) -> str:
    return f"{IQN_PREFIX}:persona:{persona}"


def wwpn_for(persona: str, taken: Container[str]) -> str:
    """A WWPN derived from the persona name, bumped on the (unlikely) collision."""
    import hashlib

    seed = int.from_bytes(hashlib.sha256(persona.encode()).digest()[:3], "big")
    for bump in range(1 << 24):
        v = (seed + bump) & 0xFFFFFF
        wwpn = f"{WWPN_PREFIX}:{v >> 16:02x}:{v >> 8 & 0xFF:02x}:{v & 0xFF:02x}"
        if wwpn not in taken:
            return wwpn
    raise ValueError("WWPN pool exhausted")
