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

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from voe.domain.models import Persona

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
    nic_switches: tuple[str, ...] = ()  # switch of each NIC cabled to a managed switch
    available: bool = True  # schedulable, not fenced, hypervisor answering
    used_cpus: int = 0
    used_memory: int = 0
    personas: set[str] = field(default_factory=set)
    anti_sets: Counter = field(default_factory=Counter)

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
            self.anti_sets[p.policy.anti_affinity] += 1

    def release(self, p: Persona) -> None:
        self.used_cpus -= p.cpus
        self.used_memory -= p.memory
        self.personas.discard(p.name)
        if p.policy.anti_affinity:
            self.anti_sets[p.policy.anti_affinity] -= 1


@dataclass(frozen=True)
class Constraint:
    """An operator's ``--to HOST`` or ``--kind vm|physical`` (a move)."""

    host: str | None = None
    kind: Kind | None = None
    avoid_host: str | None = None  # a move leaves its current host


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


def _dedicated_ok(m: Machine, needed: int) -> bool:
    return len(set(m.nic_switches)) >= needed


def rule_out(p: Persona, m: Machine, c: Constraint) -> tuple[str, str] | None:
    """The first filter that rules ``m`` out for ``p``: (filter, message
    template with {n}), or None when it fits. Cheapest checks first."""
    if c.host and m.host != c.host:
        return "target", f"{{n}} {{are}} not {c.host}"
    if c.avoid_host and m.host == c.avoid_host:
        return "move", f"{{n}} {{are}} the host being left ({c.avoid_host})"
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
    dedicated = sum(1 for v in p.vnics if v.dedicated)
    if dedicated and m.kind == "physical" and not _dedicated_ok(m, dedicated):
        return "dedicated", (f"{{n}} {{lack}} {dedicated} NICs cabled to distinct switches for "
                             f"{dedicated} dedicated vNICs (each needs its own NIC on its own switch)")
    if p.vnics and not m.nic_switches:
        return "network", "{n} {have} no NIC cabled to a managed switch, so cannot carry the persona's VLANs"
    aa = p.policy.anti_affinity
    if aa and m.anti_sets.get(aa):
        return "anti-affinity", f"{{n}} already {{run}} a member of anti-affinity set {aa!r}"
    return None


def _score(p: Persona, m: Machine) -> tuple:
    """Lower is better. Pack: least memory left over (best fit); spread: most."""
    left = m.free_memory - p.memory
    return (left if p.policy.strategy == "pack" else -left, m.host)


class Placer:
    """Places personas over a set of machines, keeping the tally of what it
    has handed out, so a whole group is placed as one."""

    def __init__(self, machines: list[Machine]):
        self.machines = machines
        self.by_kind: dict[str, list[Machine]] = {"vm": [], "physical": []}
        for m in machines:
            self.by_kind[m.kind].append(m)

    def kinds_for(self, p: Persona, c: Constraint) -> list[Kind]:
        return [c.kind] if c.kind else list(p.policy.prefer)

    def place(self, p: Persona, c: Constraint = Constraint(), explain: bool = True) -> Decision:
        ruled: dict[str, list[tuple[str, int]]] = {}
        for kind in self.kinds_for(p, c):
            best, counts = self._best(p, c, kind, count=explain)
            if best is not None:
                best.take(p)
                return Decision(p.name, best, self._why(p, best, kind, ruled), ruled)
            if explain:
                ruled[kind] = counts
        return Decision(p.name, None, self._refusal(p, c, ruled), ruled)

    def _best(self, p: Persona, c: Constraint, kind: str, count: bool) -> tuple[Machine | None, list]:
        best: Machine | None = None
        best_score: tuple | None = None
        tally: Counter = Counter()
        messages: dict[str, str] = {}
        for m in self.by_kind[kind]:
            out = rule_out(p, m, c)
            if out is None:
                s = _score(p, m)
                if best_score is None or s < best_score:
                    best, best_score = m, s
            elif count:
                tally[out[0]] += 1
                messages[out[0]] = out[1]
        counts = [(_phrase(messages[f], n, kind), n) for f, n in tally.most_common()]
        return best, counts

    def _why(self, p: Persona, m: Machine, kind: str, ruled: dict) -> str:
        where = f"{kind} on {m.host}" if kind == "physical" else f"a VM on {m.host}"
        first = self.kinds_for(p, Constraint())[0]
        reasons = []
        for k, counts in ruled.items():
            detail = "; ".join(msg for msg, _ in counts) or "no machine of that kind"
            reasons.append(f"no {k} fits ({detail})")
        fit = f"{_gib(m.free_memory + p.memory)} and {m.free_cpus + p.cpus} CPUs free for {_gib(p.memory)}/{p.cpus}"
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

    def release(self, p: Persona, m: Machine) -> None:
        m.release(p)


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

