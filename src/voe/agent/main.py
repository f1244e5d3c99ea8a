"""``voe-agent``: runs inside every persona. Trades its boot script's
bootstrap token for its credential, fetches its configuration,
builds its network identity, writes its SAN identity, then heartbeats with
its generation. It stops when told ``stop``, exits at once when told it is
stale, and fences itself when a configured lease cannot be renewed.

Exit codes: 0 stopped on request or by ACPI; 2 bad parameters; 3 stale
(another incarnation took over, or its bootstrap token was refused); 4
self-fenced (lease expired); 5 the controller's CA is not the pinned one;
6 a Windows command failed (named in the log).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from voe.agent import bootargs, render, system, windows
from voe.agent.client import Controller, Stale, Unreachable, Untrusted

EXIT_STALE, EXIT_SELF_FENCED, EXIT_UNTRUSTED = 3, 4, 5
CREDENTIAL = Path("run") / "voe-agent" / "credential"
"""Under the agent's root: the credential its bootstrap token bought, kept
for an agent restarted within the same boot (the token is spent)."""


WINDOWS = windows.Windows()
"""Every call into Windows (the ``powershell`` backend's OS)."""

LOG_JSON = {"on": os.environ.get("VOE_LOG_FORMAT") == "json"}
"""One JSON object per line (``--log-format json`` or VOE_LOG_FORMAT), as
the controller's processes log; else text."""


def log(msg: str, level: str = "info") -> None:
    if LOG_JSON["on"]:
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "level": level.upper(), "process": "agent",
                           "logger": "voe.agent", "message": msg})
    else:
        line = f"voe-agent {time.strftime('%H:%M:%S')} {msg}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def read_args(ns: argparse.Namespace) -> bootargs.BootArgs:
    if ns.boot_url:
        return bootargs.from_boot_service(ns.boot_url, local_macs(ns))
    if ns.persona:
        words = f"voe.controller={ns.controller} voe.persona={ns.persona} voe.generation={ns.generation} voe.token={ns.token}"
    elif ns.cmdline:
        words = ns.cmdline
    else:
        words = Path(ns.cmdline_file).read_text()
    url = bootargs.boot_service(words)
    return bootargs.from_boot_service(url, local_macs(ns)) if url else bootargs.parse(words)


def local_macs(ns: argparse.Namespace) -> list[str]:
    """This machine's NICs' MACs: from Windows, or from sysfs."""
    if ns.network_backend == "powershell":
        return windows.nic_macs(WINDOWS)
    sysfs = Path("/sys/class/net")
    macs = [(d / "address").read_text().strip() for d in sorted(sysfs.iterdir()) if (d / "device").exists()]
    return [m for m in macs if m and m != "00:00:00:00:00:00"]


def until_reached(call):
    delay = 0.1
    while True:
        try:
            return call()
        except Unreachable as e:
            log(f"controller unreachable ({e}); retrying", "warning")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def obtain_credential(ctl: Controller, args: bootargs.BootArgs, root: Path, backend: str = "rendered") -> None:
    """The credential kept from earlier in this boot, or the bootstrap
    token's exchange for it (kept then, readable by root alone)."""
    kept = root / CREDENTIAL
    try:
        held = json.loads(kept.read_text())
        if (held["persona"], held["generation"]) == (args.persona, args.generation):
            ctl.token = held["token"]
            return
    except (OSError, ValueError, KeyError, TypeError):
        pass
    until_reached(lambda: ctl.redeem(args.persona, args.generation))
    kept.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept.unlink(missing_ok=True)
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"persona": args.persona, "generation": args.generation, "token": ctl.token}, f)
    if backend == "powershell":
        windows.protect(WINDOWS, kept)  # Windows ignores the mode: its ACL says who reads it


