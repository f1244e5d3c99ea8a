"""The agent's parts: its parameters, the files it renders, and its exit
codes against a controller that answers stale."""

from __future__ import annotations

import pytest

from voe.agent import bootargs, render

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
