"""Which host NICs carry a persona on a physical server: its trunk (one NIC
or a bond), and each vNIC with NICs of its own (a NIC asked for by name or
label, any free NIC, or a bond). Pure: placement asks whether a server has
the NICs, wiring asks which ones, and both get the same answer.

The choice depends on nothing but the inventory and the NIC the incarnation
booted from, so it stays the same for the incarnation's life. NICs asked for
by name are taken first, then by label, then the carrier the server boots
from (the boot vNIC's own NICs, else the trunk), then the rest, each in the persona's order. The boot carrier's first NIC is
the one the incarnation booted from, else the first one on a switch that is
up. A bond prefers members on switches it does not use yet; an LACP bond
keeps to one switch or MLAG pair. NICs of one persona may share a switch:
each is a port of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from voe.domain.inventory import Inventory
from voe.domain.models import Host, Persona, Switch

TRUNK = -1
"""The trunk's key among the vNIC indexes of a choice."""

_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


class NicShortage(ValueError):
    """A server lacks the NICs a persona asks for; the message says which."""


@dataclass(frozen=True)
class HostNic:
    """A host NIC cabled to a managed switch."""

    name: str
    mac: str
    switch: str
    port: str
    labels: frozenset[str]
    domain: str  # the switch, or its MLAG pair ("sw1+sw2"): what one LACP bond may span

    @property
    def port_key(self) -> tuple[str, str]:
        return self.switch, self.port


@dataclass(frozen=True)
class Need:
    """What one carrier asks for: the trunk, or a vNIC with NICs of its own."""

    key: int  # vNIC index, or TRUNK
    what: str  # how a refusal names it
    count: int = 1
    name: str | None = None
    label: str | None = None
    lacp: bool = False


@dataclass(frozen=True)
class NicRoles:
    """Carrier key -> its NICs (a bond's members in order), and the NIC the
    server network-boots from."""

    carriers: dict[int, tuple[HostNic, ...]]
    boot: HostNic

    @property
    def trunk(self) -> tuple[HostNic, ...]:
        return self.carriers.get(TRUNK, ())


def host_nics(inv: Inventory, host: Host, up: frozenset[str] | set[str] | None = None) -> tuple[HostNic, ...]:
    """The host's NICs cabled to managed switches (to switches in ``up``
    when given), in inventory order."""
    switches = inv.by_name("switches")
    peers = {s.name: s.mlag_peer for s in switches.values() if s.mlag_peer}
    peers.update({p: s for s, p in list(peers.items())})
    out = []
    for n in host.nics:
        sw: Switch | None = switches.get(n.switch) if n.switch else None
        if sw is None or n.port is None or (up is not None and sw.name not in up):
            continue
        domain = "+".join(sorted({sw.name, peers.get(sw.name) or sw.name}))
        out.append(HostNic(n.name, n.mac, sw.name, n.port, frozenset(n.labels), domain))
    return tuple(out)


def needs(p: Persona) -> tuple[Need, ...]:
    """The carriers a persona asks for on a physical server. The trunk is
    left out when every vNIC has NICs of its own and it is not bonded."""
    out = []
    if p.trunk.bond is not None or not p.vnics or any(not v.own_nics for v in p.vnics):
        bond = p.trunk.bond
        out.append(Need(TRUNK, "trunk", bond.nics if bond else 1, None, bond.label if bond else None,
                        bool(bond and bond.mode == "lacp")))
    for i, v in enumerate(p.vnics):
        if not v.own_nics:
            continue
        what = f"vNIC on {v.network}"
        if v.bond is not None:
            out.append(Need(i, what, v.bond.nics, None, v.bond.label, v.bond.mode == "lacp"))
        elif isinstance(v.nic, str):
            out.append(Need(i, what, name=v.nic))
        else:
            out.append(Need(i, what, label=v.nic.label if v.nic is not None else None))
    return tuple(out)


def asks_for_nics(p: Persona) -> bool:
    """Whether the persona asks for more than one trunk NIC."""
    return p.trunk.bond is not None or any(v.own_nics for v in p.vnics)


def signature(nics: Sequence[HostNic]) -> tuple:
    """What the choice depends on, with switches numbered in order of
    appearance: servers cabled alike to different switches share it."""
    switch_ids: dict[str, int] = {}
    domain_ids: dict[str, int] = {}
    return tuple((n.name, n.labels, switch_ids.setdefault(n.switch, len(switch_ids)),
                  domain_ids.setdefault(n.domain, len(domain_ids))) for n in nics)


def choose(p: Persona, nics: Sequence[HostNic], host: str, boot_mac: str | None = None,
           down: frozenset[str] = frozenset()) -> NicRoles:
    """The NICs of every carrier of ``p`` on ``host``; raises NicShortage
    naming what is missing."""
    wanted = needs(p)
    return _choose(p.name, wanted, _boot_key(p, wanted), nics, host, boot_mac, down)


