"""Fault campaign: N randomized trials on the lab with the truth checker
running all along. One controller and one lab (separate processes) live
through the whole campaign, as a datacenter does: each trial waits until
three personas run (a VM and two physical servers), injects one fault or a
pair (and sometimes SIGKILLs the controller mid-failover), waits for every
affected persona to run again — or to be blocked with a reason — and then
repairs the hardware and returns it to service (`voe host clear`).

With ``--controllers N`` (N > 1) the controllers share a PostgreSQL server
of the campaign's own, and the controller faults are SIGKILLing the one
that leads (restarted at once, as a follower) and restarting PostgreSQL,
both mid-failover.

The datacenter is the review's with two spare servers (see ``with_spares``).
Faults: power-loss, hang, os-crash (on the hypervisor host: the review's
case), partition, bmc-down with hang or power loss, a switch going down,
controller SIGKILL (or the leader's, or a PostgreSQL restart), and pairs.
Prints: trials, double-runs (must be 0),
personas lost (must be 0: any persona desired running that is not running
with a ready agent when the campaign ends, with its last events), replacements
slower than ``SETTLE``, and fault-to-replacement-running time
p50/p95/p99, with detection (fault to suspect) and fencing (fencing to
fenced) apart, and the same for the trials without a controller fault and
for each controller fault.

    .venv/bin/python bench/faults.py --trials 20 [--seed 1] [--controllers 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import Cluster, PrivatePostgres, Stack, load, relocate
from voe.controller.timing import CONTROLLER_QUIET, Timing

PERSONAS = ("web-1", "oracle", "bea-1")
HOST_FAULTS = ["power-loss", "hang", "os-crash", "partition", "bmc-down+hang", "bmc-down+power-loss"]
SETTLE = 150.0  # seconds before a persona counts as lost: past the 90 s boot timeout and one more retarget
SPARES = 2  # servers added to the review's datacenter, as a site that plans for failures keeps spares
KILL_LEADER, RESTART_PG = "SIGKILL the leader", "restart PostgreSQL"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def call(s: Stack, method: str, path: str, **kw):
    """The API's answer, waiting out a store outage (503) of up to a
    minute, as an operator's script would."""
    deadline = time.monotonic() + 60
    while True:
        try:
            r = s.request(method, path, **kw)
        except RuntimeError:  # no controller answers: one is restarting
            r = None
        if r is not None and r.status_code != 503:
            r.raise_for_status()
            return r.json()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{method} {path}: no answer but 503 for a minute")
        time.sleep(0.1)


def trunk_switch(s: Stack, host: str) -> str:
    fabric = call(s, "GET", "/api/v1/fabric")
    return next(c["switch"] for c in fabric["cables"] if c["host"] == host and c["trunk"])


def with_spares(doc: dict) -> dict:
    """The review's datacenter plus ``SPARES`` servers shaped like dl360-2:
    pairs of faults fence two hosts at once, and a fenced host stays out
    until repaired, so four servers for three personas would measure the
    datacenter's size, not voe."""
    model = next(h for h in doc["hosts"] if h["name"] == "dl360-2")
    for k in range(1, SPARES + 1):
        spare = copy.deepcopy(model)
        spare["name"] = f"spare-{k}"
        spare["bmc"]["port"] = 0  # relocated below
        for j, nic in enumerate(spare["nics"]):
            nic["mac"] = f"00:0b:cd:{0x10 + k:02x}:00:{j + 1:02x}"
            nic["port"] = str(10 + k)
        doc["hosts"].append(spare)
    return doc


def switches(s: Stack) -> set[str]:
    return {sw["name"] for sw in s.doc["switches"]}


CONTROLLER_KINDS = ("controller", "switch", "hypervisor")
"""Events without a persona that can explain a persona's delay."""


