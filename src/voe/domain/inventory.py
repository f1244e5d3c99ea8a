"""A whole datacenter as one document, and the rules that span objects.

The same document is what ``voe apply`` reads from a file, what ``voe export``
writes, and what the store holds; so a rule checked here holds for files and
API writes alike. Problems are reported with a path (``personas.3.vnics.0.ip``)
that the CLI maps back to a file line and the API returns as the field.
"""

from __future__ import annotations

import difflib
import ipaddress
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from voe.domain import graph, identity
from voe.domain.models import KINDS, Group, Host, Model, Network, Persona, Switch
from voe.errors import FieldProblem, InvalidInventory

CONFLICT = "conflict"


class Inventory(Model):
    version: int = Field(default=1, ge=1, le=1)
    networks: list[Network] = Field(default_factory=list)
    switches: list[Switch] = Field(default_factory=list)
    hosts: list[Host] = Field(default_factory=list)
    personas: list[Persona] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)

    _names: dict[str, tuple[list, dict[str, Any]]] = PrivateAttr(default_factory=dict)

    def by_name(self, kind: str) -> dict[str, Any]:
        """Name -> object, built once per list: the store hands out one
        cached inventory (read-only) and the controller looks names up in
        it thousands of times a second. A copy with a new list
        (``model_copy(update=...)``) builds its own."""
        objects = getattr(self, kind)
        index = self._names.get(kind)
        if index is None or index[0] is not objects or len(index[1]) != len(objects):
            index = (objects, {o.name: o for o in objects})
            self._names[kind] = index
        return index[1]

    def with_lists(self, lists: Mapping[str, list]) -> Inventory:
        """A copy whose kinds named in ``lists`` hold those objects, with a
        name index of its own (a plain ``model_copy`` shares this one's)."""
        copy = self.model_copy(update=dict(lists))
        copy._names = {}
        return copy

    def __eq__(self, other: object) -> bool:
        """Equal when the declared contents are: the name index is a cache,
        and a loaded inventory whose index is built equals a fresh one."""
        if not isinstance(other, Inventory):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in type(self).model_fields)


# --- turning pydantic's errors into ours ------------------------------------


