"""Real machines: QEMU servers of the lab network-boot personas through
voe's whole chain, and what runs is checked from inside the guest."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.kvm import kvm_stack, persona_template

pytestmark = pytest.mark.timeout(900)

BOOT_PATIENCE = 420.0  # seconds: under software emulation (no VT-x here) a boot takes minutes


@pytest.fixture
def stack(tmp_path):
    with kvm_stack(tmp_path) as s:
        yield s


def system_report(serial: str) -> dict:
    """The agent's report of the running system, from the serial console."""
    found = re.findall(r"voe-agent \S+ system: (\{.*\})", serial)
    assert found, "the agent reported nothing on the console:\n" + serial[-3000:]
    return json.loads(found[-1])


def test_an_nfs_root_persona_boots_on_a_kvm_server_through_voe(stack, tmp_path):
    template = persona_template()
    r = stack.http.post("/api/v1/templates", json={"name": "debian", "source": str(template),
                                                  "description": "Debian bookworm with the voe agent"})
    assert r.status_code == 201, r.text
    r = stack.http.post("/api/v1/templates/debian/clone", json={"persona": {
        "name": "web", "cpus": 1, "memory": "256MiB",
        "vnics": [{"network": "storage", "boot": True}, {"network": "back"}]}})
    assert r.status_code == 201, r.text
    persona = stack.http.get("/api/v1/personas/web").json()
    started = time.monotonic()
    assert stack.cli("persona", "start", "web", "--no-wait").returncode == 0
    s = stack.wait("web", lambda s: s["state"] == "running", timeout=BOOT_PATIENCE)
    host = s["machine"]["host"]
    serial = (tmp_path / "lab" / "hosts" / host / "serial.log").read_text(errors="replace")
    report = system_report(serial)
    root = persona["image"]["nfs_root"]
    assert report["root"]["type"] in ("nfs", "nfs4") and report["root"]["source"] == root, report["root"]
    by_mac = {i["mac"]: i for i in report["interfaces"]}
    for v in persona["vnics"]:
        iface = by_mac.get(v["mac"])
        assert iface is not None, f"no interface with {v['mac']} in {report['interfaces']}"
        assert any(a.split("/")[0] == v["ip"] for a in iface["addresses"]), (v, iface)
    back = next(v for v in persona["vnics"] if v["network"] == "back")
    assert by_mac[back["mac"]]["vlan"] == 200
    dnsmasq = (tmp_path / "lab" / "dnsmasq.log").read_text()
    boot_mac = next(n["mac"] for h in stack.doc["hosts"] if h["name"] == host for n in h["nics"])
    assert re.search(rf"DHCPACK\(labbr0\) {re.escape(next(v['ip'] for v in persona['vnics'] if v['boot']))} "
                     rf"{re.escape(boot_mac)}", dnsmasq), dnsmasq[-2000:]
    print(f"web booted on {host} in {time.monotonic() - started:.0f} s")
