"""Capture ("condense"): a server's root becomes a template. What makes it
one particular machine is removed, so every clone starts as itself: SSH
host keys (regenerated at first boot), the machine id (empty, as systemd
expects for a fresh image), persistent NIC names tied to old MACs, DHCP
leases, the hostname. Returns what was cleaned, for the operator to read."""

from __future__ import annotations

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