def configure(root: Path, config: dict, backend: str) -> dict[str, str]:
    if backend == "powershell":  # the script sets the iSCSI initiator's IQN too
        windows.apply_network(WINDOWS, root, config)
        return {i["name"]: i["address"] for i in config["interfaces"]}
    if backend == "live":
        from voe.agent import net_live

        net_live.apply(config)
        _write_identity(root, config)
        return system.as_configured(config["interfaces"], system.interfaces())
    render.write(root, config)
    _write_identity(root, config)
    return {i["name"]: i["address"] for i in config["interfaces"]}


def _write_identity(root: Path, config: dict) -> None:
    """The persona's iSCSI initiator name and hostname."""
    iscsi = root / "etc" / "iscsi"
    iscsi.mkdir(parents=True, exist_ok=True)
    (iscsi / "initiatorname.iscsi").write_text(f"InitiatorName={config['san']['initiator_iqn']}\n")
    (root / "etc" / "hostname").write_text(config["hostname"] + "\n")


def notify_configured(addresses: dict[str, str]) -> None:
    """Tell systemd the persona's network is configured (``Type=notify``,
    sd_notify's datagram to ``NOTIFY_SOCKET``). What is ordered after the
    agent's unit starts only now: systemd-networkd reads the files the agent
    wrote, and the probe does not compete with the agent's start for the
    persona's CPU. Without a service manager listening, nothing is sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path  # "@": the abstract namespace
    status = ", ".join(f"{name} {where}" for name, where in addresses.items())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(f"READY=1\nSTATUS=configured: {status}".encode(), address)


def app_ready(check: str | None) -> tuple[bool, str]:
    if not check:
        return True, "network configured"
    r = subprocess.run(check, shell=True, capture_output=True, timeout=30)
    return r.returncode == 0, f"app check exited {r.returncode}"


def run(ns: argparse.Namespace, stop: threading.Event) -> int:
    """The agent's life; ``stop`` is set by SIGTERM, or by the Service
    Control Manager on Windows."""
    args = read_args(ns)
    log(f"{args.persona} generation {args.generation} starting")  # the console says who this OS runs as
    ctl = Controller(args.controller, args.token, args.ca, ca_pin=args.ca_sha256, proxy=ns.proxy)
    root = Path(ns.root)
    started = time.monotonic()
    try:
        obtain_credential(ctl, args, root, ns.network_backend)
        config = until_reached(lambda: ctl.call("GET", "/api/v1/agent/config"))
    except Stale as e:
        log(f"stale before start ({e}); exiting", "warning")
        return EXIT_STALE
    except Untrusted as e:
        log(f"refusing the controller: {e}", "error")
        return EXIT_UNTRUSTED
    if config["generation"] != args.generation:
        log(f"generation {args.generation} is not the current {config['generation']}; exiting")
        return EXIT_STALE
    ctl.know(config.get("controllers", []))
    addresses = configure(root, config, ns.network_backend)
    log(f"{args.persona} generation {args.generation} configured: {addresses}")
    if ns.network_backend == "live":
        log(f"system: {json.dumps(system.report(), separators=(',', ':'))}")
    notify_configured(addresses)
    interval = config["heartbeat"]["interval"]
    lease_ttl = config["heartbeat"].get("lease_ttl")
    last_ok = time.monotonic()
    unanswered = False
    while True:
        ready, detail = app_ready(ns.app_check or config.get("app_check"))
        body = {"generation": args.generation, "ready": ready, "stopping": stop.is_set(),
                "uptime": round(time.monotonic() - started, 1), "addresses": addresses, "detail": detail,
                "wwpn": config["san"].get("wwpn")}
        try:
            answer = ctl.call("POST", "/api/v1/agent/heartbeat", body)
            if unanswered:
                log(f"heartbeats answered again after {time.monotonic() - last_ok:.1f} s")
                unanswered = False
            last_ok = time.monotonic()
        except Stale as e:
            log(f"stale ({e}); stopping at once", "warning")
            return EXIT_STALE
        except Unreachable as e:
            answer = {}
            if not unanswered:  # once per silence: the console tells why the controller stopped hearing
                log(f"heartbeat not answered ({e}); beating on", "warning")
                unanswered = True
            if lease_ttl and time.monotonic() - last_ok > lease_ttl:
                log(f"lease of {lease_ttl:g} s expired without renewal ({e}); self-fencing", "critical")
                return _halt(ns, EXIT_SELF_FENCED)
        if answer.get("action") == "stale":
            log("the controller says this generation is stale; stopping at once")
            return EXIT_STALE
        if body["stopping"]:
            log("stopped")
            return _halt(ns, 0)
        if answer.get("action") == "stop":
            stop.set()
            continue  # report stopping at once, then halt
        interval = answer.get("interval", interval)
        ctl.know(answer.get("controllers", []))
        stop.wait(interval)


def _halt(ns: argparse.Namespace, code: int) -> int:
    if ns.on_stop == "poweroff":
        if ns.network_backend == "powershell":
            windows.power_off(WINDOWS)
        else:
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
    p.add_argument("--boot-url", help="read the parameters from this boot service's script for one of this "
                                      "machine's MACs (an OS booted from a SAN LUN has no kernel command line)")
    p.add_argument("--root", default=None, help="where to write configuration files (default: / on Linux, "
                                                r"C:\ProgramData\voe on Windows)")
    p.add_argument("--network-backend", choices=["rendered", "live", "powershell"], default=None,
                   help="default: powershell on Windows, live with --root /, else rendered")
    p.add_argument("--proxy", help="reach the controllers through this HTTP proxy (CONNECT), "
                                    "where the network has no direct route to them")
    p.add_argument("--app-check", help="command whose success means the application is ready")
    p.add_argument("--on-stop", choices=["exit", "poweroff"], default="exit")
    p.add_argument("--log-format", choices=["text", "json"], default=None)
    service = p.add_mutually_exclusive_group()
    service.add_argument("--service", action="store_true", help="run as the Windows service (sc.exe starts it so)")
    service.add_argument("--install-service", action="store_true",
                         help="install and start the Windows service, with the other flags given here")
    service.add_argument("--uninstall-service", action="store_true", help="stop and remove the Windows service")
    service.add_argument("--probe", metavar="DEVICE", help="answer network probes on this virtio-serial port "
                                                           "(voe.agent.probe), instead of running the agent")
    ns = p.parse_args(argv)
    if ns.probe:
        from voe.agent import probe

        probe.serve(ns.probe)
        return
    if ns.log_format:
        LOG_JSON["on"] = ns.log_format == "json"
    if ns.network_backend is None:
        ns.network_backend = "powershell" if os.name == "nt" else "live" if ns.root in (None, "/") else "rendered"
    if ns.root is None:
        ns.root = r"C:\ProgramData\voe" if ns.network_backend == "powershell" else "/"
    sys.exit(dispatch(ns, argv if argv is not None else sys.argv[1:]))


def dispatch(ns: argparse.Namespace, argv: list[str]) -> int:
    """Install or remove the Windows service, or run: as that service, or
    in the foreground."""
    if ns.install_service:
        return _exit_code(lambda: windows.install_service(WINDOWS, sys.executable, os.path.abspath(sys.argv[0]),
                                                          [a for a in argv if a != "--install-service"]))
    if ns.uninstall_service:
        return _exit_code(lambda: windows.uninstall_service(WINDOWS))
    if ns.service:
        return windows.run_as_service(WINDOWS, lambda stop: _exit_code(lambda: run(ns, stop)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return _exit_code(lambda: run(ns, stop))


def _exit_code(call) -> int:
    """``call``'s exit code (0 when it returns none); bad parameters and
    failed Windows commands logged and counted as such."""
    try:
        return call() or 0
    except bootargs.BootArgsError as e:
        log(f"error: {e}", "error")
        return 2
    except windows.WindowsCommandFailed as e:
        log(f"error: {e}", "error")
        return 6


if __name__ == "__main__":
    main()
