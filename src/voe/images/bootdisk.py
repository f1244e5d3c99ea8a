"""A bootable disk image made from a root tree, for a persona that boots
from a LUN (iPXE ``sanboot``): what a SAN-booted server's disk holds.

The layout is a PC disk's: an MBR with syslinux's boot code, a small FAT
partition (marked active) with syslinux, the kernel, the initramfs and
their command line, and an ext4 partition with the root, labelled so the
command line finds it whichever disk it is. Every step runs on the image
file itself (sfdisk, mkfs.fat and mtools at an offset, ``mke2fs -d``): no
loop device, no mount, so it builds wherever the tools exist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SECTOR = 512
MIB = 1 << 20
BOOT_MIB = 96
"""The FAT partition: room for a kernel and an initramfs, and their next versions."""
ROOT_LABEL = "voe-root"
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")
TOOLS = {"sfdisk": "fdisk", "mkfs.fat": "dosfstools", "mcopy": "mtools", "syslinux": "syslinux",
         "mke2fs": "e2fsprogs"}


class BootDiskError(RuntimeError):
    """The disk could not be built: which step failed and what it said."""


def root_size_mib(tree: Path) -> int:
    """Room for the tree and its inodes, with a third more for the running system's writes."""
    used = 0
    for path in tree.rglob("*"):  # each entry takes an inode and a block at least, a file its data besides
        used += 4096 + (path.lstat().st_size if path.is_file() and not path.is_symlink() else 0)
    return int(used * 4 / 3 / MIB) + 64


def build(tree: Path, kernel: Path, initrd: Path, cmdline: str, out: Path) -> Path:
    """``out``: a raw disk booting ``kernel`` and ``initrd`` with ``cmdline``
    (to which ``root=LABEL=voe-root`` is added) and ``tree`` as its root."""
    missing = [f"{tool} ({package})" for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if not MBR_CODE.exists():
        missing.append(f"{MBR_CODE} (syslinux-common)")
    if missing:
        raise BootDiskError(f"missing {', '.join(missing)}: scripts/setup.sh installs them")
    root_mib = root_size_mib(tree)
    boot_start = MIB // SECTOR
    root_start = boot_start + BOOT_MIB * MIB // SECTOR
    work = out.with_name(out.name + ".building")
    work.unlink(missing_ok=True)
    with open(work, "wb") as f:
        f.truncate(MIB + (BOOT_MIB + root_mib) * MIB)  # sparse: only what is written takes room
    _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(work)], "partitioning",
         stdin=f"label: dos\nstart={boot_start}, size={BOOT_MIB * MIB // SECTOR}, type=c, bootable\n"
               f"start={root_start}, type=83\n")
    with open(work, "r+b") as f:
        f.write(MBR_CODE.read_bytes()[:440])  # the boot code only: the partition table follows it
    boot = f"{work}@@{boot_start * SECTOR}"
    # the partition's own geometry, which mkfs.fat would otherwise take from the
    # whole file: one sector per cluster (enough clusters for FAT32), and the
    # sectors before the partition counted as hidden, as a BIOS loader expects
    _run(["mkfs.fat", "-F", "32", "-s", "1", "-h", str(boot_start), "-n", "VOEBOOT", "--offset", str(boot_start),
          str(work), str(BOOT_MIB * 1024)], "making the boot file system")
    config = work.with_name(work.name + ".cfg")
    config.write_text("DEFAULT persona\nPROMPT 0\nTIMEOUT 0\nSERIAL 0 115200\nLABEL persona\n"
                      f"  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND root=LABEL={ROOT_LABEL} {cmdline}\n")
    try:
        for source, name in ((kernel, "vmlinuz"), (initrd, "initrd.img"), (config, "syslinux.cfg")):
            _run(["mcopy", "-o", "-i", boot, str(source), f"::{name}"], f"copying {name}")
    finally:
        config.unlink()
    _run(["syslinux", "--install", "--offset", str(boot_start * SECTOR), str(work)], "installing syslinux")
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-d", str(tree), "-E",
          f"offset={root_start * SECTOR}", str(work), f"{root_mib}M"], "making the root file system")
    work.rename(out)
    return out


def _run(argv: list[str], what: str, stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MTOOLS_SKIP_CHECK": "1"})
    if proc.returncode != 0:
        raise BootDiskError(f"{what} failed ({argv[0]} exited {proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
