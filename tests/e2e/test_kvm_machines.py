"""Real machines: QEMU servers of the lab network-boot personas through
voe's whole chain (dnsmasq, iPXE, the controller's script, then either
its kernel and initrd and an NFS root from nfs-ganesha, or iPXE's sanboot
of a LUN from tgt), and what runs is checked from inside each guest: the
report its agent prints on the serial console."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.kvm import kvm_stack, persona_template, san_template
from voe.domain.models import Host, Switch
from voe.domain.ports import PortConfig
from voe.drivers.factory import power_for_host, switch_for

pytestmark = pytest.mark.timeout(1200)

BOOT_PATIENCE = 420.0  # seconds: under software emulation (no VT-x here) a boot takes minutes


@pytest.fixture
def stack(tmp_path):
    with kvm_stack(tmp_path) as s:
        yield s


def system_report(stack, tmp_path, host: str, generation: int, vm: str | None = None) -> dict:
    """What the agent of ``generation`` reported on the serial console of
    ``host`` (a server's), or of its VM ``vm`` (the log libvirt keeps)."""
    lab = tmp_path / "lab" / "hosts" / host
    serial = (lab / "serial.log" if vm is None else lab / "log" / "qemu" / f"{vm}-console.log").read_text(errors="replace")
    assert f" generation {generation} starting" in serial, f"{host}'s agent did not start generation {generation}"
    found = re.findall(r"voe-agent \S+ system: (\{.*\})", serial)
    assert found, f"the agent on {host} reported nothing on the console:\n" + serial[-3000:]
    return json.loads(found[-1])


def assert_runs_as_itself(report: dict, persona: dict, vm: bool = False) -> None:
    """The root is the persona's NFS export; each vNIC is an interface
    with the persona's MAC and address, the tagged one a VLAN interface
    (in a VM, a NIC of its own that the hypervisor tags)."""
    assert report["root"]["type"] in ("nfs", "nfs4"), report["root"]
    assert report["root"]["source"] == persona["image"]["nfs_root"], report["root"]
    assert_has_its_interfaces(report, persona, vm)


def assert_san_booted_as_itself(report: dict, persona: dict) -> None:
    """The root is a disk of an iSCSI session to the persona's target,
    logged in as the persona's initiator, the one the firmware's iBFT
    carries; and the persona's interfaces, as for any persona."""
    iqn = persona["san"]["initiator_iqn"]
    assert report["ibft_initiator"] == iqn, report
    session = next((s for s in report["iscsi"] if s["target"] == persona["image"]["target_iqn"]), None)
    assert session is not None and session["initiator"] == iqn, report["iscsi"]
    assert report["root"]["type"] == "ext4", report["root"]
    assert report["root"]["source"].removeprefix("/dev/").rstrip("0123456789") in session["disks"], report
    assert_has_its_interfaces(report, persona)


def assert_has_its_interfaces(report: dict, persona: dict, vm: bool = False) -> None:
    by_mac = {i["mac"]: i for i in report["interfaces"]}
    for v in persona["vnics"]:
        iface = by_mac.get(v["mac"])
        assert iface is not None, f"no interface with {v['mac']} in {report['interfaces']}"
        assert any(a.split("/")[0] == v["ip"] for a in iface["addresses"]), (v, iface)
    back = next(v for v in persona["vnics"] if v["network"] == "back")
    assert by_mac[back["mac"]]["vlan"] == (None if vm else 200)


def running(stack, persona: str, generation: int) -> str:
    """The host ``generation`` of ``persona`` runs on, once its agent is ready."""
    s = stack.wait(persona, lambda s: s["state"] == "running" and s["generation"] == generation,
                   timeout=BOOT_PATIENCE)
    status = stack.cli("persona", "status", persona).stdout  # what the guest kernel reported, as voe shows it
    vnics = stack.http.get(f"/api/v1/personas/{persona}").json()["vnics"]
    back = "back: " + next(v["ip"] for v in vnics if v["network"] == "back")
    assert back in status and ("VLAN 200" in status or s["machine"]["kind"] == "vm"), status
    return s["machine"]["host"]


def clone(stack, template: str, source: str, boot: str, persona: str, prefer: tuple[str, ...] = ("physical",)) -> dict:
    r = stack.http.post("/api/v1/templates", json={"name": template, "source": source, "boot": boot,
                                                  "description": "Debian bookworm with the voe agent"})
    assert r.status_code == 201, r.text
    r = stack.http.post(f"/api/v1/templates/{template}/clone", json={"persona": {
        "name": persona, "cpus": 1, "memory": "256MiB", "policy": {"prefer": list(prefer)},
        "vnics": [{"network": "storage", "boot": True}, {"network": "back"}]}})
    assert r.status_code == 201, r.text
    return stack.http.get(f"/api/v1/personas/{persona}").json()


def assert_dhcp_answered(stack, tmp_path, persona: dict, host: str) -> None:
    """dnsmasq's own log: the server's boot NIC got the persona's boot address."""
    dnsmasq = (tmp_path / "lab" / "dnsmasq.log").read_text()
    boot_ip = next(v["ip"] for v in persona["vnics"] if v["boot"])
    boot_mac = next(n["mac"] for h in stack.doc["hosts"] if h["name"] == host for n in h["nics"])
    assert re.search(rf"DHCPACK\(labbr0\) {re.escape(boot_ip)} {re.escape(boot_mac)}", dnsmasq), dnsmasq[-2000:]


def assert_reach_by_packets(stack, a: dict, b: dict, b_host: str) -> None:
    """``a``'s probe reaches ``b`` on its VLAN-200 interface; once ``b``'s
    switch port no longer carries that VLAN, the same probe is lost, while
    the untagged network still carries its own."""
    back = next(v["ip"] for v in b["vnics"] if v["network"] == "back")
    storage = next(v["ip"] for v in b["vnics"] if v["network"] == "storage")
    said = stack.lab("reach", a["name"], b["name"], check=False).stdout
    print(said.strip())
    assert said.startswith("yes") and re.search(rf"{re.escape(back)} arrived on \S+ \(VLAN 200\)", said), said
    server = Host.model_validate(next(h for h in stack.doc["hosts"] if h["name"] == b_host))
    switch = Switch.model_validate(next(s for s in stack.doc["switches"] if s["name"] == server.nics[0].switch))
    ports = switch_for(switch)
    kept = ports.read_port(server.nics[0].port)
    assert kept.tagged == {200}, kept
    ports.configure_port(server.nics[0].port, PortConfig.trunk(frozenset(), native_vlan=kept.native_vlan))
    said = stack.lab("reach", a["name"], b["name"], check=False).stdout
    print(said.strip())
    assert f"{back} (VLAN 200): lost" in said and f"{storage} arrived on" in said, said
    ports.configure_port(server.nics[0].port, kept)
    ports.close()


def assert_a_stranger_gets_no_boot(stack, tmp_path, host: str) -> None:
    """A server no persona is given to, put on the boot network and
    network-booted through its BMC as an operator would: dnsmasq ignores
    its MAC, so its firmware gets no address and nothing to boot."""
    server = Host.model_validate(next(h for h in stack.doc["hosts"] if h["name"] == host))
    switch = Switch.model_validate(next(s for s in stack.doc["switches"] if s["name"] == server.nics[0].switch))
    boot_vlan = next(n["vlan"] for n in stack.doc["networks"] if n["name"] == "storage")
    ports = switch_for(switch)
    assert ports.read_port(server.nics[0].port).vlans() == frozenset(), "voe left VLANs on a port nothing runs behind"
    ports.configure_port(server.nics[0].port, PortConfig.access(boot_vlan))
    ports.close()
    bmc = power_for_host(server)
    bmc.set_boot_device("pxe")
    bmc.power_on()
    log = tmp_path / "lab" / "dnsmasq.log"
    ignored = f"DHCPDISCOVER(labbr0) {server.nics[0].mac} ignored"
    deadline = time.monotonic() + 120
    while ignored not in log.read_text():
        assert time.monotonic() < deadline, f"dnsmasq never heard {host}:\n" + log.read_text()[-2000:]
        time.sleep(0.5)
    bmc.power_off()
    since = log.read_text().split(ignored, 1)[1]
    answered = [line for line in since.splitlines() if server.nics[0].mac in line
                and ignored not in line and "RTR-SOLICIT" not in line]  # the IPv6 router answers anyone: no boot
    assert answered == [], since  # nothing offered, only ignored again


def test_a_persona_boots_moves_and_fails_over_on_kvm_servers_keeping_its_identity(stack, tmp_path):
    """An NFS-root persona and a SAN-booted one side by side; then the
    first through a move, a hung server and a server whose power is lost:
    five real boots, two identities."""
    persona = clone(stack, "debian", str(persona_template()), "linux-nfs", "web")
    db = clone(stack, "debian-san", str(san_template(stack.boot_url)), "iscsi", "db")

    began = time.monotonic()
    assert stack.cli("persona", "start", "web", "--no-wait").returncode == 0
    assert stack.cli("persona", "start", "db", "--no-wait").returncode == 0
    first = running(stack, "web", 1)
    san_host = running(stack, "db", 1)
    print(f"web booted on {first} and db from its LUN on {san_host} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(system_report(stack, tmp_path, first, 1), persona)
    assert_san_booted_as_itself(system_report(stack, tmp_path, san_host, 1), db)
    assert_dhcp_answered(stack, tmp_path, persona, first)
    assert_dhcp_answered(stack, tmp_path, db, san_host)
    assert_reach_by_packets(stack, persona, db, san_host)
    assert stack.cli("persona", "stop", "db", "--no-wait").returncode == 0  # its server is the one web moves to
    stack.wait("db", lambda s: s["state"] == "stopped", timeout=BOOT_PATIENCE)
    assert_a_stranger_gets_no_boot(stack, tmp_path, san_host)

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
