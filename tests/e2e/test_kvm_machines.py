"""Real machines: QEMU servers of the lab network-boot personas through
voe's whole chain (dnsmasq on each boot network, iPXE, the controller's
script, then either its kernel and initrd and an NFS root from
nfs-ganesha, or iPXE's sanboot of a LUN from tgt), and what runs is
checked from inside each guest: the report its agent prints on the serial
console. The personas are the review's application, one of each tier, on
the review's networks; what reaches what is shown by packets."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.e2e.kvm import kvm_stack, persona_template, san_template
from voe.domain.models import Host, Switch
from voe.domain.ports import PortConfig
from voe.drivers.factory import power_for_host, switch_for

pytestmark = [pytest.mark.timeout(1200), pytest.mark.machines]

BOOT_PATIENCE = 420.0  # seconds: under software emulation (no VT-x here) a boot takes minutes
CONSOLE_PATIENCE = 60.0  # seconds: for the agent's lines to reach a console once it beat ready


@pytest.fixture
def stack(tmp_path):
    with kvm_stack(tmp_path) as s:
        yield s


def console_log(tmp_path, host: str, vm: str | None = None) -> Path:
    """Where the lab keeps the serial console of ``host`` (a server's), or
    of its VM ``vm`` (the log libvirt keeps)."""
    lab = tmp_path / "lab" / "hosts" / host
    return lab / "serial.log" if vm is None else lab / "log" / "qemu" / f"{vm}-console.log"


def system_report(stack, tmp_path, host: str, generation: int, vm: str | None = None) -> dict:
    """What the agent of ``generation`` reported on the serial console of
    ``host`` (a server's), or of its VM ``vm`` (the log libvirt keeps).
    Its lines reach the console through the journal, which may start after
    the agent and so print them after it beat ready: they are waited for."""
    log = console_log(tmp_path, host, vm)
    deadline = time.monotonic() + CONSOLE_PATIENCE
    while True:
        serial = log.read_text(errors="replace") if log.exists() else ""
        began = serial.rfind(f" generation {generation} starting")
        found = re.findall(r"voe-agent \S+ system: (\{.*\})", serial[began:]) if began >= 0 else []
        if found:
            return json.loads(found[-1])
        if time.monotonic() > deadline:
            said = "did not start generation" if began < 0 else "reported nothing on the console for generation"
            raise AssertionError(f"the agent on {host} {said} {generation}:\n" + serial[-3000:])
        time.sleep(0.5)


def assert_runs_as_itself(stack, report: dict, persona: dict, vm: bool = False) -> None:
    """The root is the persona's NFS export; each vNIC is an interface
    with the persona's MAC and address, a tagged one a VLAN interface
    (in a VM, a NIC of its own that the hypervisor tags)."""
    assert report["root"]["type"] in ("nfs", "nfs4"), report["root"]
    assert report["root"]["source"] == persona["image"]["nfs_root"], report["root"]
    assert_has_its_interfaces(stack, report, persona, vm)


def assert_san_booted_as_itself(stack, report: dict, persona: dict) -> None:
    """The root is a disk of an iSCSI session to the persona's target,
    logged in as the persona's initiator, the one the firmware's iBFT
    carries; and the persona's interfaces, as for any persona."""
    iqn = persona["san"]["initiator_iqn"]
    assert report["ibft_initiator"] == iqn, report
    session = next((s for s in report["iscsi"] if s["target"] == persona["image"]["target_iqn"]), None)
    assert session is not None and session["initiator"] == iqn, report["iscsi"]
    assert report["root"]["type"] == "ext4", report["root"]
    assert report["root"]["source"].removeprefix("/dev/").rstrip("0123456789") in session["disks"], report
    assert_has_its_interfaces(stack, report, persona)


def assert_has_its_interfaces(stack, report: dict, persona: dict, vm: bool = False) -> None:
    """On a server the boot network comes untagged and the others on VLAN
    interfaces; in a VM each vNIC is a NIC of its own, which the
    hypervisor tags. Wherever it runs, the agent's beats come before the
    persona's own work on the CPU."""
    assert report["agent_nice"] < 0, report  # its unit puts its beats before the persona's own work
    vlans = {n["name"]: n["vlan"] for n in stack.doc["networks"]}
    by_mac = {i["mac"]: i for i in report["interfaces"]}
    for v in persona["vnics"]:
        iface = by_mac.get(v["mac"])
        assert iface is not None, f"no interface with {v['mac']} in {report['interfaces']}"
        assert any(a.split("/")[0] == v["ip"] for a in iface["addresses"]), (v, iface)
        assert iface["vlan"] == (None if vm or v["boot"] else vlans[v["network"]]), (v, iface)


def running(stack, persona: str, generation: int) -> str:
    """The host ``generation`` of ``persona`` runs on, once its agent is ready."""
    s = stack.wait(persona, lambda s: s["state"] == "running" and s["generation"] == generation,
                   timeout=BOOT_PATIENCE)
    status = stack.cli("persona", "status", persona).stdout  # what the guest kernel reported, as voe shows it
    vnics = stack.http.get(f"/api/v1/personas/{persona}").json()["vnics"]
    vlans = {n["name"]: n["vlan"] for n in stack.doc["networks"]}
    for v in vnics:
        assert f"{v['network']}: {v['ip']}" in status, status
        if not v["boot"] and s["machine"]["kind"] != "vm":
            assert f"VLAN {vlans[v['network']]}" in status, status
    return s["machine"]["host"]


def template(stack, name: str, source: str, boot: str) -> None:
    r = stack.http.post("/api/v1/templates", json={"name": name, "source": source, "boot": boot,
                                                  "description": "Debian bookworm with the voe agent"})
    assert r.status_code == 201, r.text


def clone(stack, template: str, persona: str, networks: list[str], prefer: tuple[str, ...] = ("physical",)) -> dict:
    """A persona of ``template`` with a vNIC on each of ``networks``, booting from the first."""
    r = stack.http.post(f"/api/v1/templates/{template}/clone", json={"persona": {
        "name": persona, "cpus": 1, "memory": "256MiB", "policy": {"prefer": list(prefer)},
        "vnics": [{"network": n, "boot": i == 0} for i, n in enumerate(networks)]}})
    assert r.status_code == 201, r.text
    return stack.http.get(f"/api/v1/personas/{persona}").json()


def assert_dhcp_answered(stack, tmp_path, persona: dict, host: str) -> None:
    """dnsmasq's own log: the server's boot NIC got the persona's boot
    address, on the lab's segment of the persona's boot network."""
    dnsmasq = (tmp_path / "lab" / "dnsmasq.log").read_text()
    boot_ip = next(v["ip"] for v in persona["vnics"] if v["boot"])
    boot_mac = next(n["mac"] for h in stack.doc["hosts"] if h["name"] == host for n in h["nics"])
    assert re.search(rf"DHCPACK\(labbr\d\) {re.escape(boot_ip)} {re.escape(boot_mac)}", dnsmasq), dnsmasq[-2000:]


def probe(stack, a: str, b: str) -> str:
    said = stack.lab("reach", a, b, check=False).stdout
    print(said.strip())
    if "could not be run" in said:  # why, as the two guests' consoles and voe's events tell it
        for persona in (a, b):
            machine = stack.status(persona).get("machine") or {}
            host = machine.get("host")
            serial = console_log(stack.file.parent, str(host), persona if machine.get("kind") == "vm" else None)
            tail = serial.read_text(errors="replace").splitlines()[-25:] if serial.exists() else ["no console log"]
            said += f"\n{persona} on {host}, its console's last lines:\n" + "\n".join(tail)
            said += f"\n{persona}'s last events:\n" + stack.last_events(persona, 15)
    return said


def address(persona: dict, network: str) -> str:
    return next(v["ip"] for v in persona["vnics"] if v["network"] == network)


def assert_arrives(stack, a: dict, b: dict, network: str, vlan: int | None) -> None:
    """``a``'s probe reaches ``b``'s address on ``network``, on its interface of ``vlan``."""
    said = probe(stack, a["name"], b["name"])
    where = f"VLAN {vlan}" if vlan else "untagged"
    assert said.startswith("yes") and re.search(rf"{re.escape(address(b, network))} arrived on \S+ \({where}\)",
                                                said), said


def switch_of(stack, host: str):
    server = Host.model_validate(next(h for h in stack.doc["hosts"] if h["name"] == host))
    switch = Switch.model_validate(next(s for s in stack.doc["switches"] if s["name"] == server.nics[0].switch))
    return server, switch_for(switch)


def assert_reach_by_packets(stack, a: dict, b: dict, b_host: str) -> None:
    """``a``'s probe reaches ``b`` on its VLAN-200 interface; once ``b``'s
    switch port no longer carries that VLAN, the same probe is lost, while
    the untagged network still carries its own."""
    assert_arrives(stack, a, b, "back", 200)
    server, ports = switch_of(stack, b_host)
    kept = ports.read_port(server.nics[0].port)
    assert kept.tagged == {200}, kept
    ports.configure_port(server.nics[0].port, PortConfig.trunk(frozenset(), native_vlan=kept.native_vlan))
    said = probe(stack, a["name"], b["name"])
    assert f"{address(b, 'back')} (VLAN 200): lost" in said and f"{address(b, 'storage')} arrived on" in said, said
    ports.configure_port(server.nics[0].port, kept)
    ports.close()


def assert_a_stranger_gets_no_boot(stack, tmp_path, host: str) -> None:
    """A server no persona is given to, put on the boot network and
    network-booted through its BMC as an operator would: dnsmasq ignores
    its MAC, so its firmware gets no address and nothing to boot."""
    server, ports = switch_of(stack, host)
    boot_vlan = next(n["vlan"] for n in stack.doc["networks"] if n["name"] == "storage")
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


REVIEW = {  # examples/review-lab.yaml's application, one of each tier: template, networks (the first boots)
    "oracle": ("debian-san", ["storage", "back"]),
    "bea": ("debian", ["storage", "back"]),
    "web": ("debian", ["front", "back"]),
    "lb": ("debian", ["front"]),
}
DEPENDS = {"lb": ["web"], "web": ["bea"], "bea": ["oracle"]}


def test_the_review_application_boots_reaches_by_packets_moves_and_fails_over_on_kvm_servers(stack, tmp_path):
    """The review's application started as a group on KVM servers: oracle
    SAN-booted from its LUN, the others from NFS roots, web and lb booting
    from the front network and the others from storage. Packets show web
    reaching bea and bea reaching oracle on the back VLAN, and lb reaching
    no address of oracle; they follow the switch's VLANs. web moves to
    another server; then web's server hangs while oracle's loses its
    power, and both come back elsewhere as themselves. Last, with no
    controller left to fail anything over, a switch that is down carries
    nothing: seven real boots in all."""
    template(stack, "debian", str(persona_template()), "linux-nfs")
    template(stack, "debian-san", str(san_template(stack.boot_url)), "iscsi")
    p = {name: clone(stack, t, name, networks) for name, (t, networks) in REVIEW.items()}
    r = stack.http.post("/api/v1/groups", json={"name": "sample-app", "members": list(REVIEW), "depends": DEPENDS})
    assert r.status_code == 201, r.text

    began = time.monotonic()
    started = stack.cli("group", "start", "sample-app", "--timeout", str(4 * BOOT_PATIENCE), timeout=5 * BOOT_PATIENCE)
    print(started.stdout.strip().splitlines()[-1])
    assert started.returncode == 0, started.stdout + started.stderr
    on = {name: running(stack, name, 1) for name in REVIEW}
    print(f"sample-app booted in dependency order on {on} in {time.monotonic() - began:.0f} s")
    ready = {name: next(i["ready_at"] for i in stack.status(name)["incarnations"] if i["generation"] == 1)
             for name in REVIEW}
    assert ready["oracle"] < ready["bea"] < ready["web"] < ready["lb"], ready
    assert_san_booted_as_itself(stack, system_report(stack, tmp_path, on["oracle"], 1), p["oracle"])
    for name in ("bea", "web", "lb"):
        assert_runs_as_itself(stack, system_report(stack, tmp_path, on[name], 1), p[name])
    for name in REVIEW:
        assert_dhcp_answered(stack, tmp_path, p[name], on[name])

    assert_arrives(stack, p["web"], p["bea"], "back", 200)
    assert_reach_by_packets(stack, p["bea"], p["oracle"], on["oracle"])  # lost once oracle's port drops VLAN 200
    said = probe(stack, "lb", "oracle")  # no network in common: the lab's router forwards nothing between them
    assert said.startswith("no") and "arrived" not in said, said
    assert_arrives(stack, p["web"], p["lb"], "front", None)

    spare = next(h["name"] for h in stack.doc["hosts"] if h.get("machine") and h["name"] not in on.values())
    began = time.monotonic()
    assert stack.cli("persona", "move", "web", "--to", spare, "--no-wait").returncode == 0
    assert stack.cli("persona", "stop", "lb", "--no-wait").returncode == 0  # voe takes front off its port
    stack.wait("lb", lambda s: s["state"] == "stopped", timeout=BOOT_PATIENCE)
    assert_a_stranger_gets_no_boot(stack, tmp_path, on["lb"])  # while web boots on the spare
    assert running(stack, "web", 2) == spare
    print(f"web moved to {spare} in {time.monotonic() - began:.0f} s")
    assert_runs_as_itself(stack, system_report(stack, tmp_path, spare, 2), p["web"])
    assert_arrives(stack, p["web"], p["bea"], "back", 200)

    began = time.monotonic()
    stack.lab("fault", spare, "hang")  # its vCPUs stop: web's agent falls silent, the BMC still answers
    stack.lab("fault", on["oracle"], "power-loss")  # QEMU and its BMC gone: fenced at its switch port instead
    web_on, oracle_on = running(stack, "web", 3), running(stack, "oracle", 2)
    print(f"web failed over from a hung {spare} to {web_on}, oracle from {on['oracle']}, its power lost, to "
          f"{oracle_on}, in {time.monotonic() - began:.0f} s")
    assert len({web_on, oracle_on, spare, on["oracle"]}) == 4
    assert_runs_as_itself(stack, system_report(stack, tmp_path, web_on, 3), p["web"])
    assert_san_booted_as_itself(stack, system_report(stack, tmp_path, oracle_on, 2), p["oracle"])
    assert_arrives(stack, p["web"], p["bea"], "back", 200)
    assert_arrives(stack, p["bea"], p["oracle"], "back", 200)
    truth = stack.lab_json("truth")
    assert truth["violations"] == [] and truth["samples"] > 0
    live = sorted((i["persona"], i["generation"], i["machine"]) for i in truth["incarnations"] if i["state"] != "dead")
    assert live == [("bea", 1, on["bea"]), ("oracle", 2, oracle_on), ("web", 3, web_on)], truth["incarnations"]

    stack.stop_controller()  # which would fence every persona behind a dead switch: the guests stay up to probe
    switch = next(h["nics"][0]["switch"] for h in stack.doc["hosts"] if h["name"] == web_on)
    stack.lab("fault", switch, "down")  # nothing crosses it any more, on any VLAN
    said = probe(stack, "web", "bea")
    assert said.startswith("no") and "arrived" not in said and f"{address(p['bea'], 'back')} (VLAN 200): lost" in said
