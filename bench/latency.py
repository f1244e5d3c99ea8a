"""Driver latency on loopback against the lab: one IPMI power status and
one SNMP trunk change (written, then read back and compared), median and
p95 over N runs.

    .venv/bin/python bench/latency.py [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness import Stack, load, relocate
from voe.domain.inventory import parse
from voe.domain.ports import PortConfig
from voe.drivers.power.ipmi import IpmiPower
from voe.drivers.switch.snmp import SnmpSwitch


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def show(name: str, v: list[float]) -> None:
    v = sorted(v)
    print(f"  {name}: median {statistics.median(v) * 1000:.1f} ms, p95 {v[int(len(v) * .95) - 1] * 1000:.1f} ms "
          f"(n={len(v)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = Stack(relocate(load()), Path(tmp)).start()
        try:
            inv = parse(s.doc)
            ipmi = IpmiPower.from_host(inv.by_name("hosts")["dl360-2"])
            ipmi.power_state()  # log in once, as the controller's cached session does
            sw = SnmpSwitch.from_switch(inv.by_name("switches")["sw1"])
            configs = [PortConfig.trunk({200}, 300), PortConfig.trunk({100, 200}, 300)]
            flip = iter(range(10**9))
            print("driver latency on loopback against the lab")
            show("IPMI power status", timed(ipmi.power_state, args.runs))
            show("SNMP trunk change with read-back", timed(lambda: sw.configure_port("7", configs[next(flip) % 2]), args.runs))
        finally:
            s.stop()


if __name__ == "__main__":
    main()
