"""Capture of a disk-image persona cleans it as a tree is cleaned: SSH host
keys, leases and voe's state gone, machine-id and hostname emptied, the
rest untouched; on a partitioned raw image and on qcow2, read back with
e2fsprogs' own debugfs."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from voe.images.disk_clean import partitions
from voe.images.store import LocalImageStore

pytestmark = pytest.mark.skipif(shutil.which("debugfs") is None or shutil.which("qemu-img") is None,
                                reason="debugfs (e2fsprogs) and qemu-img (qemu-utils) are needed")

SIZE, OFFSET = 24 << 20, 1 << 20


def disk(tmp_path, qcow2: bool = False):
    tree = tmp_path / "tree"
    for rel, text in {"etc/ssh/ssh_host_ed25519_key": "secret", "etc/ssh/sshd_config": "Port 22\n",
                      "etc/machine-id": "0123456789abcdef\n", "etc/hostname": "oracle\n",
                      "var/lib/voe/credential": "token", "var/lib/dhcp/eth0.leases": "lease"}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(SIZE)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), "-E", f"offset={OFFSET}", str(raw),
                    f"{(SIZE - OFFSET) >> 10}k"], check=True, capture_output=True)
    mbr = bytearray(512)
    struct.pack_into("<4xB3xII", mbr, 446, 0x83, OFFSET // 512, (SIZE - OFFSET) // 512)  # one Linux partition
    mbr[510:512] = b"\x55\xaa"
    with open(raw, "r+b") as f:
        f.write(mbr)
    if not qcow2:
        return raw
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(tmp_path / "disk.qcow2")], check=True)
    return tmp_path / "disk.qcow2"


def listing(raw, directory: str) -> dict[str, int]:
    out = subprocess.run(["debugfs", "-R", f"ls -p {directory}", f"{raw}?offset={OFFSET}"], capture_output=True,
                         text=True, check=True).stdout
    return {p[4]: int(p[5] or 0) for p in (line.strip("/").split("/") for line in out.splitlines()) if len(p) > 5}


@pytest.mark.parametrize("qcow2", [False, True], ids=["raw", "qcow2"])
def test_a_captured_disk_image_forgets_the_machine_it_ran_on(tmp_path, qcow2):
    store = LocalImageStore(tmp_path / "images")
    template, cleaned = store.create_template("oracle-gold", disk(tmp_path, qcow2), clean=True)
    assert sorted(cleaned) == ["/etc/hostname (emptied)", "/etc/machine-id (emptied)",
                               "/etc/ssh/ssh_host_ed25519_key", "/var/lib/dhcp/eth0.leases",
                               "/var/lib/voe/credential"]
    payload = tmp_path / "images" / "templates" / "oracle-gold" / "v1" / ("disk.qcow2" if qcow2 else "disk.raw")
    raw = payload
    if qcow2:
        raw = tmp_path / "check.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(payload), str(raw)], check=True)
    assert partitions(raw) == [OFFSET]
    etc = listing(raw, "/etc")
    assert etc["machine-id"] == 0 and etc["hostname"] == 0
    ssh = listing(raw, "/etc/ssh")
    assert "ssh_host_ed25519_key" not in ssh and ssh["sshd_config"] == len("Port 22\n")  # the rest is untouched
    assert "credential" not in listing(raw, "/var/lib/voe")


def test_a_disk_without_ext_file_systems_says_it_was_not_cleaned(tmp_path):
    raw = tmp_path / "ntfs.raw"
    raw.write_bytes(bytes(SIZE))
    store = LocalImageStore(tmp_path / "images")
    _, cleaned = store.create_template("win", raw, clean=True)
    assert cleaned == ["partition 1 (at byte 0): not ext2/3/4, not cleaned"]
