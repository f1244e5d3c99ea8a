"""Concurrent power-ons through voe's IPMI driver against lab BMCs in another
process, as a level of a group start issues them: each a fresh login, the
boot device set to PXE, power on, each read back. Prints, per round of N at
once, the slowest and the median sequence, the CPU time one sequence costs
the client (the controller's side) and the lab's BMCs, and any failure; the
first rounds log in, the later ones reuse their sessions. With
``--power-process``, the drivers run in a power process, as in the
controller (``drivers/driver_process.py``), and the client's CPU is given
for this process (the controller's share) and the power process apart.

    .venv/bin/python bench/ipmi_burst.py [--hosts 200] [--at-once 100] [--rounds 4] [--power-process]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from harness import cpu_seconds, lab_alone, stop_process
from lab_scale import datacenter
from voe.domain.inventory import parse
from voe.drivers.base import PowerDriver
from voe.drivers.driver_process import DriverProcess, RemotePower
from voe.drivers.power.ipmi import IpmiPower


def power_on(driver: PowerDriver, out: list) -> None:
    """What a start asks of a server's BMC (``controller/start.py``)."""
    began = time.monotonic()
    try:
        driver.set_boot_device("pxe", persistent=True)
        driver.power_on_or_reset()
        out.append((time.monotonic() - began, None))
    except Exception as e:
        out.append((time.monotonic() - began, f"{driver.device}: {e}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--at-once", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--power-process", action="store_true", help="the drivers in a power process, as in the controller")
    args = ap.parse_args()
    doc = datacenter(args.hosts, switches=1)
    with tempfile.TemporaryDirectory() as tmp:
        lab = lab_alone(doc, Path(tmp))
        elsewhere = DriverProcess() if args.power_process else None
        try:
            drivers: list[PowerDriver] = [IpmiPower.from_host(h) for h in parse(doc).hosts]
            if elsewhere is not None:
                elsewhere.start()
                drivers = [RemotePower(d, elsewhere) for d in drivers]
            print(f"IPMI burst: {args.at_once} power-ons at once against {args.hosts} lab BMCs in another process"
                  + (", the drivers in a power process" if elsewhere else ""))
            for r in range(args.rounds):
                start = (r * args.at_once) % args.hosts
                batch = (drivers[start:] + drivers[:start])[:args.at_once]
                fresh = start + args.at_once <= args.hosts and r * args.at_once < args.hosts
                out: list = []
                client_cpu, lab_cpu = time.process_time(), cpu_seconds(lab.pid)
                power_cpu = cpu_seconds(elsewhere.pid) if elsewhere else 0.0
                threads = [threading.Thread(target=power_on, args=(d, out)) for d in batch]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                client_cpu = (time.process_time() - client_cpu) / len(batch) * 1000
                lab_cpu = (cpu_seconds(lab.pid) - lab_cpu) / len(batch) * 1000
                power_cpu = (cpu_seconds(elsewhere.pid) - power_cpu) / len(batch) * 1000 if elsewhere else None
                took = sorted(s for s, _ in out)
                failed = [e for _, e in out if e]
                print(f"  round {r + 1} ({'fresh logins' if fresh else 'open sessions'}): slowest {took[-1]:.2f} s, "
                      f"median {statistics.median(took):.2f} s, CPU per sequence {client_cpu:.1f} ms client"
                      + (f" (+ {power_cpu:.1f} ms in the power process)" if power_cpu is not None else "")
                      + f", {lab_cpu:.1f} ms lab, {len(failed)} failed" +
                      (f" (first: {failed[0]})" if failed else ""))
                for d in batch:
                    d.power_off()
        finally:
            if elsewhere is not None:
                elsewhere.close()
            stop_process(lab)


if __name__ == "__main__":
    main()
