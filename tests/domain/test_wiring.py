"""Wiring: what the switch ports carry and what the agent configures."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLE
from voe.cli.yamlfile import DatacenterFile
from voe.domain import wiring
from voe.domain.inventory import assign_identity, parse
from voe.domain.ports import PortConfig


@pytest.fixture
def inv():
    return assign_identity(parse(DatacenterFile(EXAMPLE).data()))


def test_physical_trunk_carries_exactly_the_personas_vlans_with_boot_native(inv):
    plan = wiring.port_plan(inv, [wiring.Placement("oracle", "physical", "dl360-2")], ["dl360-2"])
    assert plan[("sw1", "2")] == PortConfig.trunk({200}, native_vlan=300)
    assert plan[("sw2", "2")] == PortConfig.trunk(set(), None)  # the unused NIC carries nothing


def test_hypervisor_trunk_carries_the_union_of_its_vms(inv):
    placed = [wiring.Placement(n, "vm", "dl360-1") for n in ("web-1", "lb")]
    plan = wiring.port_plan(inv, placed, ["dl360-1"])
    assert plan[("sw1", "1")] == PortConfig.trunk({100, 200}, None)


def test_a_hypervisor_uplink_moves_off_a_dead_switch_and_stays_put_when_all_are_dead(inv):
    placed = [wiring.Placement(n, "vm", "dl360-1") for n in ("web-1", "lb")]
    plan = wiring.port_plan(inv, placed, ["dl360-1"], down=frozenset({"sw1"}))
    assert plan[("sw2", "1")] == PortConfig.trunk({100, 200}, None)
    assert plan[("sw1", "1")].vlans() == frozenset()
    # nowhere to go: the plan still says what the VMs need (writing it fails
    # as the switch's own error until one answers again)
    plan = wiring.port_plan(inv, placed, ["dl360-1"], down=frozenset({"sw1", "sw2"}))
    assert plan[("sw1", "1")] == PortConfig.trunk({100, 200}, None)


def test_removing_a_persona_removes_its_vlans(inv):
    plan = wiring.port_plan(inv, [], ["dl360-2"])
    assert plan[("sw1", "2")].vlans() == frozenset()


def test_agent_interfaces_physical(inv):
    p = inv.by_name("personas")["bea-1"]
    ifaces = wiring.interfaces(inv, p, "physical", inv.by_name("hosts")["dl360-3"])
    assert [(i.network, i.vlan, i.tagged, i.nic_mac) for i in ifaces] == [
        ("storage", 300, False, "00:0b:cd:03:00:01"), ("back", 200, True, "00:0b:cd:03:00:01")]
    assert ifaces[1].mac == p.vnics[1].mac and ifaces[1].address == f"{p.vnics[1].ip}/24"
    assert wiring.boot_mac(inv, p, "physical", inv.by_name("hosts")["dl360-3"]) == "00:0b:cd:03:00:01"


def test_agent_interfaces_vm_one_nic_per_vnic(inv):
    p = inv.by_name("personas")["web-1"]
    ifaces = wiring.interfaces(inv, p, "vm", inv.by_name("hosts")["dl360-1"])
    assert all(not i.tagged and i.nic_mac == i.mac for i in ifaces)
    assert wiring.boot_mac(inv, p, "vm", inv.by_name("hosts")["dl360-1"]) == p.vnics[0].mac
    assert wiring.vm_vlans(inv, p) == (100, 200)
