"""Placement: which machine a persona runs on, and why.

Filters, then scores (as Nomad and the Kubernetes scheduler do). The policy's
preference order picks the *kind* first: ``prefer: [vm, physical]`` means a
physical server only when no VM slot fits. Within a kind, ``pack`` takes the
fullest machine that fits (best fit: big machines stay free for big
personas), ``spread`` the emptiest.

When nothing fits, the answer names each filter and how many machines it ruled
out. Pure: no I/O; the inputs are built by ``capacity.py``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from voe.domain.models import Persona
from voe.domain.nic_choice import HostNic, asks_for_nics, shortage_of, signature

Kind = Literal["vm", "physical"]
FC_VENDORS = frozenset({"qlogic", "emulex"})  # HBAs whose option ROM boots an FC LUN


@dataclass
class Machine:
    """A place a persona can run: a whole physical host, or the VM capacity a
    hypervisor host offers."""

    kind: Kind
    host: str
    cpus: int
    memory: int  # MiB
    labels: dict[str, str] = field(default_factory=dict)
    fc_vendors: frozenset[str] = frozenset()
    nics: tuple[HostNic, ...] = ()  # NICs cabled to managed switches that are up
    available: bool = True  # schedulable, not fenced, hypervisor answering
    used_cpus: int = 0
    used_memory: int = 0
    personas: set[str] = field(default_factory=set)
    # not a Counter: one is built per machine per placement batch, and a dict is cheaper to make
    anti_sets: dict[str, int] = field(default_factory=dict)
    cabling: tuple | None = None  # nic_choice.signature of the NICs, worked out on first need

    def nic_shortage(self, p: Persona) -> str | None:
        """Why this machine lacks the NICs ``p`` asks for, or None."""
        if self.cabling is None:
            self.cabling = signature(self.nics)
        return shortage_of(p, self.cabling, self.host)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.host}"

    @property
    def free_cpus(self) -> int:
        return self.cpus - self.used_cpus

    @property
    def free_memory(self) -> int:
        return self.memory - self.used_memory

    def take(self, p: Persona) -> None:
        self.used_cpus += p.cpus
        self.used_memory += p.memory
        self.personas.add(p.name)
        if p.policy.anti_affinity:
            self.anti_sets[p.policy.anti_affinity] = self.anti_sets.get(p.policy.anti_affinity, 0) + 1

    def release(self, p: Persona) -> None:
        self.used_cpus -= p.cpus
        self.used_memory -= p.memory
        self.personas.discard(p.name)
        if p.policy.anti_affinity:
            self.anti_sets[p.policy.anti_affinity] -= 1  # taken before, so present


@dataclass(frozen=True)
class Constraint:
    """An operator's ``--to HOST`` or ``--kind vm|physical`` (a move)."""

    host: str | None = None
    kind: Kind | None = None
    avoid_host: str | None = None  # a move leaves its current host
    shun: frozenset[str] = frozenset()  # hosts where an incarnation was just fenced (a retarget's preference)


def move_constraint(kind: str, host: str | None, current_host: str | None) -> Constraint:
    """A move's constraint: ``kind`` is vm, physical, any, or retarget
    (after a fence); a move without ``--to`` leaves the host it is on."""
    return Constraint(host=host, kind=None if kind in ("any", "retarget") else kind,  # type: ignore[arg-type]
                      avoid_host=None if host else current_host)


@dataclass
class Decision:
    persona: str
    machine: Machine | None
    why: str
    ruled_out: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.machine is not None

    def as_dict(self) -> dict:
        return {
            "persona": self.persona,
            "ok": self.ok,
            "kind": self.machine.kind if self.machine else None,
            "host": self.machine.host if self.machine else None,
            "why": self.why,
            "ruled_out": {k: [{"filter": f, "machines": n} for f, n in v] for k, v in self.ruled_out.items()},
        }


def _gib(mib: int) -> str:
    return f"{mib / 1024:g} GiB" if mib >= 1024 else f"{mib} MiB"


