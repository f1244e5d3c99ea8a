"""The agent installs into an image root and runs there without voe's
dependencies; its live backend configures real interfaces in a network
namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from voe.agent.install import install_into


def test_install_into_an_image_root_runs_with_the_standard_library_only(tmp_path):
    install_into(tmp_path)
    assert (tmp_path / "etc/systemd/system/multi-user.target.wants/voe-agent.service").resolve() == \
        (tmp_path / "etc/systemd/system/voe-agent.service")
    # -I: isolated, -S: no site-packages: nothing of voe's virtualenv is visible
    r = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "usr/bin/voe-agent"), "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "voe's agent inside a persona" in r.stdout
    bad = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "usr/bin/voe-agent"), "--cmdline", "quiet"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "lacks voe.controller" in bad.stderr


needs_netns = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                 reason="needs root and iproute2 to make a network namespace")


@pytest.fixture
def netns():
    """A network namespace with one NIC, eth0 (a veth end), MAC 00:0b:cd:09:00:01."""
    ns = f"voe-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "add", "eth0", "address", "00:0b:cd:09:00:01", "type", "veth",
                    "peer", "name", "peer0"], check=True)
    yield ns
    subprocess.run(["ip", "netns", "del", ns])


def apply_in(ns: str, config: dict) -> subprocess.CompletedProcess:
    code = f"import json; from voe.agent import net_live; net_live.apply(json.loads({json.dumps(json.dumps(config))}))"
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True)


def front(dedicated: bool) -> dict:
    """The persona's front vNIC on eth0: a NIC of its own, or the trunk's native network."""
    return {"name": "front", "network": "front", "vlan": 100, "tagged": False, "nic_mac": "00:0b:cd:09:00:01",
            "mac": "02:56:4f:00:00:21", "address": "10.0.1.21/24", "gateway": "10.0.1.1", "dedicated": dedicated}


def as_the_initramfs_left_it(ns: str, *more: list[str]) -> None:
    """eth0 up with the boot address that DHCP gave it, and ``more`` ``ip`` commands."""
    for argv in (["link", "set", "peer0", "up"], ["link", "set", "eth0", "up"],
                 ["addr", "add", "10.0.1.21/24", "dev", "eth0"], *more):
        subprocess.run(["ip", "-n", ns, *argv], check=True)


def link(ns: str, name: str) -> dict:
    return json.loads(subprocess.run(["ip", "-n", ns, "-j", "addr", "show", name], capture_output=True, text=True,
                                     check=True).stdout)[0]


@needs_netns
def test_live_backend_configures_mac_and_address_in_a_namespace(netns):
    config = {"trunk": None, "interfaces": [front(dedicated=True)]}
    for _ in range(2):  # idempotent
        r = apply_in(netns, config)
        assert r.returncode == 0, r.stderr
    nic = link(netns, "front")  # a NIC of its own: the vNIC's name
    assert nic["address"] == "02:56:4f:00:00:21"
    assert [(a["local"], a["prefixlen"]) for a in nic["addr_info"] if a["family"] == "inet"] == [("10.0.1.21", 24)]
    routes = subprocess.run(["ip", "-n", netns, "route"], capture_output=True, text=True).stdout
    assert "default via 10.0.1.1" in routes
    code = ("import json; from voe.agent import system; "
            f"print(json.dumps(system.as_configured({config['interfaces']!r}, system.interfaces())))")
    seen = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(seen.stdout) == {"front": "10.0.1.21/24 on front (02:56:4f:00:00:21)"}  # as the kernel says


@needs_netns
def test_the_boot_nic_takes_the_persona_mac_keeping_its_routes_beyond_the_gateway(netns):
    """As the initramfs left it: the boot NIC addressed by DHCP, and a root
    on NFS beyond the gateway. The agent gives the NIC the persona's MAC;
    the route to the root's network, which the agent knows nothing of,
    stays: without it the agent could not read its own code."""
    as_the_initramfs_left_it(netns, ["route", "add", "10.77.0.0/24", "via", "10.0.1.1", "dev", "eth0"])
    r = apply_in(netns, {"trunk": {"nic_mac": "00:0b:cd:09:00:01"}, "interfaces": [front(dedicated=False)]})
    assert r.returncode == 0, r.stderr
    assert link(netns, "eth0")["address"] == "02:56:4f:00:00:21"
    routes = subprocess.run(["ip", "-n", netns, "route"], capture_output=True, text=True).stdout
    assert "10.77.0.0/24 via 10.0.1.1 dev eth0" in routes, routes


@needs_netns
def test_a_nic_of_its_own_that_the_initramfs_brought_up_keeps_its_name(netns):
    """A VM's boot NIC carries its root: renaming it would take it down."""
    as_the_initramfs_left_it(netns)
    r = apply_in(netns, {"trunk": None, "interfaces": [front(dedicated=True)]})
    assert r.returncode == 0, r.stderr
    eth0 = link(netns, "eth0")
    assert eth0["address"] == "02:56:4f:00:00:21" and "UP" in eth0["flags"]