def _strip_optional(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    if origin is typing.Annotated:
        return _strip_optional(typing.get_args(tp)[0])
    return [tp]


def _model_at(root: type[BaseModel], loc: Iterable[str | int]) -> type[BaseModel] | None:
    """The model class that owns the last element of ``loc`` (best effort)."""
    current: Any = root
    for part in loc:
        candidates = _strip_optional(current)
        nxt = None
        for c in candidates:
            if isinstance(part, str) and isinstance(c, type) and issubclass(c, BaseModel):
                f = c.model_fields.get(part)
                if f is not None:
                    nxt = f.annotation
            elif isinstance(part, int) and typing.get_origin(c) is list:
                nxt = typing.get_args(c)[0]
        if nxt is None:
            break
        current = nxt
    for c in _strip_optional(current):
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
    return None


def problems_from(errors: Iterable[Mapping[str, Any]], root: type[BaseModel], prefix: tuple = ()) -> list[FieldProblem]:
    """Pydantic errors (``ValidationError.errors()``) as FieldProblems whose
    messages say what to write instead."""
    out = []
    for err in errors:
        raw = tuple(err["loc"])
        # validator and union-member names (e.g. 'IPv4Address') appear as loc
        # parts before the field; the last part is always the field itself
        loc = tuple(p for i, p in enumerate(raw)
                    if not (isinstance(p, str) and (p.startswith("function-") or (p[:1].isupper() and i < len(raw) - 1))))
        field = raw[-1] if raw else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            owner = _model_at(root, loc[:-1])
            known = sorted(owner.model_fields) if owner else []
            hint = difflib.get_close_matches(str(field), known, n=1)
            msg = f"unknown field {field!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
            if known:
                msg += f" (known: {', '.join(known)})"
        elif err["type"] == "missing":
            msg = f"field {field!r} is required"
        out.append(FieldProblem(prefix + loc, msg, err["type"]))
    return out


def parse(data: Any) -> Inventory:
    """Validate a raw document (from YAML or JSON). Raises InvalidInventory
    with every problem found, field rules first, then cross-object rules."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInventory([FieldProblem((), "an inventory is a mapping with networks, switches, hosts, personas, groups")])
    try:
        inv = Inventory.model_validate(data)
    except ValidationError as e:
        raise InvalidInventory(problems_from(e.errors(include_url=False), Inventory)) from None
    problems = check(inv)
    if problems:
        raise InvalidInventory(problems)
    return inv


# --- cross-object rules -----------------------------------------------------


def _duplicates(kind: str, objs: list[Any]) -> list[FieldProblem]:
    seen: dict[str, int] = {}
    out = []
    for i, o in enumerate(objs):
        if o.name in seen:
            out.append(FieldProblem((kind, i, "name"), f"{kind[:-1]} {o.name!r} is defined twice", CONFLICT))
        seen[o.name] = i
    return out


def check(inv: Inventory) -> list[FieldProblem]:
    """Every rule that spans objects; an empty list means the inventory is sound."""
    problems: list[FieldProblem] = []
    for kind in KINDS:
        problems += _duplicates(kind, getattr(inv, kind))
    problems += _check_networks(inv)
    problems += _check_cabling(inv)
    problems += _check_mlag(inv)
    problems += _check_personas(inv)
    problems += _check_groups(inv)
    return problems


def _check_networks(inv: Inventory) -> list[FieldProblem]:
    out = []
    vlans: dict[int, str] = {}
    for i, n in enumerate(inv.networks):
        if n.vlan in vlans and vlans[n.vlan] != n.name:
            out.append(FieldProblem(("networks", i, "vlan"),
                                    f"VLAN {n.vlan} is already used by network {vlans[n.vlan]!r}", CONFLICT))
        vlans.setdefault(n.vlan, n.name)
    return out


def _check_cabling(inv: Inventory) -> list[FieldProblem]:
    out = []
    switches = inv.by_name("switches")
    cabled: dict[tuple[str, str], str] = {}
    macs: dict[str, str] = {}
    for i, h in enumerate(inv.hosts):
        for j, nic in enumerate(h.nics):
            loc = ("hosts", i, "nics", j)
            if nic.mac in macs:
                out.append(FieldProblem(loc + ("mac",), f"MAC {nic.mac} is already used by {macs[nic.mac]}", CONFLICT))
            macs.setdefault(nic.mac, f"host {h.name} NIC {nic.name}")
            if nic.switch is None:
                continue
            sw = switches.get(nic.switch)
            if sw is None:
                out.append(FieldProblem(loc + ("switch",), _unknown("switch", nic.switch, switches)))
                continue
            if nic.port not in {p.name for p in sw.ports}:
                out.append(FieldProblem(loc + ("port",), f"switch {sw.name!r} has no port {nic.port!r}"))
                continue
            key = nic.port_key
            if key in cabled:
                out.append(FieldProblem(loc + ("port",), f"{nic.switch}:{nic.port} is already cabled to {cabled[key]}", CONFLICT))
            cabled.setdefault(key, f"host {h.name} NIC {nic.name}")
    return out


def _check_mlag(inv: Inventory) -> list[FieldProblem]:
    """An MLAG pair is two switches, each naming the other (or one naming
    the other and that one naming none)."""
    out = []
    switches = inv.by_name("switches")
    for i, sw in enumerate(inv.switches):
        if sw.mlag_peer is None:
            continue
        loc = ("switches", i, "mlag_peer")
        peer = switches.get(sw.mlag_peer)
        if peer is None:
            out.append(FieldProblem(loc, _unknown("switch", sw.mlag_peer, switches)))
        elif peer.name == sw.name:
            out.append(FieldProblem(loc, f"switch {sw.name!r} cannot be its own MLAG peer; name the other switch"))
        elif peer.mlag_peer not in (None, sw.name):
            out.append(FieldProblem(loc, f"{peer.name!r} is already paired with {peer.mlag_peer!r}; an MLAG pair is "
                                         "two switches", CONFLICT))
    return out


def _unknown(kind: str, name: str, known: dict[str, Any]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    msg = f"unknown {kind} {name!r}"
    if hint:
        return msg + f"; did you mean {hint[0]!r}?"
    return msg + (f"; known: {', '.join(sorted(known))}" if known else f"; define the {kind} first")


def _reserved(net: Network) -> set:
    r = {net.subnet.network_address}
    if isinstance(net.subnet, ipaddress.IPv4Network):
        r.add(net.subnet.broadcast_address)
    if net.gateway is not None:
        r.add(net.gateway)
    return r


def _check_personas(inv: Inventory) -> list[FieldProblem]:
    out = []
    networks = inv.by_name("networks")
    macs = {nic.mac: f"host {h.name} NIC {nic.name}" for h in inv.hosts for nic in h.nics}
    subnets = {n.name: [n.subnet] + ([n.subnet6] if n.subnet6 else []) for n in inv.networks}
    reserved = {n.name: {(a.version, int(a)) for a in _reserved(n)} for n in inv.networks}
    ips: dict[tuple[str, int, int], str] = {}  # (network, IP version, address): its holder
    for i, p in enumerate(inv.personas):
        named: dict[str, int] = {}
        for j, v in enumerate(p.vnics):
            loc = ("personas", i, "vnics", j)
            if isinstance(v.nic, str):
                if v.nic in named:
                    out.append(FieldProblem(loc + ("nic",), f"NIC {v.nic!r} is already vNIC {named[v.nic]}'s; a host "
                                                            "NIC carries one dedicated vNIC", CONFLICT))
                named.setdefault(v.nic, j)
            net = networks.get(v.network)
            if net is None:
                out.append(FieldProblem(loc + ("network",), _unknown("network", v.network, networks)))
            if v.mac is not None:
                if v.mac in macs:
                    out.append(FieldProblem(loc + ("mac",), f"MAC {v.mac} is already used by {macs[v.mac]}", CONFLICT))
                macs.setdefault(v.mac, f"persona {p.name} vNIC {j}")
            if v.ip is None or net is None:
                continue
            if not any(v.ip.version == s.version and v.ip in s for s in subnets[net.name]):
                out.append(FieldProblem(loc + ("ip",), f"{v.ip} is outside subnet {net.subnet} of network {net.name!r}"))
                continue
            key = (net.name, v.ip.version, int(v.ip))  # an address's own hash is slow, and this runs per vNIC per write
            if key[1:] in reserved[net.name]:
                out.append(FieldProblem(loc + ("ip",), f"{v.ip} is the network, broadcast or gateway address of {net.name!r}"))
                continue
            if key in ips:
                out.append(FieldProblem(loc + ("ip",), f"IP {v.ip} on {net.name!r} is already used by {ips[key]}", CONFLICT))
            ips.setdefault(key, f"persona {p.name}")
    return out


def _check_groups(inv: Inventory) -> list[FieldProblem]:
    out = []
    personas = inv.by_name("personas")
    for i, g in enumerate(inv.groups):
        members = set(g.members)
        for j, m in enumerate(g.members):
            if m not in personas:
                out.append(FieldProblem(("groups", i, "members", j), _unknown("persona", m, personas)))
        for who, deps in g.depends.items():
            if who not in members:
                out.append(FieldProblem(("groups", i, "depends", who),
                                        f"{who!r} is not a member of group {g.name!r}; add it to members"))
            for d in deps:
                if d not in members:
                    out.append(FieldProblem(("groups", i, "depends", who),
                                            f"{who!r} depends on {d!r}, which is not a member of group {g.name!r}"))
        cycle = graph.find_cycle(g.depends)
        if cycle:
            out.append(FieldProblem(("groups", i, "depends"), "dependency cycle: " + " -> ".join(cycle)))
    return out


def references(inv: Inventory, kind: str, name: str) -> list[str]:
    """What still uses an object, so deleting it would leave a dangling name."""
    if kind == "networks":
        return [f"persona {p.name}" for p in inv.personas if any(v.network == name for v in p.vnics)]
    if kind == "switches":
        return ([f"host {h.name} NIC {n.name}" for h in inv.hosts for n in h.nics if n.switch == name]
                + [f"switch {s.name} (its MLAG peer)" for s in inv.switches if s.mlag_peer == name])
    if kind == "personas":
        return [f"group {g.name}" for g in inv.groups if name in g.members]
    return []


# --- filling in identity ----------------------------------------------------


def assign_identity(inv: Inventory, previous: Inventory | None = None) -> Inventory:
    """Fill blank MACs, IPs, initiator IQNs and WWPNs.

    A blank that was filled before keeps its value (matched by persona name
    and vNIC network), so applying the same file twice changes nothing and
    a persona keeps its identity for life.
    """
    if not any(_lacks_identity(p) for p in inv.personas):
        return inv  # nothing to fill: the same inventory, unchecked again by a writer
    inv = inv.model_copy(update={"personas": [p.model_copy(deep=True) if _lacks_identity(p) else p
                                              for p in inv.personas]})
    prev = {p.name: p for p in previous.personas} if previous else {}
    networks = inv.by_name("networks")
    macs = {nic.mac for h in inv.hosts for nic in h.nics} | {v.mac for p in inv.personas for v in p.vnics if v.mac}
    ips: dict[str, set] = {}  # network -> addresses taken in it
    for p in inv.personas:
        for v in p.vnics:
            if v.ip:
                ips.setdefault(v.network, set()).add(v.ip)
    free_macs = identity.free_macs(macs)
    free_ips = {name: identity.free_ips(net.subnet, ips.setdefault(name, set()), _reserved(net))
                for name, net in networks.items()}
    wwpns = {p.san.wwpn for p in inv.personas if p.san.wwpn}

    for p in inv.personas:
        if not _lacks_identity(p):
            continue
        old = prev.get(p.name)
        for j, v in enumerate(p.vnics):
            old_v = _matching_vnic(old, j, v.network) if old else None
            if v.mac is None:
                v.mac = old_v.mac if old_v and old_v.mac and old_v.mac not in macs else next(free_macs)
                macs.add(v.mac)
            if v.ip is None and v.network in networks:
                taken = ips[v.network]
                v.ip = old_v.ip if old_v and old_v.ip and old_v.ip not in taken else next(free_ips[v.network])
                taken.add(v.ip)
        if p.san.initiator_iqn is None:
            p.san.initiator_iqn = (old.san.initiator_iqn if old else None) or identity.initiator_iqn(p.name)
        if p.boot == "fc" and p.san.wwpn is None:
            p.san.wwpn = (old.san.wwpn if old and old.san.wwpn else None) or identity.wwpn_for(p.name, wwpns)
            wwpns.add(p.san.wwpn)
    return inv


def _lacks_identity(p: Persona) -> bool:
    """Whether a blank of ``p`` is to be filled (only such personas are
    copied: the rest of a large inventory is shared with the caller's)."""
    return (any(v.mac is None or v.ip is None for v in p.vnics) or p.san.initiator_iqn is None
            or (p.boot == "fc" and p.san.wwpn is None))


def _matching_vnic(old: Persona, index: int, network: str):
    if index < len(old.vnics) and old.vnics[index].network == network:
        return old.vnics[index]
    return next((v for v in old.vnics if v.network == network), None)
