"""The agent's parts: its parameters, the files it renders, its word to
systemd, and its exit codes against a controller that answers stale."""

from __future__ import annotations

import socket

import pytest

from voe.agent import bootargs, render
from voe.agent.main import notify_configured

PHYSICAL = {
    "persona": "bea-1", "generation": 3, "hostname": "bea-1",
    "trunk": {"nic_mac": "00:0b:cd:02:00:01", "native_network": "storage"},
    "interfaces": [
        {"name": "storage", "network": "storage", "vlan": 300, "tagged": False, "nic_mac": "00:0b:cd:02:00:01",
         "mac": "02:56:4f:00:00:03", "address": "10.0.3.12/24", "gateway": None, "dedicated": False},
        {"name": "back", "network": "back", "vlan": 200, "tagged": True, "nic_mac": "00:0b:cd:02:00:01",
         "mac": "02:56:4f:00:00:04", "address": "10.0.2.12/24", "gateway": "10.0.2.1", "dedicated": False},
    ],
    "san": {"initiator_iqn": "iqn.2026-11.io.voe:persona:bea-1", "wwpn": None},
}
VM = {**PHYSICAL, "trunk": None, "interfaces": [
    {**PHYSICAL["interfaces"][0], "nic_mac": "02:56:4f:00:00:03"},
    {**PHYSICAL["interfaces"][1], "tagged": False, "nic_mac": "02:56:4f:00:00:04"}]}


def test_boot_args_from_a_kernel_command_line():
    a = bootargs.parse("BOOT_IMAGE=/vmlinuz root=/dev/nfs voe.controller=http://10.0.0.1:8470/ voe.persona=web-1 "
                       "voe.generation=7 voe.token=voe_abc quiet")
    assert (a.controller, a.persona, a.generation, a.token) == ("http://10.0.0.1:8470", "web-1", 7, "voe_abc")


def test_missing_words_are_named():
    with pytest.raises(bootargs.BootArgsError) as e:
        bootargs.parse("root=/dev/nfs voe.persona=web-1")
    assert "lacks voe.controller, voe.generation, voe.token" in str(e.value)
    with pytest.raises(bootargs.BootArgsError, match="voe.generation='x' is not a number"):
        bootargs.parse("voe.controller=u voe.persona=p voe.generation=x voe.token=t")


