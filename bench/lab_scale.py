"""Lab scale: a generated datacenter of 500 hosts and 20 switches. Prints
the time from `voe lab up` until every BMC and switch answers on the wire
(checked with pyghmi and SNMP from another process, as a controller would),
and the resident memory of the lab's process tree. Targets: < 20 s, < 2 GiB.

    .venv/bin/python bench/lab_scale.py [--hosts 500] [--switches 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port, lab_alone


def datacenter(hosts: int, switches: int) -> dict:
    ports = -(-hosts // switches)
    doc = {"networks": [{"name": "front", "vlan": 100, "subnet": "10.0.0.0/16"}],
           "switches": [{"name": f"sw{i}", "address": "127.0.0.1", "ports": ports,
                         "settings": {"port": free_port(2), "community": "private"}} for i in range(switches)],
           "hosts": []}
    for i in range(hosts):
        doc["hosts"].append({
            "name": f"h{i:03d}", "cpus": 16, "memory": "64GiB",
            "bmc": {"address": "127.0.0.1", "port": free_port(2), "username": "admin", "password": "pw"},
            "nics": [{"name": "eth0", "mac": f"00:0c:00:00:{i >> 8:02x}:{i & 255:02x}",
                      "switch": f"sw{i % switches}", "port": str(i // switches + 1)}]})
    return doc


def rss_tree(pid: int) -> int:
    """Resident bytes of a process and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo += children.get(p, [])
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--switches", type=int, default=20)
    args = ap.parse_args()
    doc = datacenter(args.hosts, args.switches)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        lab = lab_alone(doc, Path(tmp))
        lab_up = time.monotonic() - t0
        # every BMC and every switch answers, asked over the wire by another process
        check = subprocess.run([sys.executable, "-c", _CHECK, str(Path(tmp) / "dc.yaml")], capture_output=True,
                               text=True)
        up = time.monotonic() - t0
        rss = rss_tree(lab.pid)
        lab.terminate()
        lab.wait(60)
    print(f"lab scale: {args.hosts} hosts, {args.switches} switches")
    print(f"  lab up in {lab_up:.1f} s; every device answering on the wire after {up:.1f} s (target < 20 s)")
    print(f"  {check.stdout.strip()}")
    print(f"  resident memory of the lab: {rss / 2**20:.0f} MiB (target < 2048 MiB)")


_CHECK = r'''
import sys
from ruamel.yaml import YAML
from voe.domain.inventory import parse
from voe.drivers.power.ipmi import IpmiPower
from voe.drivers.switch.snmp import SnmpSwitch
inv = parse(YAML(typ="safe").load(open(sys.argv[1])))
from concurrent.futures import ThreadPoolExecutor
calls = [lambda h=h: IpmiPower.from_host(h).power_state() for h in inv.hosts]
calls += [lambda s=s: SnmpSwitch.from_switch(s).check() for s in inv.switches]
with ThreadPoolExecutor(16) as pool:
    done = list(pool.map(lambda f: f(), calls))
print(f"{len(done)} devices answered (IPMI power status, SNMP sysDescr), 16 at a time")
'''

if __name__ == "__main__":
    main()
