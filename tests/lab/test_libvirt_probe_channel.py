"""The lab reaches a libvirt VM's network probe through the channel that
libvirt's status of the running domain names, once the guest has opened
its end; a guest that never does reads as a probe that is not running,
not as one that does not answer."""

from __future__ import annotations

import json
import os
import socket
import threading
from types import SimpleNamespace

import pytest

from voe.lab import libvirt_host
from voe.lab.kvm import KvmError
from voe.lab.libvirt_host import LibvirtVm, host_path, probe_channel

SOCKET = "/var/lib/libvirt/qemu/channel/target/domain-2-web/io.voe.probe"


def status(state: str | None) -> str:
    """libvirtd's status file of a running domain, cut to its devices."""
    said = "" if state is None else f" state='{state}'"
    return f"""<domstatus state='running' reason='booted' pid='22817'><domain type='kvm'><devices>
      <channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-2-web/org.x.y'/>
        <target type='virtio' name='org.x.y' state='connected'/></channel>
      <channel type='unix'><source mode='bind' path='{SOCKET}'/>
        <target type='virtio' name='io.voe.probe'{said}/><alias name='channel0'/></channel>
    </devices></domain></domstatus>"""


def test_the_probe_channel_and_whether_the_guest_opened_it_come_from_libvirts_status():
    assert probe_channel(status("connected")) == (SOCKET, True)
    assert probe_channel(status("disconnected")) == (SOCKET, False)
    assert probe_channel(status(None)) == (SOCKET, True)  # a QEMU without VSERPORT_CHANGE events
    assert probe_channel("<domstatus><domain><devices/></domain></domstatus>") is None


def test_a_path_in_libvirtds_namespace_is_found_in_the_hosts_state_directory(tmp_path):
    assert host_path(tmp_path, SOCKET) == tmp_path / "lib" / "qemu" / "channel" / "target" / "domain-2-web" / "io.voe.probe"
    assert host_path(tmp_path, "/var/log/libvirt/qemu/web-console.log") == tmp_path / "log" / "qemu" / "web-console.log"


def running_domain(root, state: str) -> LibvirtVm:
    (root / "run" / "qemu").mkdir(parents=True)
    (root / "run" / "qemu" / "web.xml").write_text(status(state))
    return LibvirtVm("web", SimpleNamespace(root=root))


def test_a_request_reaches_the_guest_on_the_socket_libvirt_names(tmp_path):
    vm = running_domain(tmp_path, "connected")
    path = host_path(tmp_path, SOCKET)
    path.parent.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)  # as deep as libvirt's: too long to bind
    server.bind(f"/proc/self/fd/{directory}/{path.name}")
    os.close(directory)
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        with conn:
            request = json.loads(conn.makefile("rb").readline())
            conn.sendall(json.dumps({"interfaces": [{"name": "eth0"}], "id": request["id"]}).encode() + b"\n")

    with server:
        threading.Thread(target=answer, daemon=True).start()
        assert vm.probe({"op": "interfaces"}) == {"interfaces": [{"name": "eth0"}]}


CONSOLE = """[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)
[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mvoe-probe.service\x1b[0m - voe network probe.
[   43.166645] voe-probe[614]: voe-probe answering on /dev/virtio-ports/io.voe.probe
[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)
[   35.100983] systemd[1]: Started voe-probe.service - voe network probe.
[   36.200000] voe-probe[612]: OSError: [Errno 16] Device or resource busy
web login:
"""


def test_a_guest_that_never_opens_its_port_reads_as_a_probe_not_running(tmp_path, monkeypatch):
    """... with what the probe said on the console in this boot."""
    monkeypatch.setattr(libvirt_host, "PROBE_PATIENCE", 0.5)
    vm = running_domain(tmp_path, "disconnected")
    (tmp_path / "log" / "qemu").mkdir(parents=True)
    (tmp_path / "log" / "qemu" / "web-console.log").write_text(CONSOLE)
    with pytest.raises(KvmError) as failed:
        vm.probe({"op": "interfaces"})
    assert str(failed.value) == (
        "web: the guest did not open its network probe's port (io.voe.probe) in 0 s: voe-probe.service is not "
        "running in it; its console: [   35.100983] systemd[1]: Started voe-probe.service - voe network probe. | "
        "[   36.200000] voe-probe[612]: OSError: [Errno 16] Device or resource busy")


def test_a_domain_that_does_not_run_has_no_probe_to_ask(tmp_path):
    vm = LibvirtVm("web", SimpleNamespace(root=tmp_path))
    with pytest.raises(KvmError, match="web: the network probe did not answer interfaces: the machine has no probe"):
        vm.probe({"op": "interfaces"})
