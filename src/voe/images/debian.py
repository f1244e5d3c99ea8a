"""Real persona systems: a small Debian (bookworm) root built from this
machine's own apt sources with mmdebstrap — the kernel and its modules
(``linux-image-amd64``), an initramfs that brings the network up and
mounts an NFS root or logs in to an iSCSI LUN (dracut with its ``nfs``
and ``iscsi`` modules), systemd, iproute2 and python3 — that a KVM
machine boots for real, as a server would. The voe agent is not part of
the base: a template built from it gets the checkout's agent
(``voe.agent.install``).

The base is built once and kept outside the checkout (``cache_dir()``:
``VOE_IMAGE_CACHE``, else ``/var/cache/voe/images``) under a key of what
goes into it, so that ``./demo``, ``./test`` and CI build it only when
that changes. Hardware a virtual machine never has (sound, graphics,
wireless, media, InfiniBand...) is left out of the modules, which halves
the tree.

    python -m voe.images.debian [--force]     # prints the base's directory
    python -m voe.images.debian --with-agent  # prints a template's tree: the base and the agent
    python -m voe.images.debian --san-disk --boot-url http://10.77.0.1:8480
                                              # prints a template's disk image, for SAN boot
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from voe.images import bootdisk

SUITE = "bookworm"
PACKAGES = (
    "linux-image-amd64", "dracut", "dracut-network", "nfs-common", "open-iscsi", "isc-dhcp-client",
    "systemd-sysv", "udev", "dbus", "kmod", "iproute2", "python3", "procps",
    "gawk",  # dracut reads the iBFT's flags with awk's and(), which mawk lacks
)
UNNEEDED_MODULES = (  # under lib/modules/VERSION/kernel: nothing a KVM guest has
    "sound", "drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/staging", "drivers/infiniband",
    "drivers/bluetooth", "drivers/iio", "drivers/hid", "drivers/usb", "drivers/input/joystick",
    "drivers/input/touchscreen", "drivers/isdn", "drivers/net/can", "drivers/nfc", "net/wireless",
    "net/mac80211", "net/bluetooth", "drivers/mmc", "drivers/mtd", "drivers/platform/x86", "drivers/net/usb",
    "drivers/scsi/qla2xxx", "drivers/scsi/lpfc", "drivers/scsi/qla4xxx", "drivers/scsi/cxgbi", "drivers/scsi/bnx2i",
    "drivers/thunderbolt", "drivers/fpga", "drivers/edac", "drivers/comedi", "drivers/scsi/mpt3sas",
    "drivers/scsi/megaraid", "drivers/scsi/aacraid", "drivers/scsi/bfa", "drivers/scsi/be2iscsi",
    "drivers/scsi/bnx2fc", "drivers/scsi/csiostor", "drivers/scsi/fnic", "drivers/scsi/qedf", "drivers/scsi/qedi",
    "drivers/scsi/smartpqi", "drivers/scsi/mpi3mr", "drivers/scsi/pm8001", "drivers/scsi/ufs", "drivers/crypto/qat",
    "fs/btrfs", "fs/xfs", "fs/ocfs2", "fs/gfs2", "fs/f2fs", "fs/ceph", "fs/nilfs2", "fs/jfs", "fs/reiserfs",
    "fs/ubifs", "fs/orangefs", "fs/smb", "fs/cifs", "fs/bcachefs", "fs/erofs", "fs/ntfs3", "fs/dlm",
    "drivers/block/floppy.ko",  # the PC machine's controller, which the initramfs's udev would probe for seconds
)
ETHERNET_KEPT = ("intel/e1000", "intel/e1000e", "intel/igb", "realtek")
"""The drivers under drivers/net/ethernet of the NICs that hypervisors
emulate (virtio-net and vmxnet3 live elsewhere); the others are left
out."""
MODULES_NOT_LOADED = ("pcspkr", "kvm", "kvm_amd", "kvm_intel", "i2c_piix4", "serio_raw", "joydev",
                      "powernow_k8")
"""Devices (and a CPU's frequency scaling) a virtual machine shows whose
drivers a persona never uses: udev would load each at every boot."""
UNITS_MASKED = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer", "e2scrub_reap.service",
    "fstrim.timer", "rpcbind.service", "rpcbind.socket", "rpc-statd.service", "rpc-statd-notify.service",
    "systemd-logind.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "systemd-pstore.service",
    "systemd-update-utmp.service", "systemd-update-utmp-runlevel.service",
)
"""Units a persona does not run: the upkeep of a system image it does not
own (its template's builder does that), the portmapper and lock recovery
of NFS versions before 4 (its root is NFSv4), and logins' bookkeeping.
Each would compete with the agent for the one CPU a persona boots on."""
UNPACKED_NOT = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
"""Left out of every package as it is unpacked: nobody reads them in a persona."""
INITRD_MODULES = "nfs iscsi network-legacy"
INITRD_FILESYSTEMS = "ext4 nfs nfsv4"
"""The roots a persona has: its SAN disk's ext4, or NFS."""
INITRD_OMITTED = ("systemd systemd-initrd systemd-networkd systemd-network-management dbus-broker dbus-daemon dbus i18n "
                  "crypt dm nvdimm overlay-root resume virtiofs lunmask")
"""The initramfs is dracut's shell one, with dhclient (``network-legacy``):
its systemd-networkd flavour brings the link up but never runs the NFS
root's mount hook, and the shell one also starts in a fraction of the
time, which counts on a machine without hardware virtualization. A
persona's root is neither encrypted, nor on LVM, persistent memory,
virtiofs or an overlay, nor resumed from hibernation."""
GUEST_SETTINGS = {
    "etc/sysctl.d/90-voe.conf": "# an NMI from the machine's BMC (IPMI diag interrupt) panics the OS, as on servers\n"
                                "kernel.unknown_nmi_panic = 1\nkernel.panic = 0\n",
    "etc/modprobe.d/voe-persona.conf": "".join(f"blacklist {m}\n" for m in MODULES_NOT_LOADED),
    # the journal stays in memory: a root on NFS is no place for it, and an
    # incarnation that ends without a clean shutdown would leave it corrupt
    "etc/systemd/journald.conf.d/voe-persona.conf": "[Journal]\nStorage=volatile\n",
}
"""Files of the base beyond its packages, written before its initramfs
is made (which carries the module blacklist too)."""
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


class BuildError(RuntimeError):
    """The base system could not be built: what failed, with its output's end."""


@dataclass(frozen=True)
class DebianBase:
    """A built base: ``root`` (the tree), ``kernel`` and ``initrd`` (its
    boot files, also under ``root/boot``)."""

    directory: Path

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def record(self) -> dict:
        return json.loads((self.directory / "built.json").read_text())


def with_agent(base: DebianBase) -> Path:
    """The base with this checkout's agent installed: a tree to make a
    persona template of (``voe template create NAME --from TREE``). Kept
    beside the base and made again when the agent changes."""
    from voe.agent.install import AGENT_PACKAGE, install_into

    tree = base.directory.with_name(f"template-{base.directory.name}")
    stamp = base.directory / "with-agent.stamp"  # outside the tree: not part of any persona
    agent = str(max(f.stat().st_mtime_ns for f in AGENT_PACKAGE.rglob("*") if f.is_file()))
    with _building_beside(base):
        if not tree.is_dir() or not stamp.exists() or stamp.read_text() != agent:
            shutil.rmtree(tree, ignore_errors=True)
            _run(["cp", "-a", "--reflink=auto", str(base.root), str(tree)], "copying the base")
            install_into(tree)
            stamp.write_text(agent)
    return tree


@contextmanager
def _building_beside(base: DebianBase) -> Iterator[None]:
    """One builder at a time of what is kept beside the base: test runs
    and labs side by side share the cache."""
    with open(base.directory.with_name(f"{base.directory.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


SAN_COMMAND_LINE = "rw rd.iscsi.firmware=1 rd.iscsi.ibft=1 console=tty0 console=ttyS0,115200n8"
"""A SAN-booted kernel's: its initramfs brings up the NIC and logs in to
the LUN that the firmware's iBFT names, as the initiator the firmware
presented (the one the target's ACL allows)."""


def san_disk(base: DebianBase, boot_url: str) -> Path:
    """The base with the agent as a disk image to make a SAN-boot template
    of (``voe template create NAME --from DISK``), whose agent reads its
    parameters from the boot service at ``boot_url`` (``voe.boot_url`` on
    its command line): an OS on its own disk gets no command line from voe.
    Kept beside the base, one per agent and URL (named by them, so that a
    disk never changes under a reader); those unused for a day go."""
    tree = with_agent(base)
    recipe = f"{(base.directory / 'with-agent.stamp').read_text()} {boot_url}\n"
    disk = base.directory.with_name(f"disk-{base.directory.name}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.img")
    with _building_beside(base):
        if not disk.exists():
            building = disk.with_name(disk.name + ".part")
            bootdisk.build(tree, base.kernel, base.initrd, f"{SAN_COMMAND_LINE} voe.boot_url={boot_url}", building)
            building.rename(disk)
        os.utime(disk)
        for old in disk.parent.glob(f"disk-{base.directory.name}*"):
            if old != disk and old.stat().st_mtime < time.time() - DISK_KEPT:
                old.unlink()
    return disk


DISK_KEPT = 24 * 3600  # seconds an unused SAN disk stays in the cache


def cache_dir() -> Path:
    return Path(os.environ.get("VOE_IMAGE_CACHE") or "/var/cache/voe/images")


def apt_sources() -> Path:
    """The machine's own Debian sources, which the base is built from."""
    for path in APT_SOURCES:
        if path.is_file() and path.stat().st_size:
            return path
    raise BuildError(f"none of {', '.join(map(str, APT_SOURCES))} lists this machine's Debian sources")


def key() -> str:
    """What the base is made of: the suite, the packages, the build's own
    steps (which name the modules left out, the settings and the
    initramfs's contents) and the sources."""
    made_of = json.dumps([SUITE, PACKAGES, UNPACKED_NOT, _CUSTOMIZE, apt_sources().read_text()])
    return hashlib.sha256(made_of.encode()).hexdigest()[:16]


def ensure(force: bool = False, log=print) -> DebianBase:
    """The base, built first if the cache lacks this key's (or ``force``)."""
    base = DebianBase(cache_dir() / f"debian-{SUITE}-{key()}")
    if (base.directory / "built.json").exists() and not force:
        return base
    if shutil.which("mmdebstrap") is None:
        raise BuildError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    work = base.directory.with_name(base.directory.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"building the Debian {SUITE} base in {base.directory} (once: it is cached)")
    began = time.monotonic()
    _run(["mmdebstrap", "--variant=minbase", "--mode=root", f"--include={','.join(PACKAGES)}",
          '--aptopt=Acquire::Check-Valid-Until "false"', "--aptopt=APT::Install-Recommends \"false\"",
          *(f"--dpkgopt=path-exclude={path}" for path in UNPACKED_NOT),
          "--customize-hook=" + _CUSTOMIZE, SUITE, str(work / "root"), str(apt_sources())], "mmdebstrap")
    kernels = sorted((work / "root" / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BuildError("the base has no kernel under /boot: linux-image-amd64 did not install")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(work / "root" / "boot" / f"initrd.img-{version}", work / "initrd.img")
    record = {"suite": SUITE, "kernel": version, "packages": list(PACKAGES), "seconds": round(time.monotonic() - began),
              "bytes": _size(work / "root"), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (work / "built.json").write_text(json.dumps(record, indent=1) + "\n")
    shutil.rmtree(base.directory, ignore_errors=True)
    work.rename(base.directory)
    log(f"built in {record['seconds']} s: kernel {version}, {record['bytes'] >> 20} MiB")
    return base


_CUSTOMIZE = " && ".join([
    # the modules a virtual machine never needs, then the module index and an
    # initramfs that carries what a network boot needs, whatever the host it
    # is built on (--no-hostonly)
    "cd \"$1\"/usr/lib/modules/* && rm -rf " + " ".join(f"kernel/{m}" for m in UNNEEDED_MODULES),
    "find kernel/drivers/net/ethernet -name '*.ko' " + " ".join(f"! -path '*/{d}/*'" for d in ETHERNET_KEPT)
    + " -delete",
    "kver=$(basename \"$1\"/usr/lib/modules/*)",
    # the shell initramfs has no iscsid running for its iBFT login:
    # iscsiadm starts one by this setting; the booted system's own comes
    # from its socket unit
    "sed -i 's|^iscsid.startup = .*|iscsid.startup = /usr/sbin/iscsid|' \"$1\"/etc/iscsi/iscsid.conf",
    "chroot \"$1\" depmod -a \"$kver\"",
    f"chroot \"$1\" systemctl mask --quiet {' '.join(UNITS_MASKED)}",
    *(f"mkdir -p \"$1\"/{shlex.quote(str(Path(path).parent))} && printf %s {shlex.quote(text)} > \"$1\"/{path}"
      for path, text in GUEST_SETTINGS.items()),
    f"chroot \"$1\" dracut --force --no-hostonly --add '{INITRD_MODULES}' --omit '{INITRD_OMITTED}' "
    f"--filesystems '{INITRD_FILESYSTEMS}' /boot/initrd.img-\"$kver\" \"$kver\"",
    # Debian's sitecustomize looks for apport's hook, which a persona lacks,
    # at the start of every Python program: the agent's among them
    "rm -f \"$1\"/etc/python3*/sitecustomize.py \"$1\"/usr/lib/python3*/sitecustomize.py",
    # a persona's identity is its own: none from the build
    ": > \"$1\"/etc/machine-id",
    "rm -f \"$1\"/var/lib/dbus/machine-id \"$1\"/etc/ssh/ssh_host_*",
    "rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*",
])


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-3000:]}")


def _size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m voe.images.debian", description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="build again even if the cache holds it")
    ap.add_argument("--with-agent", action="store_true", help="print the tree with this checkout's agent installed "
                                                              "(a template's source) instead of the base's directory")
    ap.add_argument("--san-disk", action="store_true", help="print a bootable disk image with the agent installed "
                                                            "(a SAN-boot template's source) instead")
    ap.add_argument("--boot-url", help="with --san-disk: the controller's boot URL, where its agent reads its "
                                       "parameters (http://CONTROLLER:8480)")
    ns = ap.parse_args(argv)
    if ns.san_disk and not ns.boot_url:
        ap.error("--san-disk needs --boot-url: the agent on a SAN-booted disk asks the boot service who it is")
    try:
        base = ensure(ns.force, log=lambda m: print(m, file=sys.stderr))
        if ns.san_disk:
            print(san_disk(base, ns.boot_url))
        else:
            print(with_agent(base) if ns.with_agent else base.directory)
    except (BuildError, bootdisk.BootDiskError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