def shortage_of(p: Persona, cabling: tuple, host: str) -> str | None:
    """Why ``host``, cabled as ``signature`` says, cannot carry ``p``, or
    None when it can. Servers cabled alike get the same answer: it is
    worked out once per cabling."""
    wanted = needs(p)
    why = _shortage_of(p.name, wanted, _boot_key(p, wanted), cabling)
    return None if why is None else why.replace(_HOST, host)


_HOST = "\0host\0"


@functools.lru_cache(maxsize=4096)
def _shortage_of(persona: str, wanted: tuple[Need, ...], boot_key: int, cabling: tuple) -> str | None:
    nics = [HostNic(name, "", f"s{switch}", "", labels, f"d{domain}") for name, labels, switch, domain in cabling]
    try:
        _choose(persona, wanted, boot_key, nics, _HOST)
    except NicShortage as e:
        return str(e)
    return None


def _choose(persona: str, wanted: tuple[Need, ...], boot_key: int, nics: Sequence[HostNic], host: str,
            boot_mac: str | None = None, down: frozenset[str] = frozenset()) -> NicRoles:
    order = sorted(wanted, key=lambda n: (0 if n.name else 1 if n.label and n.key != boot_key else
                                          2 if n.key == boot_key else 3, n.key))
    free = list(nics)
    carriers: dict[int, tuple[HostNic, ...]] = {}
    for need in order:
        first = _first(need, free, host, boot_mac, down) if need.key == boot_key else None
        chosen = _members(need, free, first)
        if chosen is None:
            raise NicShortage(_shortage(persona, need, wanted, nics, host))
        carriers[need.key] = chosen
        free = [n for n in free if n not in chosen]
    return NicRoles(carriers, carriers[boot_key][0])


def _boot_key(p: Persona, wanted: tuple[Need, ...]) -> int:
    """The carrier the server boots from: the boot vNIC's own NICs (an
    access port on its VLAN), else the trunk (the boot vNIC is its native
    VLAN)."""
    keys = [n.key for n in wanted]
    boot = next((i for i, v in enumerate(p.vnics) if v.boot), 0)
    return boot if boot in keys else TRUNK


def _fits(need: Need, n: HostNic) -> bool:
    return (need.name is None or n.name == need.name) and (need.label is None or need.label in n.labels)


def _first(need: Need, free: list[HostNic], host: str, boot_mac: str | None, down: frozenset[str]) -> HostNic | None:
    """The boot carrier's first NIC: the one booted from, else the first
    that fits on a switch that is up (None when none fits at all)."""
    fitting = [n for n in free if _fits(need, n)]
    booted = next((n for n in fitting if n.mac == boot_mac), None)
    if booted is not None or not fitting:
        return booted
    up = next((n for n in fitting if n.switch not in down), None)
    if up is None:
        raise NicShortage(f"host {host} has no NIC cabled to a managed switch that is up for its {need.what}")
    return up


def _members(need: Need, free: list[HostNic], first: HostNic | None) -> tuple[HostNic, ...] | None:
    fitting = [n for n in free if _fits(need, n)]
    if need.lacp:
        domains = [first.domain] if first is not None else list(dict.fromkeys(n.domain for n in fitting))
        domain = next((d for d in domains if sum(n.domain == d for n in fitting) >= need.count), None)
        if domain is None:
            return None
        fitting = [n for n in fitting if n.domain == domain]
    chosen = [first] if first is not None else []
    while len(chosen) < need.count:
        rest = [n for n in fitting if n not in chosen]
        if not rest:
            return None
        used = {n.switch for n in chosen}
        chosen.append(min(rest, key=lambda n: n.switch in used))  # the first on a switch not used yet
    return tuple(chosen)


def _word(n: int) -> str:
    return _WORDS[n] if n < len(_WORDS) else str(n)


def _count(n: int, noun: str) -> str:
    return f"{_word(n)} {noun}{'' if n == 1 else 's'}"


def _shortage(persona: str, need: Need, wanted: tuple[Need, ...], nics: Sequence[HostNic], host: str) -> str:
    if need.name:
        if not any(n.name == need.name for n in nics):
            return f"{host} has no NIC {need.name} cabled to a managed switch; {persona}'s {need.what} asks for it"
        return f"{host}'s NIC {need.name} is taken by another of {persona}'s carriers before its {need.what}"
    if need.label:
        have = sum(need.label in n.labels for n in nics)
        want = sum(w.count for w in wanted if w.label == need.label)
        if have < want:
            return f"{host} has {_count(have, need.label + ' NIC')}; {persona} needs {_word(want)}"
    if need.lacp:
        label = f" {need.label}" if need.label else ""
        return (f"{host} has no switch or MLAG pair with {_count(need.count, 'free' + label + ' NIC')} for "
                f"{persona}'s LACP bond ({need.what})")
    want = sum(w.count for w in wanted)
    parts = ", ".join(f"{w.count} for its {w.what}" for w in wanted)
    return (f"{host} has {_count(len(nics), 'NIC')} cabled to managed switches; {persona} needs "
            f"{_word(want)} ({parts})")