def explain(s: Stack, persona: str, t0: float, marks: dict[str, float]) -> None:
    """Where a slow replacement's seconds went: the persona's events and the
    campaign's own marks (controller killed, answering again), from the fault."""
    since = datetime.fromtimestamp(t0 - 0.01, UTC).isoformat()
    events = call(s, "GET", "/api/v1/events/log", params={"since": since, "limit": 1000})
    lines = [(stamp(e["at"]), e["message"]) for e in events
             if e["persona"] == persona or (e["persona"] is None and e["kind"] in CONTROLLER_KINDS)]
    lines += [(t, f"[campaign] {what}") for what, t in marks.items()]
    for at, message in sorted(lines):
        print(f"      {at - t0:+6.2f} s  {message[:150]}", flush=True)


def trial(s: Stack, rng: random.Random, out: dict, verbose: bool, slow: float | None = None) -> bool:
    """One trial; False when the datacenter could not be brought back to
    three running personas after the last (the campaign stops: that
    persona is lost)."""
    for p in PERSONAS:  # all running: the previous trial's replacements
        try:
            s.wait(p, lambda st: st["state"] == "running", SETTLE)
        except TimeoutError as e:
            out["setup_failed"].append(f"after trial {out['trials']}: {str(e)[:300]}")
            return False
    before = {p: s.status(p) for p in PERSONAS}
    victim = rng.choice(PERSONAS)
    host = before[victim]["machine"]["host"]
    kind = rng.choice(HOST_FAULTS + ["switch-down"])
    if kind == "switch-down":
        switch = trunk_switch(s, host)
        faults = [(switch, "down")]
    else:
        faults = [(host, f) for f in kind.split("+")]
    pair = rng.random() < 0.25
    if pair:  # a second host fails too
        other = next(before[p]["machine"]["host"] for p in PERSONAS if before[p]["machine"]["host"] != host)
        faults.append((other, rng.choice(["power-loss", "hang", "partition"])))
    controller_fault = pick_controller_fault(s, rng)
    hit_hosts = {t for t, _ in faults if t not in switches(s)}
    affected = [p for p in PERSONAS if before[p]["machine"]["host"] in hit_hosts]
    if kind == "switch-down":  # servers trunked through it; VMs move their uplink and stay
        affected += [p for p in PERSONAS if before[p]["machine"]["kind"] == "physical" and p not in affected
                     and trunk_switch(s, before[p]["machine"]["host"]) == switch]
    label = kind + (" +pair" if pair else "") + (f" +{controller_fault}" if controller_fault else "")
    t0 = time.time()
    out["began"].append((t0, f"trial {out['trials'] + 1}: {label} on {', '.join(t for t, _ in faults)}"))
    for target, f in faults:
        s.fault(target, f)
    marks = {}
    if controller_fault:
        time.sleep(rng.uniform(0.3, 2.0))  # mid-failover
        upset_controllers(s, controller_fault, rng, marks)
    took = []
    for p in affected:
        try:
            st = s.wait(p, lambda st, p=p: (st["generation"] > before[p]["generation"] and st["state"] == "running")
                        or st["state"] == "blocked", SETTLE)
        except TimeoutError:
            now = s.status(p)
            out["late"].append(f"{label}: {p} still {now['state']} after {SETTLE:g} s ({(now.get('reason') or '')[:120]})")
            continue
        if st["state"] == "blocked":
            out["blocked"].append(f"{label}: {p}: {st['reason'][:400]}")
            continue
        events = call(s, "GET", "/api/v1/events/log", params={"persona": p, "kind": "transition", "limit": 200,
                                                              "newest_first": True})
        times = {}
        for e in reversed(events):
            if stamp(e["at"]) >= t0 - 0.01:
                times.setdefault(e["data"]["to"], stamp(e["at"]))
        if times.get("running") is not None:
            took.append(f"{p} {times['running'] - t0:.2f} s")
            if slow is not None and times["running"] - t0 > slow:
                print(f"    {label}: {p} replaced after {times['running'] - t0:.2f} s:", flush=True)
                explain(s, p, t0, marks)
        for key, value in (("replace", times.get("running")), ("detect", times.get("suspect"))):
            if value is not None:
                out[key].append(value - t0)
                out.setdefault(f"{key} {controller_fault or 'none'}", []).append(value - t0)
        if "fencing" in times and "fenced" in times:
            out["fence"].append(times["fenced"] - times["fencing"])
    repair(s, faults)
    if controller_fault and isinstance(s, Cluster):
        settle_leadership(s)
    out["trials"] += 1
    if verbose:
        print(f"  trial {out['trials']}: {label} on {', '.join(t for t, _ in faults)}: "
              f"replaced {', '.join(took) or 'nothing'}", flush=True)
    out["kinds"][label] = out["kinds"].get(label, 0) + 1
    return True


