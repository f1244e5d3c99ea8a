"""Which kernel and initrd a Linux root boots: the newest
``boot/vmlinuz-VERSION`` of the tree, and the initrd of that same version,
as Debian's kernel packages install them. Read inside the root only (the
root's own ``/vmlinuz`` symlink points at the root's ``/boot``, which on the
controller is somewhere else)."""

from __future__ import annotations

import re
from pathlib import Path

_VERSION = re.compile(r"(\d+|\D+)")


def _version_key(version: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _VERSION.findall(version)]


def kernel_version(root: Path) -> str | None:
    """The newest kernel version whose image is in ``root/boot``."""
    versions = [k.name.removeprefix("vmlinuz-") for k in (root / "boot").glob("vmlinuz-*") if k.is_file()]
    return max(versions, key=_version_key) if versions else None


def boot_file(root: str | Path, name: str) -> Path | None:
    """``root``'s kernel (``vmlinuz``) or initrd (``initrd.img``) of its
    newest kernel; None when the tree has none (or is not on this machine)."""
    version = kernel_version(Path(root))
    if version is None:
        return None
    path = Path(root) / "boot" / f"{name}-{version}"
    return path if path.is_file() else None
