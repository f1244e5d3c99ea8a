"""The local image store: templates stay untouched, clones get their own
identity, capture removes what made a server one machine."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from voe.errors import Conflict, NotFound
from voe.images.store import LocalImageStore


def make_root(d: Path) -> Path:
    for rel, text in {"etc/hostname": "apache-template\n", "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
                      "etc/ssh/ssh_host_ed25519_key": "PRIVATE\n", "etc/udev/rules.d/70-persistent-net.rules": "x\n",
                      "var/lib/dhcp/dhclient.eth0.leases": "lease {}\n", "usr/sbin/httpd": "#!/bin/sh\n"}.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    (d / "bin").mkdir()
    (d / "bin" / "sh").symlink_to("busybox")
    return d


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes() if f.is_file() and not f.is_symlink() else str(f.readlink() if f.is_symlink() else "").encode())
    return h.hexdigest()


@pytest.fixture
def store(tmp_path):
    return LocalImageStore(tmp_path / "images")


def test_a_clone_has_its_own_identity_and_the_template_is_unchanged(store, tmp_path):
    t, _ = store.create_template("apache", make_root(tmp_path / "src"), "Apache web server")
    template_root = store.root / "templates" / "apache" / "v1" / "root"
    before = digest(template_root)
    a = store.clone("apache", "web-1", ssh_keys=["ssh-ed25519 AAAA ops@voe"])
    b = store.clone("apache", "web-2")
    assert digest(template_root) == before
    ra, rb = Path(a.path), Path(b.path)
    assert (ra / "etc/hostname").read_text() == "web-1\n" and (rb / "etc/hostname").read_text() == "web-2\n"
    assert (ra / "etc/machine-id").read_text() != (rb / "etc/machine-id").read_text()
    assert (ra / "root/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAA ops@voe\n"
    assert (ra / "bin/sh").readlink() == Path("busybox")
    assert (a.template, a.version, a.method) == ("apache", 1, "copy")  # ext4/tmpfs here: no reflinks, said so
    assert a.bytes_written == sum(f.stat().st_size for f in template_root.rglob("*") if f.is_file() and not f.is_symlink())
    assert "/etc/hostname" in a.customized and store.persona_image("web-1") == a


def test_templates_are_versioned_and_a_persona_records_its_version(store, tmp_path):
    store.create_template("apache", make_root(tmp_path / "v1"))
    src2 = make_root(tmp_path / "v2")
    (src2 / "usr/sbin/httpd").write_text("#!/bin/sh\necho 2.4\n")
    v2, _ = store.create_template("apache", src2)
    assert v2.version == 2 and [v.version for v in store.versions("apache")] == [1, 2]
    assert store.clone("apache", "old", version=1).version == 1
    assert store.clone("apache", "new").version == 2
    with pytest.raises(Conflict, match="base of new, old"):
        store.delete_template("apache")
    with pytest.raises(NotFound):
        store.clone("nosuch", "x")


def test_capture_lists_and_removes_what_is_machine_specific(store, tmp_path):
    store.create_template("apache", make_root(tmp_path / "src"))
    image = store.clone("apache", "web-1")
    (Path(image.path) / "etc/ssh/ssh_host_rsa_key").write_text("KEY\n")
    t, cleaned = store.capture("web-1", "apache-custom")
    assert set(cleaned) >= {"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key",
                            "/etc/udev/rules.d/70-persistent-net.rules", "/var/lib/dhcp/dhclient.eth0.leases",
                            "/etc/machine-id (emptied)", "/etc/hostname (emptied)"}
    root = store.root / "templates" / "apache-custom" / "v1" / "root"
    assert not list(root.glob("etc/ssh/ssh_host_*")) and (root / "etc/machine-id").read_text() == ""
    assert (root / "usr/sbin/httpd").exists() and t.description == "captured from web-1"
    assert (Path(image.path) / "etc/ssh/ssh_host_rsa_key").exists()  # the persona's own image is left alone


def test_a_bad_template_name_is_refused_with_the_rule(store, tmp_path):
    with pytest.raises(Conflict, match="lower-case letters"):
        store.create_template("Apache_2", make_root(tmp_path / "src"))


def test_a_raw_disk_clone_copies_its_data_and_keeps_its_holes(store, tmp_path):
    """A disk image is mostly blocks never written: its clone takes the room
    of its data, not of its size, wherever reflinks are missing."""
    disk = tmp_path / "oracle.img"
    with open(disk, "wb") as f:
        f.truncate(256 << 20)
        for at in (0, 100 << 20, (256 << 20) - 4096):
            f.seek(at)
            f.write(bytes([at % 251 + 1]) * 4096)
    store.create_template("oracle", disk, boot="iscsi")
    image = store.clone("oracle", "oracle-2")
    clone = Path(image.path)
    assert clone.read_bytes() == disk.read_bytes()
    assert image.method in ("reflink", "copy")
    if image.method == "copy":
        assert image.bytes_written < 1 << 20, image
        assert clone.stat().st_blocks * 512 < 4 << 20, "the clone's holes were written out"


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed (Debian package qemu-utils)")
def test_a_qcow2_clone_is_an_overlay_that_writes_almost_nothing(store, tmp_path):
    base = tmp_path / "oracle.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0xab 0 8M", str(base)], check=True, capture_output=True)
    store.create_template("oracle", base, boot="iscsi")
    image = store.clone("oracle", "oracle-2")
    assert image.method == "qcow2-backing" and image.bytes_written < 1 << 20
    info = subprocess.run(["qemu-img", "info", "--output=json", image.path], capture_output=True, text=True, check=True)
    assert '"backing-filename"' in info.stdout and "templates/oracle/v1/disk.qcow2" in info.stdout


def test_a_servers_root_is_copied_without_what_the_running_system_made(tmp_path):
    """`voe template create --from-host` copies with rsync (over SSH for a
    host); here rsync copies a local root, as it would a remote one."""
    from voe.images.capture import copy_server_root, rsync_command

    server = make_root(tmp_path / "server")
    for rel in ("proc/1/status", "tmp/x", "run/lock", "dev/null"):
        (server / rel).parent.mkdir(parents=True, exist_ok=True)
        (server / rel).write_text("")
    copy_server_root(None, str(server), tmp_path / "copy")
    assert (tmp_path / "copy/usr/sbin/httpd").exists() and (tmp_path / "copy/proc").is_dir()
    assert not any(any((tmp_path / "copy" / d).iterdir()) for d in ("proc", "tmp", "run", "dev"))
    cmd = rsync_command("web-7.example", "/", tmp_path / "dest")
    assert cmd[-2:] == ["web-7.example:/", f"{tmp_path / 'dest'}/"] and "ssh -o BatchMode=yes -o ConnectTimeout=10" in cmd