def pick_controller_fault(s: Stack, rng: random.Random) -> str | None:
    """One trial in five kills a controller mid-failover; with several
    controllers, one in ten more restarts their PostgreSQL."""
    draw = rng.random()
    if draw < 0.2:
        return KILL_LEADER if isinstance(s, Cluster) else "SIGKILL"
    if draw < 0.3 and isinstance(s, Cluster):
        return RESTART_PG
    return None


def upset_controllers(s: Stack, fault: str, rng: random.Random, marks: dict[str, float]) -> None:
    """The controller fault, and the controller (or PostgreSQL) back."""
    if fault == RESTART_PG:
        marks["PostgreSQL stopped (fast)"] = time.time()
        s.postgres.stop("fast")
        time.sleep(rng.uniform(0.2, 1.0))
        s.postgres.start()
        marks["PostgreSQL started"] = time.time()
    elif fault == KILL_LEADER:
        n = s.leader(timeout=30)
        marks[f"c{n}, the leader, SIGKILLed"] = time.time()
        s.kill(n)
        s.start_controller(i=n)
        marks[f"c{n} answers again"] = time.time()
    else:
        marks["controller SIGKILLed"] = time.time()
        s.kill_controller()
        s.start_controller()
        marks["controller answers again"] = time.time()


def settle_leadership(s: Cluster) -> None:
    """After a controller fault, the next trial begins once a controller
    leads (a PostgreSQL restarted after the replacement deposes the leader
    as the trial ends) and the agents that beat to the one before have
    beaten to it: a fault in the seconds of a takeover is a controller
    fault's trial, not the next one's."""
    s.leader(timeout=SETTLE)
    time.sleep(CONTROLLER_QUIET + 2 * Timing().heartbeat_interval)


def repair(s: Stack, faults: list[tuple[str, str]]) -> None:
    """Mend what the trial broke and return fenced hosts to service."""
    for target, _ in faults:
        s.fault(target, "up" if target in switches(s) else "repair")
    status = call(s, "GET", "/api/v1/status")
    for host in status["hosts"]:
        call(s, "POST", f"/api/v1/hosts/{host['name']}/clear", json={"reason": "repaired by the fault campaign"})
    for host in s.doc["hosts"]:
        # clearing a host cut off at the fabric powers it off first (its ports
        # come back to an empty machine); an operator then starts a
        # hypervisor host again, or the campaign would lose its VM capacity
        # for good at the first such fence and measure only servers
        if host.get("hypervisor"):
            s.fault(host["name"], "repair")
    for p in status["personas"]:  # an operator's word, now that the hardware is mended
        if p["state"] == "blocked":
            call(s, "POST", f"/api/v1/personas/{p['name']}/confirm-dead", json={"reason": "repaired by the fault campaign"})
        elif p["state"] == "failed":  # its starts kept failing: started again once the hardware is mended
            out_of_service = p["reason"] or ""
            print(f"    {p['name']} was failed ({out_of_service[:200]}): started again", flush=True)
            call(s, "POST", f"/api/v1/personas/{p['name']}/start", json={})


def lost(s: Stack, settle: float) -> list[str]:
    """The personas an operator would call lost when the campaign ends:
    desired running, yet not running with a ready agent after ``settle``
    seconds more, whatever the reason; each with its last events."""
    deadline = time.monotonic() + settle
    while True:
        statuses = call(s, "GET", "/api/v1/status")["personas"]
        missing = [p for p in statuses if p["desired"] == "running"
                   and not (p["state"] == "running" and (p.get("agent") or {}).get("ready"))]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out = []
    for p in missing:
        events = call(s, "GET", "/api/v1/events/log", params={"persona": p["name"], "limit": 8, "newest_first": True})
        last = "\n".join(f"      {e['at'][11:23]} {e['message'][:160]}" for e in reversed(events))
        out.append(f"{p['name']} is {p['state']} (generation {p['generation']}): {(p['reason'] or '')[:160]}\n{last}")
    return out