@needs_netns
def test_live_backend_vlan_interfaces_or_a_clear_reason(netns):
    config = {"trunk": {"nic_mac": "00:0b:cd:09:00:01"}, "interfaces": [
        {"name": "back", "network": "back", "vlan": 200, "tagged": True, "nic_mac": "00:0b:cd:09:00:01",
         "mac": "02:56:4f:00:00:22", "address": "10.0.2.22/24", "gateway": None, "dedicated": False}]}
    r = apply_in(netns, config)
    if r.returncode != 0:
        assert "is the 8021q module loaded?" in r.stderr
        pytest.skip("this kernel has no 8021q module: VLAN interfaces cannot be created here")
    link = json.loads(subprocess.run(["ip", "-n", netns, "-j", "-d", "link", "show", "back"], capture_output=True,
                                     text=True, check=True).stdout)[0]
    assert link["address"] == "02:56:4f:00:00:22" and link["linkinfo"]["info_data"]["id"] == 200


@needs_netns
def test_live_backend_bonds_two_nics_or_a_clear_reason(netns):
    subprocess.run(["ip", "-n", netns, "link", "add", "eth1", "address", "00:0b:cd:09:00:02", "type", "veth",
                    "peer", "name", "peer1"], check=True)
    config = {"trunk": None, "interfaces": [
        {"name": "san", "network": "storage", "vlan": 300, "tagged": False, "nic_mac": "00:0b:cd:09:00:01",
         "mac": "02:56:4f:00:00:23", "address": "10.0.3.23/24", "gateway": None, "dedicated": True,
         "bond": "active-backup", "members": ["00:0b:cd:09:00:01", "00:0b:cd:09:00:02"]}]}
    r = apply_in(netns, config)
    if r.returncode != 0:
        assert "is the bonding module loaded?" in r.stderr, r.stderr
        pytest.skip("this kernel has no bonding module: bonds cannot be created here")
    assert apply_in(netns, config).returncode == 0  # idempotent
    bond = json.loads(subprocess.run(["ip", "-n", netns, "-j", "-d", "addr", "show", "san"], capture_output=True,
                                     text=True, check=True).stdout)[0]
    assert bond["address"] == "02:56:4f:00:00:23"
    assert bond["linkinfo"]["info_data"]["mode"] == "active-backup"
    assert [(a["local"], a["prefixlen"]) for a in bond["addr_info"] if a["family"] == "inet"] == [("10.0.3.23", 24)]
    for nic in ("eth0", "eth1"):
        link = json.loads(subprocess.run(["ip", "-n", netns, "-j", "link", "show", nic], capture_output=True,
                                         text=True, check=True).stdout)[0]
        assert link.get("master") == "san", link


class NicThatMustBeDown:
    """The kernel as ``net_live`` sees it (``net_live.Ip``), with a NIC that
    refuses a new MAC while up (EBUSY), as some drivers do, and drops the
    routes through it when taken down."""

    def __init__(self):
        self.up, self.mac = True, "00:0b:cd:09:00:01"
        self.routes = [("10.77.0.0/24", "10.0.1.1")]

    def link(self, name):
        return {"name": name, "mac": self.mac}

    def gateway_routes(self, name):
        return list(self.routes)

    def __call__(self, *args):
        from voe.agent.net_live import IpFailed

        match args:
            case ("link", "set", "dev", "eth0", "address", mac):
                if self.up:
                    raise IpFailed("ip link set dev eth0 address: RTNETLINK answers: Device or resource busy")
                self.mac = mac
            case ("link", "set", "dev", "eth0", state):
                self.up = state == "up"
                if not self.up:
                    self.routes = []
            case ("route", "replace", dst, "via", gateway, "dev", "eth0"):
                assert self.up, "a route through a NIC that is down"
                self.routes.append((dst, gateway))
            case _:
                raise AssertionError(f"unexpected ip {args}")
        return ""


def test_a_nic_that_must_be_down_for_its_new_mac_gets_its_routes_back():
    from voe.agent.net_live import _set_mac

    nic = NicThatMustBeDown()
    _set_mac(nic, "eth0", "02:56:4f:00:00:21")
    assert (nic.mac, nic.up) == ("02:56:4f:00:00:21", True)
    assert nic.routes == [("10.77.0.0/24", "10.0.1.1")]


def test_an_802_1q_interface_is_read_with_its_vlan_id_from_the_kernels_message():
    """A link as rtnetlink describes it (RTM_NEWLINK's body): the VLAN id
    sits two attributes deep."""
    import socket
    import struct

    from voe.agent import netlink

    def attr(kind, value):
        raw = struct.pack("=HH", 4 + len(value), kind) + value
        return raw + b"\0" * (-len(raw) % 4)

    vlan_data = attr(netlink.IFLA_VLAN_ID, struct.pack("=H", 200))
    info = attr(netlink.IFLA_INFO_KIND, b"vlan\0") + attr(netlink.IFLA_INFO_DATA | 0x8000, vlan_data)
    body = (netlink.IFINFO.pack(socket.AF_UNSPEC, 1, 7, 0x1043, 0) + attr(netlink.IFLA_IFNAME, b"back\0")
            + attr(netlink.IFLA_ADDRESS, bytes.fromhex("02564f000022")) + attr(netlink.IFLA_LINKINFO | 0x8000, info)
            + attr(netlink.IFLA_MASTER, struct.pack("=i", 3)))
    assert netlink._link(body) == {"index": 7, "type": 1, "flags": 0x1043, "name": "back", "mac": "02:56:4f:00:00:22",
                                   "perm_mac": None, "master": 3, "vlan": 200}
