"""Placement: the review's group, refusals that name every filter, and the
hardware caveats."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLE
from voe.cli.yamlfile import DatacenterFile
from voe.domain import capacity
from voe.domain.inventory import assign_identity, parse
from voe.domain.models import Persona
from voe.domain.placement import Constraint, Placer, place_group


@pytest.fixture
def inv():
    return assign_identity(parse(DatacenterFile(EXAMPLE).data()))


def persona(name, **kw) -> Persona:
    return Persona.model_validate({"name": name, "image": {"nfs_root": "n:/x"}, "vnics": [{"network": "front"}], **kw})


def test_review_group_lands_big_personas_on_physical_and_the_rest_on_vms(inv):
    g = inv.by_name("groups")["sample-app"]
    personas = [inv.by_name("personas")[m] for m in g.members]
    decisions = {d.persona: d for d in place_group(Placer(capacity.machines(inv)), personas)}
    assert all(d.ok for d in decisions.values())
    for name in ("oracle", "bea-1", "bea-2"):
        assert decisions[name].machine.kind == "physical", decisions[name].why
    for name in ("web-1", "web-2", "web-3", "lb"):
        assert decisions[name].machine.kind == "vm" and decisions[name].machine.host == "dl360-1"
    assert decisions["bea-1"].machine.host != decisions["bea-2"].machine.host  # anti-affinity
    assert "no vm fits (1 hypervisor lacks 12 GiB free memory)" in decisions["oracle"].why
    assert "fallback physical" in decisions["oracle"].why
    assert decisions["web-1"].why.startswith("preferred vm: a VM on dl360-1")


def test_the_dl380_storage_server_is_never_chosen(inv):
    placer = Placer(capacity.machines(inv))
    hosts = set()
    for i in range(6):
        d = placer.place(persona(f"p{i}", memory="1GiB", policy={"prefer": ["physical"]}))
        if d.ok:
            hosts.add(d.machine.host)
    assert "dl380" not in hosts and "dl360-1" not in hosts  # storage server; the hypervisor host
    assert hosts == {"dl360-2", "dl360-3", "v20z", "pe2800"}


def test_refusal_names_each_filter_and_how_many_machines_it_ruled_out(inv):
    big = persona("huge", memory="16GiB", cpus=4, boot="fc", image={"target_wwpn": "50:00:00:00:00:00:00:01"},
                  policy={"labels": {"rack": "a"}})
    d = Placer(capacity.machines(inv)).place(big)
    assert not d.ok
    assert d.why == ("huge fits nowhere — vm: 1 hypervisor lacks 16 GiB free memory | "
                     "physical: 2 hosts lack a QLogic or Emulex FC HBA; 1 host lacks 4 free CPUs; "
                     "1 host lacks label rack=a; 1 host is unschedulable, fenced or unreachable")


def test_fc_boot_goes_to_the_host_with_a_qlogic_hba(inv):
    d = Placer(capacity.machines(inv)).place(persona("db", boot="fc", image={"target_wwpn": "50:00:00:00:00:00:00:01"}))
    assert d.ok and d.machine.host == "pe2800"


def test_dedicated_vnics_need_a_nic_each_and_may_share_a_switch(inv):
    p = persona("fw", policy={"prefer": ["physical"]},
                vnics=[{"network": "front", "dedicated": True}, {"network": "back", "dedicated": True},
                       {"network": "storage", "dedicated": True}])
    d = Placer(capacity.machines(inv)).place(p)
    assert not d.ok
    assert "4 hosts lack the NICs fw asks for" in d.why
    assert "has two NICs cabled to managed switches; fw needs three" in d.why
    two = persona("fw2", policy={"prefer": ["physical"]},
                  vnics=[{"network": "front", "dedicated": True}, {"network": "back", "dedicated": True}])
    assert Placer(capacity.machines(inv)).place(two).ok
    # both NICs on the one switch that is up: still two ports of their own
    assert Placer(capacity.machines(inv, switches_down={"sw2"})).place(two).ok is False
    doc = DatacenterFile(EXAMPLE).data()
    v20z = next(h for h in doc["hosts"] if h["name"] == "v20z")
    v20z["nics"][1].update(switch="sw1", port="14")
    one_switch = assign_identity(parse(doc))
    d = Placer(capacity.machines(one_switch)).place(two, Constraint(host="v20z"))
    assert d.ok, d.why


def test_prefer_order_and_explicit_kind_and_host(inv):
    placer = Placer(capacity.machines(inv))
    assert placer.place(persona("a", policy={"prefer": ["physical", "vm"]})).machine.kind == "physical"
    assert placer.place(persona("b"), Constraint(kind="physical")).machine.kind == "physical"
    assert placer.place(persona("c"), Constraint(host="pe2800")).machine.host == "pe2800"
    d = placer.place(persona("d"), Constraint(host="pe2800"))
    assert not d.ok and "1 host already runs a persona" in d.why


def test_required_labels_and_unavailable_hosts(inv):
    machines = capacity.machines(inv, unavailable={"pe2800"})
    d = Placer(machines).place(persona("x", policy={"prefer": ["physical"], "labels": {"vendor": "dell"}}))
    assert not d.ok
    assert "2 hosts are unschedulable, fenced or unreachable" in d.why  # dl380 and pe2800
    assert "lack label vendor=dell" in d.why


def test_pack_fills_one_machine_spread_uses_many(inv):
    small = dict(memory="512MiB", policy={"prefer": ["physical"], "strategy": "spread"})
    placer = Placer(capacity.machines(inv))
    spread = {placer.place(persona(f"s{i}", **small)).machine.host for i in range(3)}
    assert len(spread) == 3
