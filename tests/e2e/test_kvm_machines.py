"""Real machines: QEMU servers of the lab network-boot personas through
voe's whole chain (dnsmasq, iPXE, the controller's script, kernel and
initrd, an NFS root from nfs-ganesha), and what runs is checked from
inside each guest: the report its agent prints on the serial console."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.kvm import kvm_stack, persona_template

pytestmark = pytest.mark.timeout(1200)

BOOT_PATIENCE = 420.0  # seconds: under software emulation (no VT-x here) a boot takes minutes


@pytest.fixture
def stack(tmp_path):
    with kvm_stack(tmp_path) as s:
        yield s


def system_report(stack, tmp_path, host: str, generation: int) -> dict:
    """What the agent of ``generation`` reported on ``host``'s serial console."""
    serial = (tmp_path / "lab" / "hosts" / host / "serial.log").read_text(errors="replace")
    assert f"voe.generation={generation} " in serial, f"{host} did not boot generation {generation}"
    found = re.findall(r"voe-agent \S+ system: (\{.*\})", serial)
    assert found, f"the agent on {host} reported nothing on the console:\n" + serial[-3000:]
    return json.loads(found[-1])


def assert_runs_as_itself(report: dict, persona: dict) -> None:
    """The root is the persona's NFS export; each vNIC is an interface
    with the persona's MAC and address, the tagged one a VLAN interface."""
    assert report["root"]["type"] in ("nfs", "nfs4"), report["root"]
    assert report["root"]["source"] == persona["image"]["nfs_root"], report["root"]
    by_mac = {i["mac"]: i for i in report["interfaces"]}
    for v in persona["vnics"]:
        iface = by_mac.get(v["mac"])
        assert iface is not None, f"no interface with {v['mac']} in {report['interfaces']}"
        assert any(a.split("/")[0] == v["ip"] for a in iface["addresses"]), (v, iface)
    back = next(v for v in persona["vnics"] if v["network"] == "back")
    assert by_mac[back["mac"]]["vlan"] == 200


def running(stack, persona: str, generation: int) -> str:
    s = stack.wait(persona, lambda s: s["state"] == "running" and s["generation"] == generation,
                   timeout=BOOT_PATIENCE)
    status = stack.cli("persona", "status", persona).stdout  # what the guest kernel reported, as voe shows it
    vnics = stack.http.get(f"/api/v1/personas/{persona}").json()["vnics"]
    back = "back: " + next(v["ip"] for v in vnics if v["network"] == "back")
    assert back in status and "VLAN 200" in status, status
    return s["machine"]["host"]


def test_a_persona_boots_moves_and_fails_over_on_kvm_servers_keeping_its_identity(stack, tmp_path):
    """One persona through a start, a move, a hung server and a server
    whose power is lost: four real boots, one identity."""
    r = stack.http.post("/api/v1/templates", json={"name": "debian", "source": str(persona_template()),
                                                  "description": "Debian bookworm with the voe agent"})
    assert r.status_code == 201, r.text
    r = stack.http.post("/api/v1/templates/debian/clone", json={"persona": {
        "name": "web", "cpus": 1, "memory": "256MiB",
        "vnics": [{"network": "storage", "boot": True}, {"network": "back"}]}})
    assert r.status_code == 201, r.text
    persona = stack.http.get("/api/v1/personas/web").json()
    boot_ip = next(v["ip"] for v in persona["vnics"] if v["boot"])

    began = time.monotonic()
    assert stack.cli("persona", "start", "web", "--no-wait").returncode == 0
    first = running(stack, "web", 1)
    print(f"web booted on {first} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(system_report(stack, tmp_path, first, 1), persona)
    dnsmasq = (tmp_path / "lab" / "dnsmasq.log").read_text()
    boot_mac = next(n["mac"] for h in stack.doc["hosts"] if h["name"] == first for n in h["nics"])
    assert re.search(rf"DHCPACK\(labbr0\) {re.escape(boot_ip)} {re.escape(boot_mac)}", dnsmasq), dnsmasq[-2000:]

    other = next(h["name"] for h in stack.doc["hosts"] if h.get("machine") and h["name"] != first)
    began = time.monotonic()
    assert stack.cli("persona", "move", "web", "--to", other, "--no-wait").returncode == 0
    assert running(stack, "web", 2) == other
    print(f"web moved to {other} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(system_report(stack, tmp_path, other, 2), persona)

    began = time.monotonic()
    stack.lab("fault", other, "hang")  # its vCPUs stop: the agent falls silent, the BMC still answers
    assert running(stack, "web", 3) == first
    print(f"web failed over from a hung {other} to {first} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(system_report(stack, tmp_path, first, 3), persona)

    began = time.monotonic()
    stack.lab("fault", first, "power-loss")  # QEMU and its BMC gone: fenced at its switch ports instead
    assert running(stack, "web", 4) == other
    print(f"web failed over from {first}, its power lost, to {other} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(system_report(stack, tmp_path, other, 4), persona)
    truth = stack.lab_json("truth")
    assert truth["violations"] == [] and truth["samples"] > 0
    live = [(i["generation"], i["machine"]) for i in truth["incarnations"] if i["state"] != "dead"]
    assert live == [(4, other)], truth["incarnations"]  # read from QEMU: the others' processes are gone