def test_a_command_line_naming_only_the_boot_service_sends_the_agent_there(tmp_path, monkeypatch):
    """A SAN-booted OS's command line is its disk's, not voe's: it names the
    boot service, and the agent reads its words from the script served
    for one of this machine's MACs."""
    import argparse
    import http.server
    import threading

    from voe.agent import main as agent_main

    assert bootargs.boot_service("root=/dev/sda2 voe.persona=p voe.boot_url=http://x") is None  # its own words win
    assert bootargs.boot_service("root=/dev/sda2 quiet") is None
    script = ("#!ipxe\nset voe_args voe.controller=https://10.77.0.1:8470 voe.persona=db voe.generation=4 "
              "voe.token=voe_t voe.ca_sha256=ab12\nsanboot iscsi:10.77.0.3::3260:1:iqn.2026-11.io.voe:db\n")

    class Boot(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/boot/ipxe/52:54:00:77:02:01"
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(script.encode() if found else b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Boot)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        cmdline = tmp_path / "cmdline"
        cmdline.write_text(f"BOOT_IMAGE=/vmlinuz root=LABEL=voe-root rd.iscsi.firmware=1 voe.boot_url={url}\n")
        assert bootargs.boot_service(cmdline.read_text()) == url
        monkeypatch.setattr(agent_main, "local_macs", lambda ns: ["52:54:00:77:02:02", "52:54:00:77:02:01"])
        ns = argparse.Namespace(boot_url=None, persona=None, cmdline=None, cmdline_file=str(cmdline))
        args = agent_main.read_args(ns)
    finally:
        server.shutdown()
    assert (args.controller, args.persona, args.generation, args.token, args.ca_sha256) == (
        "https://10.77.0.1:8470", "db", 4, "voe_t", "ab12")


def test_physical_persona_renders_a_trunk_with_one_vlan_interface_per_tagged_vnic():
    files = render.networkd_files(PHYSICAL)
    assert files["10-voe-trunk.network"] == (
        "[Match]\nMACAddress=00:0b:cd:02:00:01\n\n[Link]\nMACAddress=02:56:4f:00:00:03\n\n"
        "[Network]\nAddress=10.0.3.12/24\nVLAN=back\n")
    assert files["20-voe-back.netdev"] == (
        "[NetDev]\nName=back\nKind=vlan\nMACAddress=02:56:4f:00:00:04\n\n[VLAN]\nId=200\n")
    assert files["20-voe-back.network"] == "[Match]\nName=back\n\n[Network]\nAddress=10.0.2.12/24\nGateway=10.0.2.1\n"
    assert set(files) == {"10-voe-trunk.network", "20-voe-back.netdev", "20-voe-back.network"}


def test_vm_persona_renders_one_untagged_interface_per_nic():
    files = render.networkd_files(VM)
    assert set(files) == {"30-voe-storage.network", "30-voe-back.network"}
    assert "MACAddress=02:56:4f:00:00:04" in files["30-voe-back.network"]
    assert "Gateway=10.0.2.1" in files["30-voe-back.network"]


def test_rendering_is_idempotent_and_removes_stale_files(tmp_path):
    assert render.write(tmp_path, PHYSICAL)
    assert render.write(tmp_path, PHYSICAL) == []  # nothing changed, nothing rewritten
    render.write(tmp_path, VM)
    names = {p.name for p in (tmp_path / "etc/systemd/network").iterdir()}
    assert names == {"30-voe-storage.network", "30-voe-back.network"}
    plan = (tmp_path / "etc/netplan/60-voe.yaml").read_text()
    assert "macaddress: \"02:56:4f:00:00:04\"" in plan and "addresses: [10.0.2.12/24]" in plan


def test_the_lab_reads_back_what_the_agent_rendered(tmp_path):
    from voe.lab import netfiles

    render.write(tmp_path, PHYSICAL)
    got = {(i.name, i.vlan, i.nic_macs, tuple(str(a) for a in i.addresses)) for i in netfiles.interfaces(tmp_path)}
    assert got == {("back", 200, ("00:0b:cd:02:00:01",), ("10.0.2.12/24",)),
                   ("00:0b:cd:02:00:01", None, ("00:0b:cd:02:00:01",), ("10.0.3.12/24",))}


def test_the_lab_reads_back_a_bonded_trunk_on_every_member(tmp_path):
    from voe.lab import netfiles

    members = ["00:0b:cd:02:00:01", "00:0b:cd:02:00:02"]
    render.write(tmp_path, {**PHYSICAL, "trunk": {**PHYSICAL["trunk"], "bond": "active-backup", "members": members}})
    got = {(i.name, i.vlan, i.nic_macs) for i in netfiles.interfaces(tmp_path)}
    assert got == {("back", 200, tuple(members)), ("trunk", None, tuple(members))}


def test_the_agent_tells_systemd_it_is_ready_once_configured(tmp_path, monkeypatch):
    """``Type=notify``: the agent's configured network is what its probe and
    systemd-networkd wait for, as sd_notify's READY=1 on NOTIFY_SOCKET."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        notify_configured({"back": "10.0.2.12/24 on back (02:56:4f:00:00:04, VLAN 200)"})
        said = manager.recv(4096).decode().splitlines()
    assert said == ["READY=1", "STATUS=configured: back 10.0.2.12/24 on back (02:56:4f:00:00:04, VLAN 200)"]
    monkeypatch.delenv("NOTIFY_SOCKET")
    notify_configured({})  # under no service manager: nothing to tell, and no error
