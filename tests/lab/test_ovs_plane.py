"""A lab switch forwards real Ethernet frames exactly as its SNMP-visible
state says: frames are sent and caught on veths cabled to an Open vSwitch
bridge (userspace datapath) that follows the switch, whose state voe's own
SNMP driver writes over UDP."""

from __future__ import annotations

import itertools
import socket
import time

import pytest

from frames import Port
from harness import free_port
from voe.domain.models import Switch
from voe.domain.ports import PortConfig
from voe.drivers.switch.snmp import SnmpSwitch
from voe.lab.switch_emulator import SwitchEmulator

pytestmark = pytest.mark.root

MACS = [f"02:00:5e:00:00:0{i}" for i in range(1, 5)]
_switches = itertools.count()


@pytest.fixture
def switch(ovs_plane):
    """A 4-port lab switch, its SNMP agent and voe's SNMP driver, with a
    listening host on each port."""
    n = next(_switches)
    port = free_port(socket.SOCK_DGRAM)
    model = Switch(name=f"sw{n}", address="127.0.0.1", ports=4, settings={"port": port, "timeout": 3})
    emulator = SwitchEmulator(model, "127.0.0.1", port)
    emulator.start()
    bridge = ovs_plane.add_switch(emulator.state)
    hosts = []
    for i in range(1, 5):
        ovs_plane.network.add_veth(f"s{n}p{i}", f"s{n}h{i}")
        bridge.attach(i, f"s{n}p{i}")
        hosts.append(Port(ovs_plane.network, f"s{n}h{i}", MACS[i - 1]))
    driver = SnmpSwitch.from_switch(model)
    yield driver, emulator, hosts
    driver.close()
    emulator.stop()


def heard(hosts, sender, payload, vlan=None, dst="ff:ff:ff:ff:ff:ff"):
    """Who caught ``sender``'s frame, and on which VLAN (None: untagged)."""
    for h in hosts:
        h.drain()
    sender.send(payload, dst, vlan)
    time.sleep(0.3)
    out = {}
    for h in hosts:
        if h is not sender:
            got = [c.vlan for c in h.caught(0) if c.payload == payload and c.src == sender.mac]
            if got:
                out[hosts.index(h) + 1] = got[0]
    return out


def test_a_factory_default_switch_forwards_untagged_frames_between_all_ports(switch):
    _, _, hosts = switch
    assert heard(hosts, hosts[0], b"hello") == {2: None, 3: None, 4: None}


def test_access_and_trunk_ports_forward_by_the_vlans_snmp_wrote(switch):
    driver, _, hosts = switch
    driver.configure_ports({"1": PortConfig.access(100), "2": PortConfig.access(100), "3": PortConfig.access(200),
                            "4": PortConfig.trunk({100, 200})})
    assert heard(hosts, hosts[0], b"a") == {2: None, 4: 100}  # untagged in, tagged 100 out on the trunk
    assert heard(hosts, hosts[3], b"b", vlan=200) == {3: None}  # tagged 200 in, untagged out on 200's access port
    assert heard(hosts, hosts[3], b"c", vlan=300) == {}  # a VLAN the trunk does not carry is dropped on the way in
    assert heard(hosts, hosts[3], b"d") == {}  # a trunk without a native VLAN takes no untagged frame
    driver.configure_port("4", PortConfig.trunk({200}, native_vlan=100))
    assert heard(hosts, hosts[3], b"e") == {1: None, 2: None}  # untagged in: the native VLAN
    assert heard(hosts, hosts[0], b"f") == {2: None, 4: None}  # the native VLAN goes out untagged


def test_removing_a_vlan_from_a_trunk_stops_its_frames(switch):
    driver, _, hosts = switch
    driver.configure_ports({"1": PortConfig.access(100), "4": PortConfig.trunk({100, 200}),
                            "2": PortConfig.trunk(frozenset()), "3": PortConfig.trunk(frozenset())})
    assert heard(hosts, hosts[0], b"g") == {4: 100}
    driver.configure_port("4", PortConfig.trunk({200}))
    assert heard(hosts, hosts[0], b"h") == {}


def test_a_shut_port_forwards_nothing_either_way(switch):
    driver, _, hosts = switch
    driver.set_admin("2", False)
    assert heard(hosts, hosts[0], b"i") == {3: None, 4: None}
    assert heard(hosts, hosts[1], b"j") == {}
    driver.set_admin("2", True)
    assert heard(hosts, hosts[1], b"k") == {1: None, 3: None, 4: None}


def test_a_switch_that_is_down_forwards_nothing(switch):
    _, emulator, hosts = switch
    emulator.set_down(True)
    assert heard(hosts, hosts[0], b"l") == {}
    emulator.set_down(False)
    assert heard(hosts, hosts[0], b"m") == {2: None, 3: None, 4: None}


def test_it_learns_macs_per_vlan(switch):
    """A frame to an unknown MAC floods its VLAN; once that MAC has spoken
    in the VLAN, frames to it go to its port alone."""
    driver, _, hosts = switch
    driver.configure_ports({"1": PortConfig.access(100), "2": PortConfig.access(100), "3": PortConfig.access(100),
                            "4": PortConfig.access(200)})
    assert heard(hosts, hosts[0], b"n", dst=MACS[1]) == {2: None, 3: None}
    heard(hosts, hosts[1], b"o", dst=MACS[0])
    assert heard(hosts, hosts[0], b"p", dst=MACS[1]) == {2: None}