def rule_out(p: Persona, m: Machine, c: Constraint) -> tuple[str, str] | None:
    """The first filter that rules ``m`` out for ``p``: (filter, message
    template with {n}), or None when it fits. Cheapest checks first."""
    if c.host and m.host != c.host:
        return "target", f"{{n}} {{are}} not {c.host}"
    if c.avoid_host and m.host == c.avoid_host:
        return "move", f"{{n}} {{are}} the host being left ({c.avoid_host})"
    if m.host in c.shun:
        return "recent-failure", "{n} just had an incarnation fenced"
    if not m.available:
        return "unavailable", "{n} {are} unschedulable, fenced or unreachable"
    if m.kind == "physical" and m.personas:
        return "busy", "{n} already {run} a persona"
    if m.free_cpus < p.cpus:
        return "cpu", f"{{n}} {{lack}} {p.cpus} free CPUs"
    if m.free_memory < p.memory:
        return "memory", f"{{n}} {{lack}} {_gib(p.memory)} free memory"
    for k, v in p.policy.labels.items():
        if m.labels.get(k) != v:
            return "labels", f"{{n}} {{lack}} label {k}={v}"
    if p.boot == "fc":
        if m.kind == "vm":
            return "hba", "{n} {are} VM slots, and FC boot needs a physical QLogic or Emulex HBA"
        if not (m.fc_vendors & FC_VENDORS):
            return "hba", "{n} {lack} a QLogic or Emulex FC HBA"
    if p.vnics and not m.nics:
        return "network", "{n} {have} no NIC cabled to a managed switch that is up, so cannot carry the persona's VLANs"
    if m.kind == "physical" and asks_for_nics(p):
        short = m.nic_shortage(p)
        if short is not None:
            return "nics", f"{{n}} {{lack}} the NICs {p.name} asks for ({short})"
    aa = p.policy.anti_affinity
    if aa and m.anti_sets.get(aa):
        return "anti-affinity", f"{{n}} already {{run}} a member of anti-affinity set {aa!r}"
    return None


def _score(p: Persona, m: Machine) -> tuple:
    """Lower is better. Pack: the least left over (CPUs, then memory): the
    fullest machine that fits, so big machines stay free for big personas;
    spread: the most."""
    left = (m.free_cpus - p.cpus, m.free_memory - p.memory)
    return (left if p.policy.strategy == "pack" else (-left[0], -left[1]), m.host)


def _static_ok(p: Persona, m: Machine) -> bool:
    """The filters that depend only on what a machine *is* (labels aside),
    not on what runs on it: evaluated once per machine shape."""
    if not m.available:
        return False
    if p.boot == "fc" and (m.kind == "vm" or not (m.fc_vendors & FC_VENDORS)):
        return False
    return not (p.vnics and not m.nics)


def _shape(m: Machine) -> tuple:
    """Labels are left out: they vary per rack and would split the shelves
    into slivers; each label has shelves of its own instead. So is the
    cabling beyond having a NIC: few personas ask for NICs of their own,
    and they check each machine they consider."""
    return (m.kind, m.available, m.fc_vendors, bool(m.nics), m.cpus, m.memory)


