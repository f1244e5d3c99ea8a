"""What the running system says about itself, read from the kernel: where
its root is mounted from, the initiator name the firmware's iBFT carries,
its iSCSI sessions with the disks each brings, each network interface with
its MAC, 802.1q VLAN and addresses, and the agent's own CPU niceness. The
agent logs it once configured (to the console too: serial over LAN shows
it), so what a persona runs as can be checked from inside."""

from __future__ import annotations

import os
from pathlib import Path

from voe.agent import netlink

ARPHRD_LOOPBACK = 772
IFF_UP = 1
IBFT_INITIATOR = Path("/sys/firmware/ibft/initiator/initiator-name")
ISCSI_SESSIONS = Path("/sys/class/iscsi_session")
DUMP_ATTEMPTS = 5  # a dump the kernel marks interrupted (a link or address changed meanwhile) is asked again


def root_mount(mounts: Path = Path("/proc/self/mounts")) -> dict[str, str] | None:
    """The mount at ``/`` (the last one: an initramfs's is beneath)."""
    found = None
    for line in mounts.read_text().splitlines():
        source, target, fstype, options, *_ = line.split()
        if target == "/":
            found = {"source": source, "type": fstype, "options": options}
    return found


def ibft_initiator(path: Path = IBFT_INITIATOR) -> str | None:
    return _text(path)


def _text(path: Path) -> str | None:
    """A sysfs attribute, None when absent or empty."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def iscsi_sessions(sysfs: Path = ISCSI_SESSIONS) -> list[dict]:
    """Each iSCSI session the kernel holds: its target, the initiator it
    logged in as, and its disks (``sda``...)."""
    return [{"target": _text(session / "targetname"), "initiator": _text(session / "initiatorname"),
             "disks": sorted(b.name for b in (session / "device").glob("target*/*/block/*"))}
            for session in sorted(sysfs.glob("session*"))]


def interfaces() -> list[dict]:
    """Every interface but loopback, asked of the kernel over rtnetlink
    (``voe.agent.netlink``), which runs no program."""
    for _ in range(DUMP_ATTEMPTS - 1):
        try:
            return _interfaces()
        except netlink.DumpInterrupted:
            continue
    return _interfaces()


def _interfaces() -> list[dict]:
    addresses: dict[int, list[str]] = {}
    for a in netlink.ipv4_addresses():
        addresses.setdefault(a["index"], []).append(a["cidr"])
    return [{"name": link["name"], "mac": link["mac"], "up": bool(link["flags"] & IFF_UP), "vlan": link["vlan"],
             "addresses": addresses.get(link["index"], [])}
            for link in netlink.links() if link["type"] != ARPHRD_LOOPBACK]


def report() -> dict:
    return {"root": root_mount(), "ibft_initiator": ibft_initiator(), "iscsi": iscsi_sessions(),
            "interfaces": interfaces(), "agent_nice": os.getpriority(os.PRIO_PROCESS, 0)}


def as_configured(wanted: list[dict], kernel: list[dict]) -> dict[str, str]:
    """Each configured interface as the kernel reports it, by its MAC:
    ``back: 10.0.2.11/24 on back (02:56:4f:00:00:02, VLAN 200)``; what the
    controller shows as the persona's addresses."""
    by_mac = {i["mac"]: i for i in kernel}
    out = {}
    for w in wanted:
        seen = by_mac.get(w["mac"])
        if seen is None:
            out[w["name"]] = f"missing: no interface has {w['mac']}"
            continue
        vlan = f", VLAN {seen['vlan']}" if seen["vlan"] is not None else ""
        out[w["name"]] = f"{', '.join(seen['addresses']) or 'no address'} on {seen['name']} ({seen['mac']}{vlan})"
    return out