def campaign(s: Stack, rng: random.Random, out: dict, args: argparse.Namespace) -> dict:
    """The trials on ``s``, started and stopped here; the truth checker's verdict."""
    s.start()
    try:
        for p in PERSONAS:
            call(s, "POST", f"/api/v1/personas/{p}/start", json={})
        for _ in range(args.trials):
            if not trial(s, rng, out, args.verbose, args.explain):
                break
        out["lost"] = lost(s, SETTLE)
        return s.truth()
    finally:
        s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verbose", action="store_true", help="a line per trial")
    ap.add_argument("--explain", type=float, metavar="SECONDS",
                    help="print the events of every replacement slower than this")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep the controller's and lab's logs")
    ap.add_argument("--controllers", type=int, default=1,
                    help="controllers sharing a PostgreSQL of the campaign's own (1: one controller on SQLite)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = {"trials": 0, "lost": [], "late": [], "blocked": [], "replace": [], "detect": [], "fence": [],
           "kinds": {}, "setup_failed": [], "began": []}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voe-faults-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        doc = relocate(with_spares(load()))
        if args.controllers > 1:
            with PrivatePostgres(Path(f"/tmp/voe-faults-pg-{os.getpid()}")) as pg:
                truth = campaign(Cluster(doc, workdir, pg.url, controllers=args.controllers, postgres=pg), rng, out, args)
        else:
            truth = campaign(Stack(doc, workdir), rng, out, args)
    print(f"fault campaign: {out['trials']} trials in {time.monotonic() - began:.0f} s, one datacenter throughout "
          f"({len(out['kinds'])} fault kinds, {args.controllers} controller(s))")
    print("  " + ", ".join(f"{k} x{n}" for k, n in sorted(out["kinds"].items())))
    print(f"  double-runs: {len(truth['violations'])} (truth checker, {truth['samples']} samples)   "
          f"personas lost: {len(out['lost'])}   not replaced within {SETTLE:g} s: {len(out['late'])}   "
          f"blocked with a reason: {len(out['blocked'])}")
    rows = []
    for name, key in (("fault to replacement running", "replace"), ("detection (fault to suspect)", "detect")):
        rows.append((name, key))
        rows += [(f"  the same, trials with {what.removeprefix(key + ' ')}" if what != f"{key} none"
                  else "  the same, trials without a controller fault", what)
                 for what in sorted(k for k in out if k.startswith(key + " "))]
        if f"{key} {RESTART_PG}" in out:  # the target counts the leader's kills, not the database's
            out[f"{key} but"] = [x for k, v in out.items() if k.startswith(key + " ") and k != f"{key} {RESTART_PG}"
                                 for x in v]
            rows.append((f"  the same, all trials but those that {RESTART_PG}", f"{key} but"))
    for name, key in rows + [("fencing (fencing to fenced)", "fence")]:
        v = out[key]
        print(f"  {name}: p50 {pct(v, .5):.2f} s  p95 {pct(v, .95):.2f} s  p99 {pct(v, .99):.2f} s  "
              f"(n={len(v)}, mean {statistics.fmean(v) if v else float('nan'):.2f} s)")
    for item in out["lost"]:
        print(f"  - LOST: {item}")
    for item in out["late"]:
        print(f"  - not replaced within {SETTLE:g} s: {item}")
    for item in out["blocked"]:
        print(f"  - blocked: {item}")
    for v in truth["violations"]:
        during = max((b for b in out["began"] if b[0] <= v["at"]), default=(0, "before the first trial"))[1]
        seen = "; ".join(f"generation {i['generation']} on {i['machine']} {i['state']}"
                         + (f" (isolated: {i['why_isolated']})" if i["isolated"] else "") for i in v["incarnations"])
        print(f"  - DOUBLE RUN of {v['persona']} during {during}: {seen}")
    for item in out["setup_failed"]:
        print(f"  - a trial could not start its personas: {item}")


if __name__ == "__main__":
    main()
