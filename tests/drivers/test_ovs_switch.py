"""The ovs switch driver against a real Open vSwitch (ovsdb-server and
ovs-vswitchd, userspace datapath): what it writes over OVSDB is read back
by ovs-vsctl, and frames sent on veths cabled to the bridge cross it only
as the written VLANs allow."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from frames import Port
from voe.domain.models import Switch
from voe.domain.ports import PortConfig
from voe.drivers.factory import switch_for
from voe.errors import DriverError

pytestmark = pytest.mark.root

_bridges = itertools.count()


@pytest.fixture
def ovs(ovs_plane):
    """voe's driver for a 3-port OVS bridge, and a listening host on each port."""
    n = next(_bridges)
    bridge = f"drv{n}"
    ovs_plane.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev")
    hosts = []
    for i in range(1, 4):
        ovs_plane.network.add_veth(f"d{n}p{i}", f"d{n}h{i}")
        ovs_plane.vsctl("add-port", bridge, f"d{n}p{i}")
        hosts.append(Port(ovs_plane.network, f"d{n}h{i}", f"02:00:5e:00:10:0{i}"))
    model = Switch(name=f"vswitch{n}", address="127.0.0.1", driver="ovs", ports=[{"name": f"d{n}p{i}"} for i in range(1, 4)],
                   settings={"remote": ovs_plane.db, "bridge": bridge, "timeout": 5})
    driver = switch_for(model)
    yield driver, ovs_plane, hosts, [f"d{n}p{i}" for i in range(1, 4)]
    driver.close()


def heard(hosts, sender, payload, vlan=None):
    for h in hosts:
        h.drain()
    sender.send(payload, vlan=vlan)
    time.sleep(0.3)
    return {hosts.index(h) + 1: got[0] for h in hosts if h is not sender
            for got in [[c.vlan for c in h.caught(0) if c.payload == payload]] if got}


def vsctl_port(plane, port: str) -> dict:
    out = json.loads(plane.vsctl("--format=json", "--columns=tag,trunks,vlan_mode", "list", "Port", port))
    return dict(zip(out["headings"], out["data"][0], strict=True))


def test_it_writes_vlans_over_ovsdb_and_frames_follow_them(ovs):
    driver, plane, hosts, ports = ovs
    assert "Open vSwitch" in driver.check()
    driver.configure_ports({ports[0]: PortConfig.access(100), ports[1]: PortConfig.trunk({100, 200}, native_vlan=300),
                            ports[2]: PortConfig.trunk({200})})
    assert vsctl_port(plane, ports[0]) == {"tag": 100, "trunks": ["set", []], "vlan_mode": "access"}
    assert vsctl_port(plane, ports[1])["vlan_mode"] == "native-untagged"
    assert driver.read_port(ports[1]) == PortConfig.trunk({100, 200}, native_vlan=300)
    assert driver.vlans() == {100, 200, 300}
    assert heard(hosts, hosts[0], b"a") == {2: 100}
    assert heard(hosts, hosts[1], b"b", vlan=200) == {3: 200}
    assert heard(hosts, hosts[1], b"c") == {}  # VLAN 300, native on port 2 alone


def test_a_shut_port_forwards_nothing_and_opens_with_its_vlans(ovs):
    driver, _, hosts, ports = ovs
    driver.configure_ports({p: PortConfig.access(100) for p in ports})
    driver.set_admin(ports[1], False)
    assert driver.read_port(ports[1]) == PortConfig.trunk(frozenset(), 100, admin_up=False)
    assert heard(hosts, hosts[0], b"d") == {3: None}
    assert heard(hosts, hosts[1], b"e") == {}
    driver.set_admin(ports[1], True)
    assert driver.read_port(ports[1]) == PortConfig.access(100)
    assert heard(hosts, hosts[1], b"f") == {1: None, 3: None}


def test_a_port_left_with_no_vlan_forwards_nothing_not_everything(ovs):
    """OVS reads an empty trunk list as every VLAN: voe's empty port must not."""
    driver, _, hosts, ports = ovs
    driver.configure_ports({ports[0]: PortConfig.trunk(frozenset()), ports[1]: PortConfig.trunk(frozenset()),
                            ports[2]: PortConfig.trunk({100})})
    assert driver.read_port(ports[0]) == PortConfig.trunk(frozenset())
    assert heard(hosts, hosts[2], b"g", vlan=100) == {}
    assert heard(hosts, hosts[0], b"h") == {}
    assert heard(hosts, hosts[0], b"i", vlan=4095) == {}


def test_an_unknown_port_is_an_error_naming_the_switch_and_never_a_new_port(ovs):
    driver, plane, _, _ = ovs
    with pytest.raises(DriverError) as e:
        driver.configure_port("eth99", PortConfig.access(100))
    assert e.value.device == driver.device and "eth99" in str(e.value)
    assert "eth99" not in plane.vsctl("list-ports", driver.settings.bridge).split()


def test_an_ovsdb_server_that_does_not_answer_is_a_driver_error():
    model = Switch(name="gone", address="127.0.0.1", driver="ovs", ports=1,
                   settings={"remote": "tcp:127.0.0.1:1", "bridge": "br0", "timeout": 2, "retries": 0})
    driver = switch_for(model)
    with pytest.raises(DriverError) as e:
        driver.read_port("1")
    assert e.value.device == "gone" and "tcp:127.0.0.1:1" in str(e.value)
