"""A VM persona on real KVM through libvirt: the lab's hypervisor host is
this machine's libvirtd, reached by voe's ``libvirt`` driver exactly as a
KVM host anywhere. The VM network-boots through the same chain as a
server, its NICs join the host's Open vSwitch bridge tagged with their
VLAN, and the host's uplink trunks into the lab switch, which forwards
what voe configured on that port. Reach is shown by packets between the
guests' probes, at each place the persona runs."""

from __future__ import annotations

import time

import pytest

from tests.e2e.kvm import kvm_stack, persona_template, san_template
from tests.e2e.test_kvm_machines import (
    BOOT_PATIENCE,
    assert_reach_by_packets,
    assert_runs_as_itself,
    clone,
    running,
    system_report,
    template,
)

pytestmark = [pytest.mark.timeout(1200), pytest.mark.machines]
HV = "kvm-hv"


@pytest.fixture
def stack(tmp_path):
    with kvm_stack(tmp_path) as s:
        yield s


def assert_reaches(stack, a: str, b: str) -> None:
    """``a``'s probe arrives at ``b`` on its back-network address."""
    back = next(v["ip"] for v in stack.http.get(f"/api/v1/personas/{b}").json()["vnics"] if v["network"] == "back")
    said = stack.lab("reach", a, b, check=False).stdout
    print(said.strip())
    assert said.startswith("yes") and f"{back} arrived on" in said, said


def incarnation(stack, persona: str, generation: int) -> dict:
    return next(i for i in stack.status(persona)["incarnations"] if i["generation"] == generation)


def test_a_vm_persona_on_libvirt_reaches_a_server_moves_to_one_and_back_and_survives_its_hosts_crash(stack, tmp_path):
    """web prefers a VM, db a server: web's VM on the libvirt host and db
    from its LUN on a KVM server exchange packets on VLAN 200; web moves
    to a server and back to a VM keeping MAC and IP, reached each time;
    then the hypervisor host's OS crashes, voe fences it through its BMC
    and web comes back on a server, reached again."""
    template(stack, "debian", str(persona_template()), "linux-nfs")
    template(stack, "debian-san", str(san_template(stack.boot_url)), "iscsi")
    web = clone(stack, "debian", "web", ["storage", "back"], prefer=("vm", "physical"))
    db = clone(stack, "debian-san", "db", ["storage", "back"])

    began = time.monotonic()
    assert stack.cli("persona", "start", "web", "--no-wait").returncode == 0
    assert stack.cli("persona", "start", "db", "--no-wait").returncode == 0
    assert running(stack, "web", 1) == HV
    db_host = running(stack, "db", 1)
    print(f"web booted as a VM on {HV} and db on {db_host} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(stack, system_report(stack, tmp_path, HV, 1, vm="web"), web, vm=True)
    assert_reach_by_packets(stack, web, db, db_host)  # and lost once db's port drops VLAN 200
    assert_reaches(stack, "db", "web")

    server = next(h["name"] for h in stack.doc["hosts"] if h.get("machine") and h["name"] != db_host)
    began = time.monotonic()
    assert stack.cli("persona", "move", "web", "--to", server, "--no-wait").returncode == 0
    assert running(stack, "web", 2) == server
    print(f"web moved from its VM to {server} in {time.monotonic() - began:.0f} s")
    assert "shut off (destroyed)" in incarnation(stack, "web", 1)["evidence"]  # libvirt's word, after virDomainDestroy
    assert_runs_as_itself(stack, system_report(stack, tmp_path, server, 2), web)
    assert_reaches(stack, "db", "web")

    began = time.monotonic()
    assert stack.cli("persona", "move", "web", "--to", HV, "--no-wait").returncode == 0
    assert running(stack, "web", 3) == HV
    print(f"web moved back to a VM on {HV} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(stack, system_report(stack, tmp_path, HV, 3, vm="web"), web, vm=True)
    assert_reaches(stack, "db", "web")

    began = time.monotonic()
    stack.lab("fault", HV, "os-crash")  # libvirtd and its QEMUs gone; the host's BMC still answers
    server = running(stack, "web", 4)
    assert server != HV
    print(f"web restarted on {server} after {HV}'s OS crashed in {time.monotonic() - began:.0f} s")
    evidence = incarnation(stack, "web", 3)["evidence"]
    assert HV in evidence and "off" in evidence, evidence  # the host fenced through its BMC
    assert next(b["power"] for b in stack.lab_json("status")["bmcs"] if b["host"] == HV) == "off"
    assert_reaches(stack, "web", "db")
    assert_reaches(stack, "db", "web")
    truth = stack.lab_json("truth")
    assert truth["violations"] == [] and truth["samples"] > 0
    live = sorted((i["persona"], i["generation"]) for i in truth["incarnations"] if i["state"] != "dead")
    assert live == [("db", 1), ("web", 4)], truth["incarnations"]
    assert stack.wait("web", lambda s: s["state"] == "running", timeout=BOOT_PATIENCE)["generation"] == 4

