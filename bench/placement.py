"""Placement throughput: 10,000 personas over 5,000 machines, every filter on
(NICs by label and bonds among them).

Prints placements per second on one core, and machines used against the
lower bound (total demand / machine size). Target: >= 20,000 placements/s.

    .venv/bin/python bench/placement.py [--personas 10000] [--machines 5000]
"""

from __future__ import annotations

import argparse
import math
import random
import time

from voe.domain.models import Persona
from voe.domain.nic_choice import HostNic
from voe.domain.placement import FC_VENDORS, Machine, Placer


def datacenter(n_machines: int, rng: random.Random) -> list[Machine]:
    """A mixed fleet: 20% hypervisor hosts (VM capacity), 80% physical
    servers in four sizes; racks as labels; 10% with FC HBAs; two NICs on
    two switches each, some with only one cabled NIC, a third with two more
    10g NICs on one switch."""
    machines = []
    for i in range(n_machines):
        rack = f"r{i % 40}"
        switches = (f"sw{i % 20}", f"sw{(i + 1) % 20}") if i % 7 else (f"sw{i % 20}",)
        nics = [HostNic(f"eth{k}", f"02:00:{i >> 8 & 255:02x}:{i & 255:02x}:00:{k:02x}", sw, str(i % 48),
                        frozenset(), sw) for k, sw in enumerate(switches)]
        if i % 3 == 0:
            nics += [HostNic(f"eth{k}", f"02:00:{i >> 8 & 255:02x}:{i & 255:02x}:00:{k:02x}", switches[0],
                             str(i % 48 + k), frozenset({"10g"}), switches[0]) for k in (2, 3)]
        if i % 5 == 0:
            machines.append(Machine("vm", f"hv{i}", 48, 192 * 1024, {"rack": rack}, frozenset(), tuple(nics)))
        else:
            cpus, mem = [(8, 32768), (16, 65536), (32, 131072), (64, 262144)][i % 4]
            fc = frozenset({"qlogic"}) if i % 10 == 1 else frozenset({"acme"}) if i % 10 == 2 else frozenset()
            machines.append(Machine("physical", f"pm{i}", cpus, mem, {"rack": rack}, fc, tuple(nics)))
    return machines


def personas(n: int, rng: random.Random, strategy: str | None = None) -> list[Persona]:
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.7:  # small web/app servers, prefer VMs
            cpus, mem, prefer = rng.choice([1, 2, 4]), rng.choice([1024, 2048, 4096, 8192]), ["vm", "physical"]
        else:  # databases, prefer physical
            cpus, mem, prefer = rng.choice([8, 16]), rng.choice([32768, 65536]), ["physical", "vm"]
        vnics = [{"network": "front", "mac": None}, {"network": "back", "dedicated": i % 50 == 0}]
        if i % 40 == 0:
            vnics.append({"network": "storage", "bond": {"mode": "lacp", "label": "10g"}})
        trunk = {"bond": "active-backup"} if i % 30 == 0 else {}
        policy = {"prefer": prefer, "strategy": strategy or ("pack" if i % 3 else "spread")}
        if i % 10 == 0:
            policy["labels"] = {"rack": f"r{rng.randrange(40)}"}
        if i % 4 == 0:
            policy["anti_affinity"] = f"app{i % 200}"
        boot = "fc" if i % 100 == 0 else "linux-nfs"
        image = {"target_wwpn": "50:00:00:00:00:00:00:01"} if boot == "fc" else {"nfs_root": "n:/x"}
        out.append(Persona.model_validate({"name": f"p{i}", "boot": boot, "image": image, "cpus": cpus,
                                           "memory": mem, "vnics": vnics, "trunk": trunk,
                                           "policy": policy}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=10_000)
    ap.add_argument("--machines", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    machines = datacenter(args.machines, rng)
    ps = personas(args.personas, rng)
    assert FC_VENDORS  # the FC filter is on: 1% of personas boot from FC

    placer = Placer(machines)
    t0 = time.process_time()
    decisions = [placer.place(p, explain=False) for p in ps]
    cpu = time.process_time() - t0
    placed = [d for d in decisions if d.ok]

    used = {(d.machine.kind, d.machine.host) for d in placed}
    phys_used = sum(1 for k, _ in used if k == "physical")
    hv_used = sum(1 for k, _ in used if k == "vm")

    print(f"placement: {args.personas} personas over {args.machines} machines, every filter on")
    print(f"  placed {len(placed)}, refused {len(decisions) - len(placed)}")
    print(f"  {len(decisions) / cpu:,.0f} placements/s on one core ({cpu * 1e6 / len(decisions):.1f} µs each)")
    print(f"  mixed pack/spread: hypervisors used {hv_used}, physical {phys_used}")
    packed = personas(args.personas, random.Random(args.seed), strategy="pack")
    placer = Placer(datacenter(args.machines, random.Random(args.seed)))
    decisions = [placer.place(p, explain=False) for p in packed]
    vm_mem = sum(p.memory for p, d in zip(packed, decisions, strict=True) if d.ok and d.machine.kind == "vm")
    vm_cpu = sum(p.cpus for p, d in zip(packed, decisions, strict=True) if d.ok and d.machine.kind == "vm")
    hv = next(m for m in machines if m.kind == "vm")
    bound = max(math.ceil(vm_mem / hv.memory), math.ceil(vm_cpu / hv.cpus))
    used_hv = len({d.machine.host for d in decisions if d.ok and d.machine.kind == "vm"})
    print(f"  all pack: hypervisors used {used_hv} vs lower bound {bound} "
          f"(max of CPU and memory demand / hypervisor size): {used_hv / bound:.2f}x")
    sample = Placer(datacenter(args.machines, random.Random(args.seed)))
    t0 = time.process_time()
    for p in ps[:200]:
        sample.place(p, explain=True)
    print(f"  with explanations: {200 / (time.process_time() - t0):,.0f} placements/s")


if __name__ == "__main__":
    main()
