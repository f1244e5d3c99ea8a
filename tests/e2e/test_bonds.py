"""NIC bonds and dedicated NICs on the lab: a persona bonded across both
switches outlives one of them without a fence; dedicated NICs on one switch
get a port each; a server without the NICs asked for is refused with the
reason."""

from __future__ import annotations

import json
import time

import pytest

from tests.domain.test_nic_choice import add_10g_nics
from tests.e2e import snmp
from tests.e2e.conftest import running_stack
from tests.e2e.test_failover import no_double_runs, start


def datacenter(doc: dict) -> None:
    """dl360-3 gets two 10g NICs on sw1, dl360-2 one; ``bonded`` bonds its
    trunk across sw1 and sw2 on v20z; ``store`` asks for two 10g NICs."""
    add_10g_nics(doc)
    image = next(p for p in doc["personas"] if p["name"] == "bea-2")["image"]
    common = {"image": image, "memory": "2GiB", "policy": {"prefer": ["physical"]}}
    doc["personas"] += [
        {"name": "bonded", "trunk": {"bond": "active-backup"},
         "vnics": [{"network": "storage", "boot": True}, {"network": "back"}], **common},
        {"name": "store", "vnics": [{"network": "back", "boot": True},
                                    {"network": "storage", "nic": {"label": "10g"}},
                                    {"network": "front", "nic": {"label": "10g"}}], **common}]


@pytest.fixture
def stack(tmp_path):
    with running_stack(tmp_path, edit=datacenter) as s:
        yield s


def reach(stack, a: str, b: str) -> dict:
    return json.loads(stack.lab("reach", a, b, "--json", check=False).stdout)


def port_vlans(stack, switch: str, port: str) -> tuple[set[int], set[int], int]:
    sw = next(s for s in stack.doc["switches"] if s["name"] == switch)["settings"]["port"]
    return snmp.vlans_on_port(sw, int(port), [100, 200, 300])


def test_an_active_backup_bond_keeps_its_persona_through_a_switch_failure(stack):
    bonded = start(stack, "bonded", to="v20z")["bonded"]
    start(stack, "web-1")
    cables = [c for c in stack.http.get("/api/v1/fabric").json()["cables"] if c["host"] == "v20z"]
    ports = {c["switch"]: c["port"] for c in cables}
    assert set(ports) == {"sw1", "sw2"}
    # every member's port carries the same VLANs: back tagged, storage native
    assert port_vlans(stack, "sw1", ports["sw1"]) == port_vlans(stack, "sw2", ports["sw2"]) == ({200}, {300}, 300)
    assert reach(stack, "bonded", "web-1")["reach"] is True
    stack.lab("fault", "sw1", "down")
    deadline = time.monotonic() + 10  # the switch is judged down; web-1's uplink moves to sw2
    while not (answer := reach(stack, "bonded", "web-1"))["reach"]:
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    assert "via sw2" in answer["why"], answer
    time.sleep(3)  # several heartbeat intervals past the failure: nothing fenced, nothing restarted
    after = stack.status("bonded")
    assert (after["state"], after["generation"]) == ("running", bonded["generation"]), after
    events = stack.http.get("/api/v1/events/log", params={"persona": "bonded", "kind": "fence"}).json()
    assert events == []
    no_double_runs(stack)


def test_two_dedicated_nics_on_one_switch_and_a_refusal_that_names_the_shortage(stack):
    r = stack.http.post("/api/v1/personas/store/start", json={"to": "dl360-2"})
    assert r.status_code == 409 and "dl360-2 has one 10g NIC; store needs two" in r.text, r.text
    running = start(stack, "store", to="dl360-3")["store"]
    assert running["machine"]["host"] == "dl360-3"
    assert port_vlans(stack, "sw1", "13") == (set(), {300}, 300)  # storage, an access port
    assert port_vlans(stack, "sw1", "14") == (set(), {100}, 100)  # front, an access port on the same switch
    assert port_vlans(stack, "sw1", "3") == (set(), {200}, 200)  # back, the trunk's native VLAN
    assert sorted(running["agent"]["addresses"]) == ["back", "front", "storage"]
