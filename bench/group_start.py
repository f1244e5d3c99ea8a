"""Group start on the lab with real IPMI: a group of N personas in a
5-level dependency DAG over a generated datacenter (physical servers with
IPMI BMCs, plus hypervisor hosts for the VM-sized personas). Prints the time
from the command until every root persona is powered on, until all run, the
worst delay between a level's dependencies being ready and its power-ons
being issued, and the controller's CPU time per persona.

    .venv/bin/python bench/group_start.py [--personas 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from harness import Stack, cpu_seconds, free_port, helpers_cpu_seconds
from voe.cli.lab import LAB_NICENESS

LEVELS = 5
STUCK = 120  # seconds without any member changing state: the run has failed


def datacenter(n: int) -> dict:
    """Half the personas need a physical server each, the rest fit ten to
    a hypervisor host; a few spare servers, as a real datacenter keeps, so
    that one server fenced for a failed start does not leave its persona
    with nowhere to go."""
    physical = n // 2
    spares = max(2, physical // 20)
    hypervisors = max(1, (n - physical + 9) // 10)
    switches = max(1, (physical + spares + hypervisors) // 24 + 1)
    doc = {"networks": [{"name": "front", "vlan": 100, "subnet": "10.1.0.0/16"},
                        {"name": "back", "vlan": 200, "subnet": "10.2.0.0/16"}],
           "switches": [{"name": f"sw{i}", "address": "127.0.0.1", "ports": 26,
                         "settings": {"port": free_port(2), "community": "private"}} for i in range(switches)],
           "hosts": [], "personas": [], "groups": []}
    slot = 0
    for i in range(physical + spares + hypervisors):
        h = {"name": f"h{i:04d}", "cpus": 8, "memory": "32GiB",
             "bmc": {"address": "127.0.0.1", "port": free_port(2), "username": "admin", "password": "pw"},
             "nics": [{"name": "eth0", "mac": f"00:0d:00:00:{i >> 8:02x}:{i & 255:02x}",
                       "switch": f"sw{slot // 24}", "port": str(slot % 24 + 1)}]}
        slot += 1
        if i >= physical + spares:
            h["local_disk"] = True
            h["hypervisor"] = {"driver": "lab", "url": f"http://127.0.0.1:{free_port()}", "username": "admin",
                               "password": "pw", "cpus": 40, "memory": "40GiB"}
        doc["hosts"].append(h)
    names = []
    for i in range(n):
        big = i < physical
        p = {"name": f"p{i:04d}", "image": {"nfs_root": f"nfs:/export/p{i:04d}"},
             "cpus": 4 if big else 1, "memory": "16GiB" if big else "1GiB",
             "vnics": [{"network": "front"}, {"network": "back"}],
             "policy": {"prefer": ["physical"] if big else ["vm", "physical"]}}
        doc["personas"].append(p)
        names.append(p["name"])
    per_level = -(-n // LEVELS)
    levels = [names[k * per_level:(k + 1) * per_level] for k in range(LEVELS)]
    depends = {}
    for k in range(1, LEVELS):
        for j, m in enumerate(levels[k]):
            below = levels[k - 1]
            depends[m] = [below[j % len(below)], below[(j + 1) % len(below)]]
    doc["groups"].append({"name": "big", "members": names, "depends": depends})
    return doc, levels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=1000)
    ap.add_argument("--beat", type=float, default=3.0, help="seconds between an agent's heartbeats")
    ap.add_argument("--lab-nice", type=int, default=LAB_NICENESS,
                    help="the lab's CPU niceness (0: the emulated datacenter competes with the controller for CPU)")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep the store and logs")
    args = ap.parse_args()
    doc, levels = datacenter(args.personas)
    with tempfile.TemporaryDirectory(prefix="voe-group-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        s = Stack(doc, workdir, env={"VOE_HEARTBEAT_INTERVAL": str(args.beat), "VOE_BOOT_TIMEOUT": "600"},
                  lab_nice=args.lab_nice).start()
        try:
            cpu0, helpers0 = cpu_seconds(s.controller.pid), helpers_cpu_seconds(s.controller.pid)
            t0 = time.time()
            r = s.http.post("/api/v1/groups/big/start", json={}, timeout=300)
            r.raise_for_status()
            counts, since = None, time.time()
            while True:
                states = Counter(p["state"] for p in s.http.get("/api/v1/groups/big/status").json()["members"])
                if states["running"] == args.personas:
                    break
                if states != counts:
                    counts, since = states, time.time()
                elif time.time() - since > STUCK:
                    raise SystemExit(f"group start stuck for {STUCK} s: {dict(states)} (--keep DIR keeps the store and logs)")
                time.sleep(1)
            t_all = time.time() - t0
            cpu = cpu_seconds(s.controller.pid) - cpu0
            helpers = {k: v - helpers0.get(k, 0.0) for k, v in helpers_cpu_seconds(s.controller.pid).items()}
            events = []
            after = 0
            while True:
                batch = s.http.get("/api/v1/events/log", params={"kind": "transition", "after_id": after,
                                                                 "limit": 1000}).json()
                if not batch:
                    break
                events += batch
                after = batch[-1]["id"]
            at = lambda e: datetime.fromisoformat(e["at"]).timestamp()  # noqa: E731
            reached = {to: {e["persona"]: at(e) for e in events if e["data"]["to"] == to}
                       for to in ("placing", "powering-on", "booting", "running")}
            powered, running = reached["booting"], reached["running"]
            roots_on = max(powered[p] for p in levels[0]) - t0
            lag = 0.0
            phases = []
            for k in range(1, LEVELS):
                ready = max(running[p] for p in levels[k - 1])
                issued = max(powered[p] for p in levels[k])
                lag = max(lag, issued - ready)
                phases.append([max(reached[to][p] for p in levels[k]) - ready
                               for to in ("placing", "powering-on", "booting")])
        finally:
            s.stop()
    print(f"group start: {args.personas} personas in a {LEVELS}-level DAG on the lab (real IPMI, SNMP, agents; "
          f"a beat every {args.beat:g} s; the lab at niceness {args.lab_nice})")
    print(f"  every root powered on after {roots_on:.1f} s; all running after {t_all:.1f} s")
    print(f"  worst level: last power-on issued {lag:.2f} s after its dependencies were all ready "
          f"(includes the level's own switch configuration)")
    for k, (placing, placed, booting) in enumerate(phases, start=1):
        print(f"    level {k}: after its dependencies, every member placing {placing:.2f} s, placed {placed:.2f} s, "
              f"powered on {booting:.2f} s")
    print(f"  controller CPU: {cpu:.1f} s in all, {cpu / args.personas * 1000:.0f} ms per persona"
          + "".join(f"; {what} {v:.1f} s" for what, v in sorted(helpers.items())))


if __name__ == "__main__":
    main()
