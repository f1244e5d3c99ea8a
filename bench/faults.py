"""Fault campaign: N randomized trials on the lab with the truth checker
running all along. Each trial starts a fresh controller and lab (as separate
processes), runs three personas (a VM and two physical servers), injects one
fault or a pair (and sometimes SIGKILLs the controller mid-failover), and
waits for every persona to run again — or to be blocked with a reason.

Prints: trials, double-runs (must be 0), personas lost (must be 0), and
fault-to-replacement-running time p50/p95/p99, with detection (fault to
suspect) and fencing (fencing to fenced) apart.

    .venv/bin/python bench/faults.py --trials 20 [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from harness import Stack, load, relocate

PERSONAS = ("web-1", "oracle", "bea-1")
HOST_FAULTS = ["power-loss", "hang", "os-crash", "partition", "bmc-down+hang", "bmc-down+power-loss"]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def trial(rng: random.Random, workdir: Path, out: dict) -> None:
    s = Stack(relocate(load()), workdir).start()
    try:
        for p in PERSONAS:
            s.http.post(f"/api/v1/personas/{p}/start", json={}).raise_for_status()
        try:
            before = {p: s.wait(p, lambda st: st["state"] == "running") for p in PERSONAS}
        except TimeoutError as e:
            out["setup_failed"].append(str(e)[:120])
            return
        victim = rng.choice(PERSONAS)
        host = before[victim]["machine"]["host"]
        kind = rng.choice(HOST_FAULTS + ["switch-down"])
        faults = [(host, f) for f in kind.split("+")] if kind != "switch-down" else [("sw1", "down")]
        if rng.random() < 0.25:  # a pair: a second host fails too
            other = next(before[p]["machine"]["host"] for p in PERSONAS if before[p]["machine"]["host"] != host)
            faults.append((other, rng.choice(["power-loss", "hang", "partition"])))
        sigkill = rng.random() < 0.2
        t0 = time.time()
        for target, f in faults:
            s.fault(target, f)
        if sigkill:
            time.sleep(rng.uniform(0.3, 2.0))
            s.kill_controller()
            s.start_controller()
        hit_hosts = {t for t, _ in faults}
        affected = [p for p in PERSONAS if before[p]["machine"]["host"] in hit_hosts or kind == "switch-down"]
        if kind == "switch-down":
            affected = list(PERSONAS)  # every trunk is on sw1 in this datacenter
        for p in affected:
            try:
                st = s.wait(p, lambda st: (st["generation"] > before[p]["generation"] and st["state"] == "running")
                            or st["state"] == "blocked", 60)
            except TimeoutError:
                out["lost"].append(f"{kind} {p}")
                continue
            if st["state"] == "blocked":
                out["blocked"].append(f"{kind}: {st['reason'][:80]}")
                continue
            events = s.http.get("/api/v1/events/log", params={"persona": p, "kind": "transition", "limit": 200,
                                                              "newest_first": True}).json()
            times = {}
            for e in reversed(events):
                if stamp(e["at"]) >= t0 - 0.01:
                    times.setdefault(e["data"]["to"], stamp(e["at"]))
            if "running" in times:
                out["replace"].append(times["running"] - t0)
            if "suspect" in times:
                out["detect"].append(times["suspect"] - t0)
            if "fencing" in times and "fenced" in times:
                out["fence"].append(times["fenced"] - times["fencing"])
        out["double_runs"] += len(s.truth()["violations"])
        out["trials"] += 1
        out["kinds"][kind + (" +pair" if len(faults) > len(kind.split("+")) else "") + (" +SIGKILL" if sigkill else "")] = 1
    finally:
        s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = {"trials": 0, "double_runs": 0, "lost": [], "blocked": [], "replace": [], "detect": [], "fence": [],
           "kinds": {}, "setup_failed": []}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voe-faults-") as tmp:
        for i in range(args.trials):
            d = Path(tmp) / f"t{i}"
            d.mkdir()
            trial(rng, d, out)
    print(f"fault campaign: {out['trials']} trials in {time.monotonic() - began:.0f} s "
          f"({len(out['kinds'])} fault kinds: {', '.join(sorted(out['kinds']))})")
    print(f"  double-runs: {out['double_runs']}   personas lost: {len(out['lost'])}   "
          f"blocked with a reason: {len(out['blocked'])}")
    for name, key in (("fault to replacement running", "replace"), ("detection (fault to suspect)", "detect"),
                      ("fencing (fencing to fenced)", "fence")):
        v = out[key]
        print(f"  {name}: p50 {pct(v, .5):.2f} s  p95 {pct(v, .95):.2f} s  p99 {pct(v, .99):.2f} s  "
              f"(n={len(v)}, mean {statistics.fmean(v) if v else float('nan'):.2f} s)")
    for item in out["lost"] + out["blocked"]:
        print(f"  - {item}")
    for item in out["setup_failed"]:
        print(f"  - a trial could not start its personas: {item}")


if __name__ == "__main__":
    main()