class _Shelf:
    """Machines of one shape with room left, ordered by (free CPUs, free
    memory): the fullest machine that fits is a binary search away, and the
    roomiest is the last."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.keys: list[tuple[int, int, str]] = []
        self.machines: dict[str, Machine] = {}

    @staticmethod
    def _key(m: Machine) -> tuple[int, int, str]:
        return (m.free_cpus, m.free_memory, m.host)

    def put(self, m: Machine) -> None:
        if (m.kind == "physical" and m.personas) or m.free_cpus <= 0 or m.free_memory <= 0:
            return  # full: a physical machine runs one persona; a hypervisor has no room
        bisect.insort(self.keys, self._key(m))
        self.machines[m.host] = m

    def remove(self, m: Machine) -> None:
        if self.machines.pop(m.host, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, self._key(m))]

    def best(self, p: Persona, c: Constraint) -> Machine | None:
        aa = p.policy.anti_affinity
        nics = asks_for_nics(p) and self.kind == "physical"  # NICs of its own: per machine, as they vary
        if p.policy.strategy == "pack":
            order = range(bisect.bisect_left(self.keys, (p.cpus, p.memory, "")), len(self.keys))
        else:
            order = range(len(self.keys) - 1, -1, -1)
        for i in order:
            cpus, mem, host = self.keys[i]
            if cpus < p.cpus:
                return None  # spread walks down: nothing further fits
            if mem >= p.memory and host != c.avoid_host and host not in c.shun:
                m = self.machines[host]
                if not (aa and m.anti_sets.get(aa)) and not (nics and m.nic_shortage(p) is not None):
                    return m
        return None


class Placer:
    """Places personas over a set of machines, keeping the tally of what it
    has handed out, so a whole group is placed as one.

    The fast path (used for every decision) indexes machines by shape; the
    explanation (which filter ruled out how many machines) is a full scan,
    run only when asked or when nothing fits."""

    def __init__(self, machines: list[Machine]):
        self.machines = machines
        self.by_kind: dict[str, list[Machine]] = {"vm": [], "physical": []}
        self.by_host: dict[tuple[str, str], Machine] = {}
        # A machine sits on the shelf of its shape, and on one more per
        # label it carries (shape, k, v), so a persona that requires a label
        # searches only the machines that have it.
        self.shelves: dict[tuple, _Shelf] = {}
        self._shelves_of: dict[tuple[str, str], list[_Shelf]] = {}
        self._shape_rep: dict[tuple, Machine] = {}  # one machine standing for its shape's static filters
        self._eligible: dict[tuple, list[_Shelf]] = {}
        for m in machines:
            self.by_kind[m.kind].append(m)
            self.by_host[(m.kind, m.host)] = m
            shape = _shape(m)
            self._shape_rep.setdefault(shape, m)
            keys = [(shape, None)] + [(shape, (k, v)) for k, v in m.labels.items()]
            shelves = [self.shelves.setdefault(k, _Shelf(m.kind)) for k in keys]
            for shelf in shelves:
                shelf.put(m)
            self._shelves_of[(m.kind, m.host)] = shelves

    def kinds_for(self, p: Persona, c: Constraint) -> list[Kind]:
        return [c.kind] if c.kind else list(p.policy.prefer)

    def place(self, p: Persona, c: Constraint = Constraint(), explain: bool = True) -> Decision:
        kinds = self.kinds_for(p, c)
        for i, kind in enumerate(kinds):
            best = self._fast(p, c, kind)
            if best is not None:
                # why the preferred kinds were passed over: a full scan, only when asked
                ruled: dict[str, list[tuple[str, int]]] = {k: self._explain(p, c, k) for k in kinds[:i]} \
                    if explain else {}
                why = self._why(p, best, kind, ruled) if explain else f"{kind} on {best.host}"
                self.take(p, best)
                return Decision(p.name, best, why, ruled)
        if not explain:
            return Decision(p.name, None, f"{p.name} fits nowhere")
        every: dict[str, list[tuple[str, int]]] = {k: self._explain(p, c, k) for k in kinds}
        return Decision(p.name, None, self._refusal(p, c, every), every)

    def _fast(self, p: Persona, c: Constraint, kind: str) -> Machine | None:
        if c.host:
            m = self.by_host.get((kind, c.host))
            return m if m is not None and rule_out(p, m, c) is None else None
        labels = list(p.policy.labels.items())
        candidates = []
        for shelf in self._eligible_shelves(p, kind, labels[0] if labels else None):
            if len(labels) > 1:  # rare: check each machine that has the first label
                candidates += [m for m in shelf.machines.values() if rule_out(p, m, c) is None]
            elif (m := shelf.best(p, c)) is not None:
                candidates.append(m)
        return min(candidates, key=lambda m: _score(p, m), default=None)

    def _eligible_shelves(self, p: Persona, kind: str, label: tuple[str, str] | None) -> list[_Shelf]:
        """Shelves whose shape passes the static filters, memoised per
        persona shape (most personas share a few shapes)."""
        pkey = (kind, p.boot, bool(p.vnics), label)
        hit = self._eligible.get(pkey)
        if hit is None:
            hit = [self.shelves[(shape, label)] for shape, rep in self._shape_rep.items()
                   if shape[0] == kind and (shape, label) in self.shelves and _static_ok(p, rep)]
            self._eligible[pkey] = hit
        return hit

    def _explain(self, p: Persona, c: Constraint, kind: str) -> list[tuple[str, int]]:
        tally: Counter = Counter()
        messages: dict[str, str] = {}
        for m in self.by_kind[kind]:
            out = rule_out(p, m, c)
            if out is not None:
                tally[out[0]] += 1
                messages[out[0]] = out[1]
        return [(_phrase(messages[f], n, kind), n) for f, n in tally.most_common()]

    def take(self, p: Persona, m: Machine) -> None:
        self._update(m, lambda: m.take(p))

    def release(self, p: Persona, m: Machine) -> None:
        self._update(m, lambda: m.release(p))

    def _update(self, m: Machine, change) -> None:
        shelves = self._shelves_of[(m.kind, m.host)]
        for shelf in shelves:
            shelf.remove(m)
        change()
        for shelf in shelves:
            shelf.put(m)

    def _why(self, p: Persona, m: Machine, kind: str, ruled: dict) -> str:
        where = f"{kind} on {m.host}" if kind == "physical" else f"a VM on {m.host}"
        first = self.kinds_for(p, Constraint())[0]
        reasons = []
        for k, counts in ruled.items():
            detail = "; ".join(msg for msg, _ in counts) or "no machine of that kind"
            reasons.append(f"no {k} fits ({detail})")
        fit = f"{_gib(m.free_memory)} and {m.free_cpus} CPUs free for {_gib(p.memory)}/{p.cpus}"
        pref = "preferred" if kind == first and not ruled else "fallback"
        lead = "; ".join(reasons) + "; " if reasons else ""
        return f"{lead}{pref} {kind}: {where} ({p.policy.strategy}: {fit})"

    def _refusal(self, p: Persona, c: Constraint, ruled: dict) -> str:
        parts = []
        for kind in self.kinds_for(p, c):
            counts = ruled.get(kind, [])
            if not self.by_kind[kind]:
                parts.append(f"{kind}: there are no {kind} machines")
            else:
                parts.append(f"{kind}: " + "; ".join(msg for msg, _ in counts))
        return f"{p.name} fits nowhere — " + " | ".join(parts)


def _phrase(template: str, n: int, kind: str) -> str:
    """'{n} {lack} 4 free CPUs' -> '1 host lacks 4 free CPUs' / '3 hosts lack ...'."""
    noun = "hypervisor" if kind == "vm" else "host"
    one = n == 1
    return template.format(n=f"{n} {noun}{'' if one else 's'}", lack="lacks" if one else "lack",
                           are="is" if one else "are", have="has" if one else "have", run="runs" if one else "run")


def place_group(placer: Placer, personas: list[Persona], constraints: dict[str, Constraint] | None = None,
                ) -> list[Decision]:
    """Place a whole group at once, biggest first, so the personas that only
    fit on large machines get them before small ones fill them (the review:
    Oracle and WebLogic on physical servers, web servers on VMs)."""
    constraints = constraints or {}
    order = sorted(personas, key=lambda p: (-p.memory, -p.cpus, p.name))
    decisions = {p.name: placer.place(p, constraints.get(p.name, Constraint())) for p in order}
    return [decisions[p.name] for p in personas]

