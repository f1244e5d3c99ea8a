"""Storage drivers against the real userspace services, tgt (iSCSI) and
nfs-ganesha (NFS), each started privately on loopback, and checked with
real clients: libiscsi's iscsi-ls / iscsi-perf and libnfs's nfs-cat (the
kernel here has neither nfsd nor an iSCSI initiator, so the clients are the
userspace ones)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import free_port, stop_process
from voe.domain.storage import Access
from voe.drivers.storage.ganesha import GaneshaSettings, GaneshaStorage, render_export
from voe.drivers.storage.tgt import TgtSettings, TgtStorage, parse_show
from voe.errors import DriverError

pytestmark = pytest.mark.root
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="tgtd and ganesha.nfsd need root")


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")


def wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while f":{port} " not in subprocess.run(["ss", "-lnt"], capture_output=True, text=True).stdout:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{proc.args[0]} did not listen on {port}: {log.read_text()[-2000:]}")
        time.sleep(0.1)


# --- iSCSI through tgt ----------------------------------------------------------

@pytest.fixture
def tgt(tmp_path):
    need("tgtd", "tgtadm", "iscsi-ls")
    control, portal = free_port() % 30000 + 1000, free_port()
    log = tmp_path / "tgtd.log"
    proc = subprocess.Popen(["tgtd", "-f", "-C", str(control), "--iscsi", f"portal=127.0.0.1:{portal}"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_listening(portal, proc, log)
    lun = tmp_path / "oracle.img"
    lun.write_bytes(b"\0" * (8 << 20))
    yield TgtStorage("dl380", TgtSettings(control_port=control, timeout=5)), portal, lun
    stop_process(proc, grace=3)  # tgtd ignores SIGTERM while it has targets


def iscsi_ls(portal: int, initiator: str) -> str:
    return subprocess.run(["iscsi-ls", "-s", "-i", initiator, f"iscsi://127.0.0.1:{portal}"],
                          capture_output=True, text=True, timeout=20).stdout


ORACLE = "iqn.2026-11.io.voe:oracle"
TARGET = "iqn.2026-11.io.voe:dl380.oracle"


@ROOT_ONLY
def test_tgt_grant_lets_only_the_incarnation_log_in_and_revoke_cuts_its_session(tgt):
    driver, portal, lun = tgt
    access = Access("oracle", "iscsi", str(lun), ORACLE, TARGET, lun=1)
    driver.grant(access)
    assert driver.targets()[TARGET].acl == {ORACLE} and driver.targets()[TARGET].luns[1] == str(lun)
    assert "Lun:1" in iscsi_ls(portal, ORACLE)  # a real initiator logs in and sees the disk
    assert TARGET not in iscsi_ls(portal, "iqn.2026-11.io.voe:web-1")  # another persona sees nothing
    driver.grant(access)  # idempotent
    assert [(g.initiator, g.target, g.lun) for g in driver.grants()] == [(ORACLE, TARGET, 1)]

    # a live session, writing: revoking must end it, not only stop new logins
    perf = subprocess.Popen(["iscsi-perf", "-i", ORACLE, f"iscsi://127.0.0.1:{portal}/{TARGET}/1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not driver.targets()[TARGET].nexus and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ORACLE in driver.targets()[TARGET].nexus.values()
    driver.revoke(access)
    seen = driver.targets()[TARGET]
    assert ORACLE not in seen.acl and ORACLE not in seen.nexus.values()  # read back from tgtd itself
    assert "Lun:1" not in iscsi_ls(portal, ORACLE)
    perf.kill()
    perf.wait()


@ROOT_ONLY
def test_tgt_moves_the_acl_to_the_new_incarnation(tgt):
    driver, _, lun = tgt
    driver.grant(Access("oracle", "iscsi", str(lun), ORACLE, TARGET))
    driver.grant(Access("oracle", "iscsi", str(lun), "iqn.2026-11.io.voe:oracle.g2", TARGET))
    assert driver.targets()[TARGET].acl == {"iqn.2026-11.io.voe:oracle.g2"}


def test_tgt_errors_name_the_device_and_the_operation(tmp_path):
    need("tgtadm")
    driver = TgtStorage("dl380", TgtSettings(control_port=free_port() % 30000 + 1000, timeout=3, retries=0))
    with pytest.raises(DriverError) as e:
        driver.targets()
    assert e.value.device == "dl380" and e.value.operation == "show targets"


def test_tgt_show_is_parsed_with_sessions_and_connections():
    text = """Target 1: iqn.2026-11.io.voe:dl380.oracle
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 4
            Initiator: iqn.2026-11.io.voe:oracle alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
        LUN: 1
            Type: disk
            Backing store path: /srv/luns/oracle.img
    Account information:
    ACL information:
        iqn.2026-11.io.voe:oracle
