"""The review's moments, end to end on the lab: the sample application
started with one command, checked by the switches themselves and by the
emulated data plane; a move that keeps identity; a group that cannot start
and starts nothing."""

from __future__ import annotations

import time

from tests.e2e import snmp

GROUP = ["oracle", "bea-1", "bea-2", "web-1", "web-2", "web-3", "lb"]
VLANS = {"front": 100, "back": 200, "storage": 300}


def start_group(stack, name="sample-app", timeout=60.0) -> dict[str, dict]:
    r = stack.http.post(f"/api/v1/groups/{name}/start", json={})
    assert r.status_code == 202, r.text
    return {p: stack.wait(p, lambda s: s["state"] == "running", timeout) for p in GROUP}


def test_sample_app_starts_in_the_right_places(stack):
    running = start_group(stack)
    for p in ("oracle", "bea-1", "bea-2"):
        assert running[p]["machine"]["kind"] == "physical", running[p]
    for p in ("web-1", "web-2", "web-3", "lb"):
        assert running[p]["machine"] == {"kind": "vm", "host": "dl360-1", "vm": p}
    assert running["bea-1"]["machine"]["host"] != running["bea-2"]["machine"]["host"]
    # dependency order: each started after what it depends on was running
    events = stack.http.get("/api/v1/events/log", params={"kind": "transition", "limit": 1000}).json()
    placed_at = {e["persona"]: e["id"] for e in events if e["data"]["to"] == "powering-on"}
    ready_at = {e["persona"]: e["id"] for e in events if e["data"]["to"] == "running"}
    assert placed_at["bea-1"] > ready_at["oracle"] and placed_at["web-1"] > ready_at["bea-2"]
    assert placed_at["lb"] > max(ready_at[w] for w in ("web-1", "web-2", "web-3"))


def test_switch_ports_trunk_exactly_the_personas_vlans(stack):
    running = start_group(stack)
    sw1 = next(s for s in stack.doc["switches"] if s["name"] == "sw1")["settings"]["port"]
    hosts = {h["name"]: h for h in stack.doc["hosts"]}
    personas = {p["name"]: p for p in stack.doc["personas"]}
    for name in ("oracle", "bea-1", "bea-2"):
        host = hosts[running[name]["machine"]["host"]]
        bridge_port = int(next(n for n in host["nics"] if n["switch"] == "sw1")["port"])
        tagged, untagged, pvid = snmp.vlans_on_port(sw1, bridge_port, list(VLANS.values()))
        vnics = personas[name]["vnics"]
        assert untagged == {VLANS[vnics[0]["network"]]} and pvid == VLANS[vnics[0]["network"]]
        assert tagged == {VLANS[v["network"]] for v in vnics[1:]}
    tagged, untagged, _ = snmp.vlans_on_port(sw1, 1, list(VLANS.values()))  # dl360-1, the hypervisor host
    assert tagged == {100, 200} and untagged == set()


def test_data_plane_follows_the_switches(stack):
    start_group(stack)
    assert stack.lab("reach", "web-1", "bea-1").stdout.startswith("yes")
    assert stack.lab("reach", "bea-1", "oracle").stdout.startswith("yes")
    assert stack.lab("reach", "lb", "oracle", check=False).stdout.startswith("no")


def test_move_to_physical_and_back_keeps_mac_and_ip(stack):
    start_group(stack)
    before = stack.status("web-1")
    addresses = before["agent"]["addresses"]
    assert stack.http.post("/api/v1/personas/web-1/move", json={"kind": "physical"}).status_code == 202
    moved = stack.wait("web-1", lambda s: s["generation"] > before["generation"] and s["state"] == "running")
    assert moved["machine"]["kind"] == "physical"
    assert moved["agent"]["addresses"] == addresses
    assert stack.http.post("/api/v1/personas/web-1/move", json={"kind": "vm"}).status_code == 202
    back = stack.wait("web-1", lambda s: s["generation"] > moved["generation"] and s["state"] == "running")
    assert back["machine"]["kind"] == "vm" and back["agent"]["addresses"] == addresses
    truth = stack.lab_json("truth")
    assert truth["violations"] == []


