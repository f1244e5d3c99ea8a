"""Concurrent power-ons through voe's IPMI driver against lab BMCs in another
process, as a level of a group start issues them: each a fresh login, the
boot device set to PXE, power on, each read back. Prints, per round of N at
once, the slowest and the median sequence, the CPU time one sequence costs
the client (the controller's side) and the lab's BMCs, and any failure; the
first rounds log in, the later ones reuse their sessions.

    .venv/bin/python bench/ipmi_burst.py [--hosts 200] [--at-once 100] [--rounds 4]
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
from voe.drivers.power.ipmi import IpmiPower


def power_on(driver: IpmiPower, out: list) -> None:
    """What a start asks of a server's BMC (``controller/start.py``)."""
    began = time.monotonic()
    try:
        driver.set_boot_device("pxe", persistent=False)
        driver.power_on_or_reset()
        out.append((time.monotonic() - began, None))
    except Exception as e:  # noqa: BLE001 - reported with the figures
        out.append((time.monotonic() - began, f"{driver.device}: {e}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--at-once", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    doc = datacenter(args.hosts, switches=1)
    with tempfile.TemporaryDirectory() as tmp:
        lab = lab_alone(doc, Path(tmp))
        try:
            drivers = [IpmiPower.from_host(h) for h in parse(doc).hosts]
            print(f"IPMI burst: {args.at_once} power-ons at once against {args.hosts} lab BMCs in another process")
            for r in range(args.rounds):
                start = (r * args.at_once) % args.hosts
                batch = (drivers[start:] + drivers[:start])[:args.at_once]
                fresh = all(d._link.cmd is None for d in batch)
                out: list = []
                client_cpu, lab_cpu = time.process_time(), cpu_seconds(lab.pid)
                threads = [threading.Thread(target=power_on, args=(d, out)) for d in batch]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                client_cpu = (time.process_time() - client_cpu) / len(batch) * 1000
                lab_cpu = (cpu_seconds(lab.pid) - lab_cpu) / len(batch) * 1000
                took = sorted(s for s, _ in out)
                failed = [e for _, e in out if e]
                print(f"  round {r + 1} ({'fresh logins' if fresh else 'open sessions'}): slowest {took[-1]:.2f} s, "
                      f"median {statistics.median(took):.2f} s, CPU per sequence {client_cpu:.1f} ms client, "
                      f"{lab_cpu:.1f} ms lab, {len(failed)} failed" +
                      (f" (first: {failed[0]})" if failed else ""))
                for d in batch:
                    d.power_off()
        finally:
            stop_process(lab)


if __name__ == "__main__":
    main()
