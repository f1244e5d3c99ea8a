"""The real persona system: a Debian root built from this machine's apt
sources, with what a network-booted server needs to come up (a kernel
with 802.1q, an initramfs that mounts an NFS root or logs in to an iSCSI
LUN) and what the agent needs (python3, iproute2), small, and without the
build's identity. Built once and cached (``voe.images.debian``); the
setup step builds it, so this test reads the cache."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from voe.images import debian

pytestmark = [
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap is not installed (scripts/setup.sh)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root needs root (CI is root)"),
]


@pytest.fixture(scope="module")
def base():
    return debian.ensure(log=lambda m: None)


def test_the_base_boots_a_network_root_and_runs_the_agent(base):
    root = base.root
    version = base.record["kernel"]
    modules = root / "usr" / "lib" / "modules" / version
    assert base.kernel.stat().st_size > 1 << 20 and base.initrd.stat().st_size > 1 << 20
    assert list(modules.rglob("8021q.ko*")), "the persona's VLAN interfaces need 8021q"
    for tool in ("usr/bin/python3", "usr/sbin/ip", "usr/sbin/iscsid", "usr/sbin/mount.nfs"):
        assert (root / tool).exists(), tool
    listing = subprocess.run(["chroot", str(root), "lsinitrd", f"/boot/initrd.img-{version}"],
                             capture_output=True, text=True, check=True).stdout
    for needed in ("fs/nfs/nfsv4.ko", "usr/sbin/mount.nfs", "usr/sbin/iscsid", "iscsi_tcp.ko", "iscsi_ibft.ko",
                   "virtio_net.ko", "dhclient"):
        assert needed in listing, f"the initramfs lacks {needed}"


def test_the_base_is_small_and_carries_no_identity(base):
    assert base.record["bytes"] < 400 << 20
    assert (base.root / "etc" / "machine-id").read_text() == ""
    assert not list(base.root.glob("etc/ssh/ssh_host_*"))
    assert not list((base.root / "var" / "cache" / "apt" / "archives").glob("*.deb"))


def test_a_second_ensure_reads_the_cache(base):
    built = base.record["built"]
    again = debian.ensure(log=lambda m: pytest.fail(f"built again: {m}"))
    assert again.directory == base.directory and again.record["built"] == built


def test_a_san_disk_boots_the_template_from_a_lun_and_asks_its_boot_service(base, tmp_path):
    """What iPXE's sanboot finds on a persona's LUN: an MBR with boot code,
    an active FAT partition whose syslinux starts the kernel with a root
    found by label, an iBFT login and the boot service's URL, and an ext4
    root holding the agent."""
    from voe.images import bootdisk, disk_clean

    disk = debian.san_disk(base, "http://10.77.0.1:8480")
    head = disk.read_bytes()[:512]
    assert head[:440] == bootdisk.MBR_CODE.read_bytes()[:440] and head[510:] == b"\x55\xaa"
    assert head[446] == 0x80, "the boot partition is not the active one"
    boot, root = disk_clean.partitions(disk)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    listing = subprocess.run(["mdir", "-a", "-b", "-i", f"{disk}@@{boot}", "::"], capture_output=True, text=True,
                             check=True, env=env).stdout
    for name in ("ldlinux.sys", "vmlinuz", "initrd.img", "syslinux.cfg"):
        assert f"::/{name}" in listing, listing
    config = subprocess.run(["mtype", "-i", f"{disk}@@{boot}", "::syslinux.cfg"], capture_output=True, text=True,
                            check=True, env=env).stdout
    for word in ("root=LABEL=voe-root", "rd.iscsi.firmware=1", "voe.boot_url=http://10.77.0.1:8480"):
        assert word in config, config
    assert disk_clean.is_ext(disk, root)
    agent = subprocess.run(["debugfs", "-R", "stat /usr/bin/voe-agent", f"{disk}?offset={root}"],
                           capture_output=True, text=True, check=True).stdout
    assert "Type: regular" in agent, agent

    made = disk.stat().st_ino  # a disk built again is a new file, renamed into place
    assert debian.san_disk(base, "http://10.77.0.1:8480").stat().st_ino == made, "built again for nothing"
    other = debian.san_disk(base, "http://10.77.0.2:8480")
    assert "voe.boot_url=http://10.77.0.2:8480" in subprocess.run(
        ["mtype", "-i", f"{other}@@{boot}", "::syslinux.cfg"], capture_output=True, text=True, check=True, env=env).stdout