def test_a_group_with_a_member_that_fits_nowhere_starts_nothing(stack):
    huge = {"name": "huge", "image": {"nfs_root": "n:/x"}, "cpus": 64, "memory": "512GiB",
            "vnics": [{"network": "back"}]}
    assert stack.http.post("/api/v1/personas", json=huge).status_code == 201
    g = {"name": "too-big", "members": ["oracle", "huge"], "depends": {"huge": ["oracle"]}}
    assert stack.http.post("/api/v1/groups", json=g).status_code == 201
    r = stack.http.post("/api/v1/groups/too-big/start", json={})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "nothing was started" in detail["message"]
    refusal = next(p for p in detail["placements"] if p["persona"] == "huge")
    assert "lack 64 free CPUs" in refusal["why"] or "lacks 64 free CPUs" in refusal["why"]
    time.sleep(1)
    assert stack.status("oracle")["state"] == "stopped" and stack.status("oracle")["desired"] == "stopped"


def test_group_stop_goes_in_reverse_dependency_order(stack):
    start_group(stack)
    assert stack.http.post("/api/v1/groups/sample-app/stop", json={}).status_code == 202
    for p in GROUP:
        stack.wait(p, lambda s: s["state"] == "stopped", 60)
    events = stack.http.get("/api/v1/events/log", params={"kind": "transition", "limit": 1000}).json()
    stopping = {e["persona"]: e["id"] for e in events if e["data"]["to"] == "stopping"}
    stopped = {e["persona"]: e["id"] for e in events if e["data"]["to"] == "stopped" and e["data"]["from"] == "stopping"}
    assert stopping["oracle"] > max(stopped["bea-1"], stopped["bea-2"])
    assert min(stopping["bea-1"], stopping["bea-2"]) > max(stopped[w] for w in ("web-1", "web-2", "web-3"))
    assert min(stopping[w] for w in ("web-1", "web-2", "web-3")) > stopped["lb"]
    sw1 = next(s for s in stack.doc["switches"] if s["name"] == "sw1")["settings"]["port"]
    for port in range(1, 6):  # every VLAN gone from the hosts' ports
        tagged, untagged, _ = snmp.vlans_on_port(sw1, port, [100, 200, 300])
        assert tagged == set() and untagged == set(), port


def test_every_running_agent_configured_exactly_its_vnics(stack, tmp_path):
    """Read the files each persona's agent rendered in its machine's root,
    as the persona's OS would, and compare them with the persona's vNICs."""
    from voe.lab import netfiles

    running = start_group(stack)
    lab_root = tmp_path / "lab" / "hosts"
    networks = {n["name"]: n for n in stack.doc["networks"]}
    for name, st in running.items():
        m = st["machine"]
        root = lab_root / m["host"] / ("vms/" + m["vm"] if m["kind"] == "vm" else "")
        got = sorted(str(a) for i in netfiles.interfaces(root) for a in i.addresses)
        vnics = next(p for p in stack.doc["personas"] if p["name"] == name)["vnics"]
        addresses = st["agent"]["addresses"]
        assert got == sorted(addresses.values())
        assert sorted(addresses) == sorted(v["network"] for v in vnics)
        for net, addr in addresses.items():
            import ipaddress
            assert ipaddress.ip_interface(addr).network == ipaddress.ip_network(networks[net]["subnet"])
    from typer.testing import CliRunner

    from voe.cli.main import app

    shown = CliRunner().invoke(app, ["--url", stack.url, "--token", stack.token, "--ca", str(stack.ca),
                                     "persona", "show", "web-1"])
    assert shown.exit_code == 0 and running["web-1"]["agent"]["addresses"]["back"] in shown.output
