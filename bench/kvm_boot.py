"""Real machines booting at once: KVM servers of the lab, each powered on
by voe to boot a persona of its own, and for each the time from power-on
to its DHCP answer, its kernel fetched, its NFS root mounted and its agent
ready, and the memory each QEMU holds.

    python bench/kvm_boot.py [--servers 4] [--keep]     # one vCPU each

Needs root (the lab's network namespace), QEMU and the Debian base
(``python -m voe.images.debian``); under QEMU's software emulation when
the CPU offers no VT-x/AMD-V, which it says.

The moments are the controller's events (power-on, kernel fetched, agent
ready), dnsmasq's log (DHCP, to the second) and the serial console, read
as it is written (root mounted)."""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from harness import ROOT, Stack, free_port, load

GATEWAY = "10.77.0.1"


def datacenter(servers: int, workdir: Path) -> dict:
    doc = load(ROOT / "examples" / "kvm-lab.yaml")
    template = next(h for h in doc["hosts"] if h["name"] == "kvm-1")
    nas = next(h for h in doc["hosts"] if h["name"] == "nas")
    hosts = []
    for i in range(1, servers + 1):
        h = {**template, "name": f"kvm-{i}", "nics": [{**template["nics"][0], "mac": f"52:54:00:77:{i:02x}:01",
                                                        "port": str(i)}],
             "machine": {**template["machine"], "cpus": 1},  # one vCPU each: four share this machine's two cores
             "bmc": {**template["bmc"], "port": free_port(socket.SOCK_DGRAM)}}
        hosts.append(h)
    nas["bmc"] = {**nas["bmc"], "port": free_port(socket.SOCK_DGRAM)}
    nas["storage"]["settings"] = {"export_dir": str(workdir / "exports"),
                                  "dbus_address": f"unix:path={workdir / 'ganesha-bus.sock'}"}
    doc["hosts"] = [*hosts, nas]
    doc["switches"][0]["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    doc["switches"][0]["ports"] = max(8, servers)
    return doc


class SerialWatch:
    """When each serial console first printed a line: read as it grows."""

    def __init__(self, logs: dict[str, Path], pattern: str):
        self.logs, self.pattern, self.seen = logs, re.compile(pattern), {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for host, log in self.logs.items():
                if host not in self.seen and log.exists() and self.pattern.search(log.read_text(errors="replace")):
                    self.seen[host] = time.time()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


def dhcp_times(log: Path) -> dict[str, float]:
    """MAC -> when dnsmasq first acknowledged it (its log has seconds)."""
    out: dict[str, float] = {}
    year = datetime.now().year
    for line in log.read_text().splitlines():
        m = re.match(r"(\w{3} +\d+ [\d:]+) dnsmasq-dhcp\[\d+\]: \d+ DHCPACK\(\S+\) \S+ (\S+)", line)
        if m and m.group(2) not in out:
            out[m.group(2)] = datetime.strptime(f"{year} {m.group(1)}", "%Y %b %d %H:%M:%S").timestamp()
    return out


def rss_mib(host: str) -> float | None:
    r = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64 -name {host} "], capture_output=True, text=True)
    pids = r.stdout.split()
    if not pids:
        return None
    for line in Path(f"/proc/{pids[0]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the lab's directory (serial consoles, dnsmasq's log)")
    ns = ap.parse_args()
    if shutil.which("qemu-system-x86_64") is None:
        sys.exit("QEMU is missing (scripts/setup.sh installs it)")
    from voe.images import debian
    from voe.lab.kvm import accelerator

    accel, why = accelerator()
    template = debian.with_agent(debian.ensure())
    workdir = Path(tempfile.mkdtemp(prefix="voe-kvm-boot-"))
    env = {"VOE_BOOT_TIMEOUT": "900", "VOE_BOOT_SCRIPT_TIMEOUT": "300"}
    stack = Stack(datacenter(ns.servers, workdir), workdir, env=env, public=GATEWAY).start()
    try:
        r = stack.request("POST", "/api/v1/templates", json={"name": "debian", "source": str(template)})
        r.raise_for_status()
        names = [f"web-{i}" for i in range(1, ns.servers + 1)]
        for name in names:
            r = stack.request("POST", "/api/v1/templates/debian/clone", json={"persona": {
                "name": name, "cpus": 1, "memory": "256MiB", "vnics": [{"network": "storage", "boot": True},
                                                                      {"network": "back"}]}})
            r.raise_for_status()
        logs = {f"kvm-{i}": workdir / "lab" / "hosts" / f"kvm-{i}" / "serial.log" for i in range(1, ns.servers + 1)}
        mounted = SerialWatch(logs, r"Mounted root filesystem")
        print(f"{ns.servers} KVM servers ({accel}{': ' + why if why else ''}), powered on at once", flush=True)
        for name in names:
            stack.request("POST", f"/api/v1/personas/{name}/start", json={}).raise_for_status()
        for name in names:
            stack.wait(name, lambda s: s["state"] == "running", timeout=900)
        mounted.stop()
        rss = {h: rss_mib(h) for h in logs}
        dhcp = dhcp_times(workdir / "lab" / "dnsmasq.log")
        rows = []
        for name in names:
            events = stack.request("GET", "/api/v1/events/log", params={"persona": name, "limit": 200}).json()
            at = {}
            for e in events:
                t = datetime.fromisoformat(e["at"]).timestamp()
                if "boot PXE, power on" in e["message"]:
                    at.setdefault("on", t)
                    at["host"] = e["message"].split(":")[0]
                elif "fetched its kernel" in e["message"]:
                    at["kernel"] = t
                elif "agent reports ready" in e["message"]:
                    at["ready"] = t
            host = at["host"]
            mac = next(n["mac"] for h in stack.doc["hosts"] if h["name"] == host for n in h["nics"])
            rows.append((name, host, dhcp.get(mac, float("nan")) - at["on"], at["kernel"] - at["on"],
                         mounted.seen.get(host, float("nan")) - at["on"], at["ready"] - at["on"], rss[host]))
        print(f"{'persona':8} {'server':7} {'DHCP':>6} {'kernel':>7} {'root':>6} {'ready':>6} {'RSS MiB':>8}")
        for name, host, d, k, m, ready, mem in rows:
            print(f"{name:8} {host:7} {d:6.1f} {k:7.1f} {m:6.1f} {ready:6.1f} {mem or 0:8.0f}")
        readies = [r[5] for r in rows]
        print(f"power-on to agent ready: median {statistics.median(readies):.1f} s, worst {max(readies):.1f} s "
              f"(target 10 s); RSS worst {max(r[6] or 0 for r in rows):.0f} MiB (target 512)")
    finally:
        stack.stop()
        if ns.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
