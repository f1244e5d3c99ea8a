"""Which host NICs carry a persona: NICs named or labelled, bonds over
switches or an MLAG pair, dedicated NICs sharing a switch; what the ports
carry and what the agent is told; and refusals that say what is missing."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLE
from voe.cli.yamlfile import DatacenterFile
from voe.domain import capacity, wiring
from voe.domain.inventory import assign_identity, parse
from voe.domain.placement import Constraint, Placer
from voe.domain.ports import PortConfig
from voe.errors import InvalidInventory


def add_10g_nics(doc: dict) -> None:
    """dl360-3 gets two 10g NICs on sw1 (ports 13 and 14), dl360-2 one
    (port 12)."""
    hosts = {h["name"]: h for h in doc["hosts"]}
    hosts["dl360-3"]["nics"] += [
        {"name": "eth2", "mac": "00:0b:cd:03:00:03", "switch": "sw1", "port": "13", "labels": ["10g"]},
        {"name": "eth3", "mac": "00:0b:cd:03:00:04", "switch": "sw1", "port": "14", "labels": ["10g"]}]
    hosts["dl360-2"]["nics"].append(
        {"name": "eth2", "mac": "00:0b:cd:02:00:03", "switch": "sw1", "port": "12", "labels": ["10g"]})


def datacenter(edit=None):
    """The review datacenter with the 10g NICs, and ``edit`` applied."""
    doc = DatacenterFile(EXAMPLE).data()
    add_10g_nics(doc)
    if edit:
        edit(doc)
    return assign_identity(parse(doc))


def add_persona(doc, name, **kw):
    doc["personas"].append({"name": name, "image": {"nfs_root": "10.0.3.5:/export/personas/" + name},
                            "memory": "2GiB", "policy": {"prefer": ["physical"]}, **kw})


def two_10g(doc):
    add_persona(doc, "store", vnics=[{"network": "back", "boot": True},
                                     {"network": "storage", "nic": {"label": "10g"}},
                                     {"network": "front", "nic": {"label": "10g"}}])


def test_two_labelled_nics_are_refused_where_one_exists_with_the_reason():
    inv = datacenter(two_10g)
    store = inv.by_name("personas")["store"]
    d = Placer(capacity.machines(inv)).place(store, Constraint(host="dl360-2"))
    assert not d.ok
    assert "dl360-2 has one 10g NIC; store needs two" in d.why
    d = Placer(capacity.machines(inv)).place(store)
    assert d.ok and d.machine.host == "dl360-3", d.why


def test_dedicated_nics_on_one_switch_get_an_access_port_each_beside_the_trunk():
    inv = datacenter(two_10g)
    store = inv.by_name("personas")["store"]
    dl360_3 = inv.by_name("hosts")["dl360-3"]
    plan = wiring.port_plan(inv, [wiring.Placement("store", "physical", "dl360-3")], ["dl360-3"])
    assert plan[("sw1", "13")] == PortConfig.access(300)  # storage
    assert plan[("sw1", "14")] == PortConfig.access(100)  # front
    assert plan[("sw1", "3")] == PortConfig.trunk(set(), native_vlan=200)  # back rides the trunk, untagged
    ifaces = {i.network: i for i in wiring.interfaces(inv, store, "physical", dl360_3)}
    assert (ifaces["storage"].nic_mac, ifaces["storage"].dedicated) == ("00:0b:cd:03:00:03", True)
    assert ifaces["front"].members == ("00:0b:cd:03:00:04",)
    assert ifaces["back"].nic_mac == "00:0b:cd:03:00:01" and not ifaces["back"].tagged


def test_a_nic_named_is_the_one_taken():
    def named(doc):
        add_persona(doc, "db", vnics=[{"network": "back"}, {"network": "storage", "nic": "eth3"}])

    inv = datacenter(named)
    roles = wiring.nic_roles(inv, inv.by_name("hosts")["dl360-3"], inv.by_name("personas")["db"])
    assert [n.name for n in roles.carriers[1]] == ["eth3"]
    assert [n.name for n in roles.trunk] == ["eth0"]
    d = Placer(capacity.machines(inv)).place(inv.by_name("personas")["db"], Constraint(host="v20z"))
    assert "v20z has no NIC eth3 cabled to a managed switch; db's vNIC on storage asks for it" in d.why


def bonded_trunk(mode):
    def edit(doc):
        add_persona(doc, "bonded", trunk={"bond": mode},
                    vnics=[{"network": "storage", "boot": True}, {"network": "back"}])
    return edit


def test_an_active_backup_trunk_spans_both_switches_with_identical_vlans():
    inv = datacenter(bonded_trunk("active-backup"))
    p = inv.by_name("personas")["bonded"]
    v20z = inv.by_name("hosts")["v20z"]
    plan = wiring.port_plan(inv, [wiring.Placement("bonded", "physical", "v20z")], ["v20z"])
    assert plan[("sw1", "4")] == plan[("sw2", "4")] == PortConfig.trunk({200}, native_vlan=300)
    trunk = wiring.trunk_config(inv, p, v20z, None)
    assert trunk == {"nic_mac": "00:03:ba:04:00:01", "native_network": "storage", "bond": "active-backup",
                     "members": ["00:03:ba:04:00:01", "00:03:ba:04:00:02"]}
    # booted through sw2 while sw1 was down: the same two ports, for the incarnation's life
    booted = wiring.boot_mac(inv, p, "physical", v20z, down=frozenset({"sw1"}))
    assert booted == "00:03:ba:04:00:02"
    assert wiring.trunk_config(inv, p, v20z, booted)["members"] == ["00:03:ba:04:00:02", "00:03:ba:04:00:01"]
    later = wiring.port_plan(inv, [wiring.Placement("bonded", "physical", "v20z", booted)], ["v20z"])
    assert later == plan


def test_a_bond_prefers_switches_it_does_not_use_yet():
    inv = datacenter(bonded_trunk("active-backup"))
    roles = wiring.nic_roles(inv, inv.by_name("hosts")["dl360-3"], inv.by_name("personas")["bonded"])
    assert [n.switch for n in roles.trunk] == ["sw1", "sw2"]  # eth0 and eth1, not eth0 and eth2


def test_lacp_keeps_to_one_switch_or_an_mlag_pair():
    inv = datacenter(bonded_trunk("lacp"))
    p = inv.by_name("personas")["bonded"]
    d = Placer(capacity.machines(inv)).place(p, Constraint(host="v20z"))
    assert "v20z has no switch or MLAG pair with two free NICs for bonded's LACP bond (trunk)" in d.why
    roles = wiring.nic_roles(inv, inv.by_name("hosts")["dl360-3"], p)
    assert [n.name for n in roles.trunk] == ["eth0", "eth2"]  # both on sw1

    def paired(doc):
        bonded_trunk("lacp")(doc)
        doc["switches"][0]["mlag_peer"] = "sw2"
    inv = datacenter(paired)
    d = Placer(capacity.machines(inv)).place(inv.by_name("personas")["bonded"], Constraint(host="v20z"))
    assert d.ok, d.why


def test_a_bonded_vnic_gets_access_ports_on_every_member():
    def edit(doc):
        add_persona(doc, "san", vnics=[{"network": "back"},
                                       {"network": "storage", "bond": {"mode": "active-backup", "label": "10g"}}])
    inv = datacenter(edit)
    p = inv.by_name("personas")["san"]
    plan = wiring.port_plan(inv, [wiring.Placement("san", "physical", "dl360-3")], ["dl360-3"])
    assert plan[("sw1", "13")] == plan[("sw1", "14")] == PortConfig.access(300)
    iface = next(i for i in wiring.interfaces(inv, p, "physical", inv.by_name("hosts")["dl360-3"])
                 if i.network == "storage")
    assert (iface.bond, iface.members) == ("active-backup", ("00:0b:cd:03:00:03", "00:0b:cd:03:00:04"))


@pytest.mark.parametrize(("edit", "where", "says"), [
    (lambda d: d["personas"][0]["vnics"][1].update(nic="eth1", bond="lacp"), ("personas", 0, "vnics", 1),
     "a vNIC takes nic or bond, not both"),
    (lambda d: d["switches"][0].update(mlag_peer="sw3"), ("switches", 0, "mlag_peer"), "unknown switch 'sw3'"),
    (lambda d: d["switches"][0].update(mlag_peer="sw1"), ("switches", 0, "mlag_peer"), "its own MLAG peer"),
    (lambda d: d["personas"][0]["vnics"].__setitem__(slice(0, 2), [{"network": "storage", "nic": "eth1"},
                                                                  {"network": "back", "nic": "eth1"}]),
     ("personas", 0, "vnics", 1, "nic"), "NIC 'eth1' is already vNIC 0's"),
    (lambda d: d["personas"][0].update(trunk={"bond": {"mode": "roundrobin"}}), ("personas", 0, "trunk", "bond", "mode"),
     "active-backup"),
])
def test_bad_bonds_and_nics_name_the_field(edit, where, says):
    doc = DatacenterFile(EXAMPLE).data()
    edit(doc)
    with pytest.raises(InvalidInventory) as e:
        parse(doc)
    found = [p for p in e.value.problems if tuple(p.loc) == where]
    assert found and says in found[0].msg, e.value.problems
