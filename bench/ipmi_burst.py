"""Concurrent power-ons through voe's IPMI driver against lab BMCs in another
process, as a level of a group start issues them: each a fresh login, the
boot device set to PXE, power on, each read back. Prints, per round of N at
once, the slowest and the median sequence, and any failure; the first rounds
log in, the later ones reuse their sessions.

    .venv/bin/python bench/ipmi_burst.py [--hosts 200] [--at-once 100] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from harness import dump, free_port, stop_process

from voe.domain.inventory import parse
from voe.drivers.power.ipmi import IpmiPower


def datacenter(hosts: int) -> dict:
    doc = {"networks": [{"name": "front", "vlan": 100, "subnet": "10.0.0.0/16"}],
           "switches": [{"name": "sw0", "address": "127.0.0.1", "ports": hosts,
                         "settings": {"port": free_port(2), "community": "private"}}],
           "hosts": []}
    for i in range(hosts):
        doc["hosts"].append({
            "name": f"h{i:03d}", "cpus": 16, "memory": "64GiB",
            "bmc": {"address": "127.0.0.1", "port": free_port(2), "username": "admin", "password": "pw"},
            "nics": [{"name": "eth0", "mac": f"00:0c:00:00:{i >> 8:02x}:{i & 255:02x}", "switch": "sw0",
                      "port": str(i + 1)}]})
    return doc


def power_on(driver: IpmiPower, out: list) -> None:
    """What a start asks of a server's BMC (``controller/start.py``)."""
    began = time.monotonic()
    try:
        driver.set_boot_device("pxe", persistent=False)
        driver.power_on()
        out.append((time.monotonic() - began, None))
    except Exception as e:  # noqa: BLE001 - reported with the figures
        out.append((time.monotonic() - began, f"{driver.device}: {e}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--at-once", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    doc = datacenter(args.hosts)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "dc.yaml"
        f.write_text(dump(doc))
        port = free_port()
        lab = subprocess.Popen([sys.executable, "-m", "voe.cli.main", "lab", "up", "-f", str(f), "--control-port",
                                str(port), "--state-dir", f"{tmp}/lab", "--controller", "http://127.0.0.1:9"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=os.environ)
        try:
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/status", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            drivers = [IpmiPower.from_host(h) for h in parse(doc).hosts]
            print(f"IPMI burst: {args.at_once} power-ons at once against {args.hosts} lab BMCs in another process")
            for r in range(args.rounds):
                start = (r * args.at_once) % args.hosts
                batch = (drivers[start:] + drivers[:start])[:args.at_once]
                fresh = all(d._link.cmd is None for d in batch)
                out: list = []
                threads = [threading.Thread(target=power_on, args=(d, out)) for d in batch]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                took = sorted(s for s, _ in out)
                failed = [e for _, e in out if e]
                print(f"  round {r + 1} ({'fresh logins' if fresh else 'open sessions'}): slowest {took[-1]:.2f} s, "
                      f"median {statistics.median(took):.2f} s, {len(failed)} failed" +
                      (f" (first: {failed[0]})" if failed else ""))
                for d in batch:
                    d.power_off()
        finally:
            stop_process(lab)


if __name__ == "__main__":
    main()
