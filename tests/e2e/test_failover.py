"""Failover with positive evidence, end to end on the lab: each fault gets
the evidence it allows (BMC power-off, the hypervisor host's BMC, shut switch
ports), the persona comes back elsewhere with a new generation, and the
lab's truth checker never sees two live incarnations."""

from __future__ import annotations

import time

import httpx

from voe.controller.timing import Timing

WEBS = ("web-1", "web-2", "web-3")


def start(stack, *names, **where):
    for n in names:
        assert stack.http.post(f"/api/v1/personas/{n}/start", json=where).status_code == 202
    return {n: stack.wait(n, lambda s: s["state"] == "running") for n in names}


def replaced(stack, name, before, timeout=30.0):
    return stack.wait(name, lambda s: s["generation"] > before["generation"] and s["state"] == "running", timeout)


def no_double_runs(stack):
    truth = stack.lab_json("truth")
    assert truth["violations"] == [], truth["violations"]
    assert truth["samples"] > 0


def fail_and_replace(stack, persona: str, *faults: str) -> tuple[str, dict, str]:
    """Start ``persona``, inject ``faults`` into its host, wait for its
    replacement elsewhere; return (old host, new status, evidence)."""
    before = start(stack, persona)[persona]
    host = before["machine"]["host"]
    for f in faults:
        stack.lab("fault", host, f)
    after = replaced(stack, persona, before)
    assert after["machine"]["host"] != host
    history = stack.http.get(f"/api/v1/personas/{persona}/status").json()["incarnations"]
    evidence = next(i["evidence"] for i in history if i["generation"] == before["generation"])
    no_double_runs(stack)
    return host, after, evidence


def fence_events(stack, persona):
    events = stack.http.get("/api/v1/events/log", params={"persona": persona, "limit": 500}).json()
    return [e["message"] for e in events if e["kind"] in ("fence", "transition")]


