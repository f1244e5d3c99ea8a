"""Capture ("condense"): a server's root becomes a template. What makes it
one particular machine is removed, so every clone starts as itself: SSH
host keys (regenerated at first boot), the machine id (empty, as systemd
expects for a fresh image), persistent NIC names tied to old MACs, DHCP
leases, the hostname. Returns what was cleaned, for the operator to read."""

from __future__ import annotations

import subprocess
from pathlib import Path

MACHINE_SPECIFIC = [
    "etc/ssh/ssh_host_*",
    "etc/udev/rules.d/70-persistent-net.rules",
    "var/lib/dbus/machine-id",
    "var/lib/dhcp/*.leases",
    "var/lib/dhclient/*.leases",
    "var/lib/NetworkManager/*.lease",
    "var/lib/systemd/network/*.lease",
    "var/lib/voe/*",
]
EMPTIED = ["etc/machine-id", "etc/hostname"]


def clean_root(root: Path) -> list[str]:
    cleaned = []
    for pattern in MACHINE_SPECIFIC:
        for f in sorted(root.glob(pattern)):
            if f.is_file() or f.is_symlink():
                f.unlink()
                cleaned.append("/" + str(f.relative_to(root)))
    for rel in EMPTIED:
        f = root / rel
        if f.is_file() and f.stat().st_size:
            f.write_text("")
            cleaned.append(f"/{rel} (emptied)")
    return cleaned


# what a running server has that is not its image
NOT_IMAGE = ["/proc/*", "/sys/*", "/dev/*", "/run/*", "/tmp/*", "/mnt/*", "/media/*", "/lost+found", "/swapfile"]


def rsync_command(host: str | None, path: str, dest: Path) -> list[str]:
    """rsync of a server's root (``host`` over SSH, or a local path), keeping
    owners, modes, hard links, ACLs and xattrs, without what the running
    system mounted or made."""
    source = f"{host}:{path.rstrip('/')}/" if host else f"{path.rstrip('/')}/"
    cmd = ["rsync", "-aHAX", "--numeric-ids", "--delete"]
    cmd += [f"--exclude={p}" for p in NOT_IMAGE]
    if host:
        cmd += ["-e", "ssh -o BatchMode=yes -o ConnectTimeout=10"]
    return [*cmd, source, f"{dest}/"]


def copy_server_root(host: str | None, path: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(rsync_command(host, path, dest), capture_output=True, text=True)
    if r.returncode != 0:
        where = f"{host}:{path}" if host else path
        raise RuntimeError(f"rsync from {where} failed: {r.stderr.strip() or r.returncode} "
                           "(the controller's user needs SSH key access to the server as root)")
