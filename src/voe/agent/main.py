"""``voe-agent``: runs inside every persona. Fetches its configuration,
builds its network identity, writes its SAN identity, then heartbeats with
its generation. It stops when told ``stop``, exits at once when told it is
stale, and fences itself when a configured lease cannot be renewed.

Exit codes: 0 stopped on request or by ACPI; 2 bad parameters; 3 stale
(another incarnation took over); 4 self-fenced (lease expired).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from voe.agent import bootargs, render
from voe.agent.client import Controller, Stale, Unreachable

EXIT_STALE, EXIT_SELF_FENCED = 3, 4


def log(msg: str) -> None:
    sys.stderr.write(f"voe-agent {time.strftime('%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


def read_args(ns: argparse.Namespace) -> bootargs.BootArgs:
    if ns.persona:
        words = f"voe.controller={ns.controller} voe.persona={ns.persona} voe.generation={ns.generation} voe.token={ns.token}"
    elif ns.cmdline:
        words = ns.cmdline
    else:
        words = Path(ns.cmdline_file).read_text()
    return bootargs.parse(words)


def fetch_config(ctl: Controller) -> dict:
    delay = 0.1
    while True:
        try:
            return ctl.call("GET", "/api/v1/agent/config")
        except Unreachable as e:
            log(f"controller unreachable ({e}); retrying")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def configure(root: Path, config: dict, backend: str) -> dict[str, str]:
    if backend == "live":
        from voe.agent import net_live  # pyroute2, only where the live backend is used

        net_live.apply(config)
    else:
        render.write(root, config)
    iscsi = root / "etc" / "iscsi"
    iscsi.mkdir(parents=True, exist_ok=True)
    (iscsi / "initiatorname.iscsi").write_text(f"InitiatorName={config['san']['initiator_iqn']}\n")
    (root / "etc" / "hostname").write_text(config["hostname"] + "\n")
    return {i["name"]: i["address"] for i in config["interfaces"]}


def app_ready(check: str | None) -> tuple[bool, str]:
    if not check:
        return True, "network configured"
    r = subprocess.run(check, shell=True, capture_output=True, timeout=30)
    return r.returncode == 0, f"app check exited {r.returncode}"


def run(ns: argparse.Namespace) -> int:
    args = read_args(ns)
    ctl = Controller(args.controller, args.token, args.ca)
    root = Path(ns.root)
    started = time.monotonic()
    stopping = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(asked=True))
    try:
        config = fetch_config(ctl)
    except Stale as e:
        log(f"stale before start ({e}); exiting")
        return EXIT_STALE
    if config["generation"] != args.generation:
        log(f"generation {args.generation} is not the current {config['generation']}; exiting")
        return EXIT_STALE
    addresses = configure(root, config, ns.network_backend)
    log(f"{args.persona} generation {args.generation} configured: {addresses}")
    interval = config["heartbeat"]["interval"]
    lease_ttl = config["heartbeat"].get("lease_ttl")
    last_ok = time.monotonic()
    while True:
        ready, detail = app_ready(ns.app_check or config.get("app_check"))
        body = {"generation": args.generation, "ready": ready, "stopping": stopping["asked"],
                "uptime": round(time.monotonic() - started, 1), "addresses": addresses, "detail": detail,
                "wwpn": config["san"].get("wwpn")}
        try:
            answer = ctl.call("POST", "/api/v1/agent/heartbeat", body)
            last_ok = time.monotonic()
        except Stale as e:
            log(f"stale ({e}); stopping at once")
            return EXIT_STALE
        except Unreachable as e:
            answer = {}
            if lease_ttl and time.monotonic() - last_ok > lease_ttl:
                log(f"lease of {lease_ttl:g} s expired without renewal ({e}); self-fencing")
                return _halt(ns, EXIT_SELF_FENCED)
        if answer.get("action") == "stale":
            log("the controller says this generation is stale; stopping at once")
            return EXIT_STALE
        if stopping["asked"] and body["stopping"]:
            log("stopped")
            return _halt(ns, 0)
        if answer.get("action") == "stop":
            stopping["asked"] = True
            continue  # report stopping at once, then halt
        interval = answer.get("interval", interval)
        time.sleep(interval)


def _halt(ns: argparse.Namespace, code: int) -> int:
    if ns.on_stop == "poweroff":
        subprocess.run(["systemctl", "poweroff", "--force"], check=False)
    return code


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="voe-agent", description="voe's agent inside a persona")
    p.add_argument("--cmdline", help="kernel command line words (default: /proc/cmdline)")
    p.add_argument("--cmdline-file", default="/proc/cmdline")
    p.add_argument("--controller")
    p.add_argument("--persona")
    p.add_argument("--generation")
    p.add_argument("--token")
    p.add_argument("--root", default="/", help="where to write configuration files")
    p.add_argument("--network-backend", choices=["rendered", "live"], default=None)
    p.add_argument("--app-check", help="command whose success means the application is ready")
    p.add_argument("--on-stop", choices=["exit", "poweroff"], default="exit")
    ns = p.parse_args(argv)
    if ns.network_backend is None:
        ns.network_backend = "live" if ns.root == "/" else "rendered"
    try:
        sys.exit(run(ns))
    except bootargs.BootArgsError as e:
        log(f"error: {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