def test_review_hypervisor_host_crash_fences_through_its_bmc_and_restarts_on_physical(stack):
    """The review's test: Apache VMs on one host; its OS crashes (API gone,
    BMC still on). No human: voe powers the host off through its BMC and
    restarts the three web servers on physical servers."""
    before = start(stack, *WEBS)
    assert all(s["machine"]["kind"] == "vm" for s in before.values())
    began = time.monotonic()
    stack.lab("fault", "dl360-1", "os-crash")
    after = {n: replaced(stack, n, before[n]) for n in WEBS}
    took = time.monotonic() - began
    assert all(s["machine"]["kind"] == "physical" for s in after.values()), after
    assert len({s["machine"]["host"] for s in after.values()}) == 3
    log = " | ".join(fence_events(stack, "web-1"))
    assert "hypervisor dl360-1" in log or "hypervisor-host-bmc" in log
    incarnation = stack.status("web-1")
    history = stack.http.get("/api/v1/personas/web-1/status").json()["incarnations"]
    assert "BMC of hypervisor host dl360-1 reads off" in history[1]["evidence"] or \
        "was powered off" in history[1]["evidence"], history[1]
    assert incarnation["agent"]["addresses"] == before["web-1"]["agent"]["addresses"]
    no_double_runs(stack)
    assert took < 30
    # repaired, and returned to service by an operator: web-1 goes back to a VM
    assert stack.http.post("/api/v1/personas/web-1/move", json={"kind": "vm"}).status_code == 409  # host fenced
    port = next(h for h in stack.doc["hosts"] if h["name"] == "dl360-1")["bmc"]["port"]
    import subprocess
    subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", "admin", "-P", "voe-lab",
                    "power", "on"], check=True, capture_output=True)
    r = stack.http.post("/api/v1/hosts/dl360-1/clear", json={"reason": "rebooted after the crash"})
    assert r.status_code == 200
    deadline = time.monotonic() + 10  # the hypervisor answers again once its host has booted
    while "dl360-1" in stack.http.get("/api/v1/status").json()["hypervisors_down"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert stack.http.post("/api/v1/personas/web-1/move", json={"kind": "vm"}).status_code == 202
    back = replaced(stack, "web-1", after["web-1"])
    assert back["machine"] == {"kind": "vm", "host": "dl360-1", "vm": "web-1"}
    assert back["agent"]["addresses"] == before["web-1"]["agent"]["addresses"]
    no_double_runs(stack)


def test_a_hypervisor_that_does_not_answer_gets_no_new_vms(stack):
    """A hypervisor host fenced through its BMC and returned to service
    while still off (an operator's slip): its API does not answer, so a
    VM-preferring persona starts on a server at once, instead of failing
    on the dead hypervisor and costing a fence and a second placement."""
    before = start(stack, "web-1")
    assert before["web-1"]["machine"] == {"kind": "vm", "host": "dl360-1", "vm": "web-1"}
    stack.lab("fault", "dl360-1", "os-crash")
    replaced(stack, "web-1", before["web-1"])
    assert stack.http.post("/api/v1/hosts/dl360-1/clear", json={"reason": "thought it was fine"}).status_code == 200
    deadline = time.monotonic() + 2 * Timing().hypervisor_probe_interval + 3  # two missed probes
    while stack.http.get("/api/v1/status").json()["hypervisors_down"] != ["dl360-1"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    lb = start(stack, "lb")["lb"]
    assert lb["machine"]["kind"] == "physical" and lb["generation"] == 1, lb
    log = [e["message"] for e in stack.http.get("/api/v1/events/log", params={"kind": "hypervisor"}).json()]
    assert any(m.startswith("hypervisor dl360-1 does not answer") and "new VMs avoid it" in m for m in log), log
    assert not [m for m in fence_events(stack, "lb") if "fencing" in m]
    no_double_runs(stack)


def test_hung_host_is_powered_off_through_its_bmc_before_the_restart(stack):
    host, _, evidence = fail_and_replace(stack, "oracle", "hang")
    assert evidence == f"BMC of {host} reads off after hard power-off"


def test_a_hung_hypervisor_is_not_asked_twice(stack):
    """A hypervisor that hangs does not answer the cross-check; fencing then
    goes to its host's BMC first instead of waiting out the hypervisor API's
    timeouts a second time."""
    host, after, evidence = fail_and_replace(stack, "web-1", "hang")
    assert host == "dl360-1" and after["machine"]["kind"] == "physical"
    assert evidence == "BMC of hypervisor host dl360-1 reads off after hard power-off"
    log = fence_events(stack, "web-1")
    assert any("cannot read the hypervisor of dl360-1" in m for m in log), log
    assert not any(m.endswith("level hypervisor") for m in log), log  # not waited for a second time


def test_partitioned_host_is_fenced_not_trusted(stack):
    host, _, evidence = fail_and_replace(stack, "bea-1", "partition")
    assert evidence == f"BMC of {host} reads off after hard power-off"


def test_power_loss_takes_the_bmc_too_so_the_fabric_fences(stack):
    """The fabric fence shuts the host's ports and revokes the persona's
    NFS root on the storage server; the replacement is granted it again."""
    host, _, evidence = fail_and_replace(stack, "bea-2", "power-loss")
    assert evidence.startswith("switch ports sw1:") and f"of {host} read admin down" in evidence
    assert "storage access revoked (nfs /export/personas/bea-2 from 10.0.3." in evidence
    revoked = [e for e in stack.http.get("/api/v1/events/log", params={"persona": "bea-2", "kind": "storage",
                                                                        "limit": 100}).json()]
    assert [e["message"].split()[0] for e in revoked][-2:] == ["revoked", "granted"]
    grants = stack.lab_json("truth")["storage"]["dl380"]["grants"]
    assert [g["path"] for g in grants if g["persona"] == "bea-2"] == ["/export/personas/bea-2"]


def test_a_stale_incarnation_that_wakes_up_is_refused_and_exits(stack):
    """Hung host with its BMC gone: fenced by shutting its ports; restarted
    elsewhere; then the host resumes. Its agent is told it is stale and
    exits within one heartbeat interval; the truth checker never saw two
    live incarnations (the old one was isolated)."""
    before = start(stack, "oracle")
    host = before["oracle"]["machine"]["host"]
    stack.lab("fault", host, "bmc-down")
    stack.lab("fault", host, "hang")
    after = replaced(stack, "oracle", before["oracle"])
    assert after["machine"]["host"] != host
    stack.lab("fault", host, "resume")
    deadline = time.monotonic() + 3
    old = None
    while time.monotonic() < deadline:
        old = next(i for i in stack.lab_json("truth")["incarnations"] if i["machine"] == host)
        if old["state"] == "dead":
            break
        time.sleep(0.1)
    assert old["state"] == "dead", old
    no_double_runs(stack)


def test_a_host_fenced_at_the_fabric_is_powered_off_before_it_is_cleared(stack):
    """Clearing a host whose ports were shut gives it its network back: its
    BMC must first confirm it off, or the old incarnation, still running,
    would be reachable next to its replacement."""
    before = start(stack, "bea-1")
    host = before["bea-1"]["machine"]["host"]
    stack.lab("fault", host, "bmc-down")
    stack.lab("fault", host, "hang")
    replaced(stack, "bea-1", before["bea-1"])
    stack.lab("fault", host, "resume")  # the old OS runs again, cut off by its ports
    r = stack.http.post(f"/api/v1/hosts/{host}/clear", json={"reason": "looks fine"})
    assert r.status_code == 409 and "BMC could not confirm it off" in r.json()["detail"], r.json()
    assert host in [h["name"] for h in stack.http.get("/api/v1/status").json()["hosts"]]  # still fenced
    stack.lab("fault", host, "bmc-up")
    r = stack.http.post(f"/api/v1/hosts/{host}/clear", json={"reason": "BMC back"})
    assert r.status_code == 200, r.json()
    assert next(b for b in stack.lab_json("status")["bmcs"] if b["host"] == host)["power"] == "off"
    no_double_runs(stack)


def test_no_evidence_blocks_until_an_operator_confirms(stack):
    """A host whose only fence level is its BMC, with the BMC gone: the
    persona is blocked, loudly, and restarts only on an operator's word."""
    host_doc = next(h for h in stack.doc["hosts"] if h["name"] == "v20z")
    host_doc["fencing"] = ["bmc"]
    assert stack.http.put("/api/v1/hosts/v20z", json=host_doc).status_code == 200
    before = start(stack, "lb", to="v20z")
    stack.lab("fault", "v20z", "power-loss")
    blocked = stack.wait("lb", lambda s: s["state"] == "blocked", 30)
    assert "no evidence could be had" in blocked["reason"]
    time.sleep(1)
    assert stack.status("lb")["state"] == "blocked"  # stays: never retargeted without evidence
    r = stack.http.post("/api/v1/personas/lb/confirm-dead", json={"reason": "v20z unplugged, checked in the rack"})
    assert r.status_code == 202
    after = replaced(stack, "lb", before["lb"])
    assert after["machine"]["host"] != "v20z"
    audit = stack.http.get("/api/v1/events/log", params={"persona": "lb", "kind": "audit"}).json()
    assert any("v20z unplugged" in e["message"] for e in audit)
    no_double_runs(stack)


def test_a_dead_switch_is_routed_around_through_each_hosts_second_nic(stack):
    """sw1 dies (management and forwarding): the servers trunked through it
    are cut off, fenced through their BMCs and started again with their
    trunks on the NIC each host has on sw2, keeping MAC and IP; the VMs of
    the hypervisor host keep running as its uplink moves to sw2. When sw1
    answers again voe marks it up."""
    from tests.e2e import snmp

    before = start(stack, "oracle", "bea-1", "web-1")
    assert before["web-1"]["machine"]["kind"] == "vm"
    stack.lab("fault", "sw1", "down")
    after = {n: replaced(stack, n, before[n]) for n in ("oracle", "bea-1")}
    deadline = time.monotonic() + 10  # two missed probes in a row: down (placement avoided it from the first)
    while (fabric := stack.http.get("/api/v1/fabric").json())["switches_down"] != ["sw1"]:
        assert time.monotonic() < deadline, fabric["switches_down"]
        time.sleep(0.2)
    sw2 = next(s for s in stack.doc["switches"] if s["name"] == "sw2")["settings"]["port"]
    for name, st in after.items():
        trunk = [c for c in fabric["cables"] if c["host"] == st["machine"]["host"] and c["trunk"]]
        assert [c["switch"] for c in trunk] == ["sw2"], trunk
        tagged, untagged, pvid = snmp.vlans_on_port(sw2, int(trunk[0]["port"]), [100, 200, 300])
        assert (tagged, untagged, pvid) == ({200}, {300}, 300)  # back tagged, storage native: as on sw1
        assert st["agent"]["addresses"] == before[name]["agent"]["addresses"]
    web = stack.status("web-1")
    assert web["generation"] == before["web-1"]["generation"] and web["state"] == "running"
    uplink = next(c for c in fabric["cables"] if c["host"] == "dl360-1" and c["trunk"])
    assert uplink["switch"] == "sw2"
    assert snmp.vlans_on_port(sw2, int(uplink["port"]), [100, 200, 300])[0] >= {100, 200}  # web-1's
    no_double_runs(stack)
    stack.lab("fault", "sw1", "up")
    deadline = time.monotonic() + 10
    while stack.http.get("/api/v1/fabric").json()["switches_down"]:
        assert time.monotonic() < deadline, "sw1 is not marked up again"
        time.sleep(0.2)


def scrape(stack) -> dict[tuple[str, tuple], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = stack.http.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def test_metrics_count_a_failover_and_time_its_phases(stack):
    """What an on-call's dashboard reads: the failover counted, each phase
    of it timed, the BMC calls that fenced it counted by driver and outcome."""
    assert httpx.get(f"{stack.url}/metrics", verify=stack.trusting()).status_code == 401  # a scraper needs a token
    before = scrape(stack)
    assert before[("voe_leader", ())] == 1
    assert before.get(("voe_failovers_total", ()), 0) == 0
    fail_and_replace(stack, "oracle", "hang")
    after = scrape(stack)
    assert after[("voe_failovers_total", ())] == 1
    for phase in ("detection", "fencing", "restart", "total"):
        assert after[("voe_failover_seconds_count", (("phase", phase),))] == 1, phase
        assert after[("voe_failover_seconds_sum", (("phase", phase),))] > 0, phase
    total = after[("voe_failover_seconds_sum", (("phase", "total"),))]
    assert total >= after[("voe_failover_seconds_sum", (("phase", "restart"),))]
    assert total >= after[("voe_failover_seconds_sum", (("phase", "detection"),))] - 0.01  # counts from the last beat
    assert after[("voe_start_seconds_count", ())] == 2  # the first start and the one elsewhere
    assert after[("voe_transitions_total", (("from_state", "fencing"), ("to_state", "fenced")))] == 1
    assert after[("voe_personas", (("state", "running"),))] == 1
    power_ok = (("concern", "power"), ("driver", "IpmiPower"), ("kind", "write"), ("outcome", "ok"))
    assert after[("voe_driver_calls_total", power_ok)] >= 3  # a power-on, the fence's power-off, a power-on
    assert after[("voe_heartbeats_received_total", ())] > 0
    assert after[("voe_reconciler_tick_seconds_count", ())] > before[("voe_reconciler_tick_seconds_count", ())]