"""
    t = parse_show(text)["iqn.2026-11.io.voe:dl380.oracle"]
    assert (t.tid, t.luns, t.acl, t.nexus, t.connections) == (
        1, {1: "/srv/luns/oracle.img"}, {"iqn.2026-11.io.voe:oracle"}, {4: "iqn.2026-11.io.voe:oracle"}, {4: [0]})


# --- NFS through nfs-ganesha ------------------------------------------------------

BUS_POLICY = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="root"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
"""


@pytest.fixture
def ganesha(tmp_path):
    need("ganesha.nfsd", "dbus-daemon", "nfs-cat")
    sock = tmp_path / "bus.sock"
    (tmp_path / "bus.conf").write_text(BUS_POLICY.format(sock=sock))
    bus = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={tmp_path / 'bus.conf'}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not sock.exists():
        time.sleep(0.05)
    port = free_port()
    exports = tmp_path / "exports"
    exports.mkdir()
    conf = tmp_path / "ganesha.conf"
    conf.write_text(f"""NFS_CORE_PARAM {{ NFS_Port = {port}; Protocols = 4; Bind_addr = 127.0.0.1;
    Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ RecoveryBackend = fs; Graceless = true; Lease_Lifetime = 10; }}
NFS_KRB5 {{ Active_krb5 = false; }}
%dir "{exports}"
""")
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={sock}"}
    log = tmp_path / "ganesha.log"
    proc = subprocess.Popen(["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log), "-p", str(tmp_path / "pid")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_listening(port, proc, log)
    root = tmp_path / "roots" / "bea-1"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("bea-1\n")
    driver = GaneshaStorage("dl380", GaneshaSettings(export_dir=exports, dbus_address=f"unix:path={sock}", timeout=5))
    yield driver, port, root
    driver.close()
    stop_process(proc, grace=3)
    stop_process(bus, grace=3)


def nfs_cat(port: int, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nfs-cat", f"nfs://127.0.0.1{path}?version=4&nfsport={port}"],
                          capture_output=True, text=True, timeout=20)


@ROOT_ONLY
def test_ganesha_exports_a_root_to_its_incarnation_and_revoking_removes_it(ganesha):
    driver, port, root = ganesha
    access = Access("bea-1", "nfs", str(root), "127.0.0.1")
    driver.grant(access)
    assert nfs_cat(port, f"{root}/etc/hostname").stdout == "bea-1\n"  # a real NFS client reads it
    assert [(g.persona, g.path, g.initiator) for g in driver.grants()] == [("bea-1", str(root), "127.0.0.1")]
    driver.revoke(access)
    assert driver.grants() == []  # ganesha itself no longer lists it
    assert nfs_cat(port, f"{root}/etc/hostname").returncode != 0


@ROOT_ONLY
def test_ganesha_moves_an_export_to_the_new_incarnation_only(ganesha):
    driver, port, root = ganesha
    driver.grant(Access("bea-1", "nfs", str(root), "127.0.0.1"))
    driver.grant(Access("bea-1", "nfs", str(root), "127.0.0.2"))  # the persona moved
    assert [g.initiator for g in driver.grants()] == ["127.0.0.2"]
    assert nfs_cat(port, f"{root}/etc/hostname").returncode != 0  # the old address is refused


def test_export_file_refuses_what_ganesha_could_not_parse():
    with pytest.raises(ValueError, match="client"):
        render_export(100, Access("x", "nfs", "/srv/x", "10.0.0.1; }"))
    assert "Clients = 10.0.3.21;" in render_export(100, Access("x", "nfs", "/srv/x", "10.0.3.21"))


@ROOT_ONLY
def test_a_cloned_persona_root_is_served_by_ganesha_to_that_persona_only(ganesha, tmp_path):
    """The image store's clone, exported by nfs-ganesha, read by a real NFS
    client: the persona sees its own hostname, and not another's root."""
    from voe.images.store import LocalImageStore

    driver, port, template = ganesha
    store = LocalImageStore(tmp_path / "images")
    store.create_template("weblogic", template)
    one, two = store.clone("weblogic", "bea-1"), store.clone("weblogic", "bea-2")
    driver.grant(Access("bea-1", "nfs", one.path, "127.0.0.1"))
    driver.grant(Access("bea-2", "nfs", two.path, "127.0.0.2"))
    assert nfs_cat(port, f"{one.path}/etc/hostname").stdout == "bea-1\n"
    assert nfs_cat(port, f"{two.path}/etc/hostname").returncode != 0  # 127.0.0.1 is not bea-2


@ROOT_ONLY
def test_ganesha_takes_grants_at_once_each_its_own_export(ganesha, tmp_path):
    """A group's starts grant together: each export gets an id of its own."""
    from concurrent.futures import ThreadPoolExecutor

    driver, port, _ = ganesha
    roots = [tmp_path / "roots" / f"web-{i}" for i in range(4)]
    for r in roots:
        r.mkdir(parents=True)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: driver.grant(Access(f"web-{i}", "nfs", str(roots[i]), f"127.0.0.{i + 1}")), range(4)))
    assert sorted((g.persona, g.initiator) for g in driver.grants()) == [(f"web-{i}", f"127.0.0.{i + 1}")
                                                                          for i in range(4)]
