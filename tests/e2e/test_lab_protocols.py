"""The lab as hardware, driven by the real clients an operator uses:
ipmitool for the BMCs, net-snmp's snmpget/snmpset for the switches."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e import snmp
from voe.cli.lab import LAB_NICENESS
from voe.lab.zygote import BELOW_THE_DEVICES


def ipmitool(stack, host: str, *args: str) -> subprocess.CompletedProcess:
    port = next(h for h in stack.doc["hosts"] if h["name"] == host)["bmc"]["port"]
    return subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", "admin",
                           "-P", "voe-lab", *args], capture_output=True, text=True, timeout=30)


def lab_host(stack, host: str) -> dict:
    return next(b for b in stack.lab_json("status")["bmcs"] if b["host"] == host)


def test_ipmitool_powers_a_host_and_the_lab_follows(stack):
    assert ipmitool(stack, "v20z", "power", "status").stdout.strip() == "Chassis Power is off"
    assert ipmitool(stack, "v20z", "chassis", "bootdev", "pxe").returncode == 0
    assert ipmitool(stack, "v20z", "power", "on").returncode == 0
    assert lab_host(stack, "v20z")["power"] == "on"
    # no persona is being started on its MAC: hardware says so
    assert lab_host(stack, "v20z")["boot"] == "no bootable device"
    assert ipmitool(stack, "v20z", "power", "off").returncode == 0
    assert ipmitool(stack, "v20z", "power", "status").stdout.strip() == "Chassis Power is off"


def test_a_booted_persona_is_a_real_process_and_power_off_ends_it(stack):
    assert stack.http.post("/api/v1/personas/oracle/start", json={"to": "dl360-2"}).status_code == 202
    pid = running_agent(stack, "oracle")
    assert ipmitool(stack, "dl360-2", "power", "off").returncode == 0
    assert process_ends(pid)


def niceness(pid: int, thread: int | None = None) -> int:
    stat = Path(f"/proc/{pid}" + (f"/task/{thread}" if thread else "") + "/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_the_emulated_hardware_yields_the_cpu_to_the_controller(stack):
    """The lab stands in for other computers: the lab (every thread of it)
    and the OSes of its machines run below the controller's priority, so a
    busy lab slows its own devices, not the controller under test; and the
    OSes below the devices."""
    assert stack.http.post("/api/v1/personas/oracle/start", json={}).status_code == 202
    agent = running_agent(stack, "oracle")
    threads = [int(t) for t in os.listdir(f"/proc/{stack.lab_pid}/task")]
    assert len(threads) > 10  # its BMCs, switches and hypervisor APIs
    assert {niceness(stack.lab_pid, t) for t in threads} == {LAB_NICENESS}
    assert niceness(agent) == LAB_NICENESS + BELOW_THE_DEVICES  # a BMC is not slowed by its server's OS
    assert niceness(os.getpid()) < LAB_NICENESS  # the controller runs in this process


def test_a_redfish_host_boots_through_redfish_and_curl_sees_it(stack):
    """pe2800 declares a Redfish BMC: voe powers it with sushy, and any HTTP
    client reads and drives the same ComputerSystem."""
    assert stack.http.post("/api/v1/personas/oracle/start", json={"to": "pe2800"}).status_code == 202
    pid = running_agent(stack, "oracle")
    bmc = next(b for b in stack.lab_json("status")["bmcs"] if b["host"] == "pe2800")
    assert bmc["protocol"] == "redfish"
    system = f"http://127.0.0.1:{bmc['port']}/redfish/v1/Systems/pe2800"
    auth = (bmc["username"], bmc["password"])
    assert httpx.get(system, auth=auth).json()["PowerState"] == "On"
    assert httpx.get(system, auth=("admin", "wrong")).status_code == 401
    r = httpx.post(f"{system}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceOff"}, auth=auth)
    assert r.status_code == 204
    assert process_ends(pid)
    assert httpx.get(system, auth=auth).json()["PowerState"] == "Off"


def running_agent(stack, persona: str) -> int:
    """The pid of the persona's agent, once running; its command line (as ps shows it) is the script's."""
    stack.wait(persona, lambda s: s["state"] == "running")
    inc = next(i for i in stack.lab_json("truth")["incarnations"] if i["persona"] == persona)
    cmdline = Path(f"/proc/{inc['pid']}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "voe.agent" in cmdline and f"voe.persona={persona}" in cmdline and "voe.generation=1" in cmdline
    return inc["pid"]


def process_ends(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_snmpset_on_the_switch_changes_what_reaches_what(stack):
    for p in ("web-1", "bea-1"):
        assert stack.http.post(f"/api/v1/personas/{p}/start", json={}).status_code == 202
    for p in ("web-1", "bea-1"):
        stack.wait(p, lambda s: s["state"] == "running")
    assert stack.lab("reach", "web-1", "bea-1").returncode == 0
    sw1 = next(s for s in stack.doc["switches"] if s["name"] == "sw1")["settings"]["port"]
    egress = snmp.portlist(sw1, f"{snmp.DOT1Q_VLAN_STATIC_EGRESS}.200")
    assert 1 in egress  # dl360-1, where web-1's VM runs, trunks VLAN 200
    without = sorted(egress - {1})
    octets = bytearray(3)
    for p in without:
        octets[(p - 1) // 8] |= 0x80 >> ((p - 1) % 8)
    r = subprocess.run(["snmpset", "-v2c", "-c", "private", f"127.0.0.1:{sw1}",
                        f"{snmp.DOT1Q_VLAN_STATIC_EGRESS}.200", "x", octets.hex()], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    no = stack.lab("reach", "web-1", "bea-1", check=False)
    assert no.returncode == 1 and "does not carry VLAN 200" in no.stdout


def test_bmc_down_and_up(stack):
    stack.lab("fault", "v20z", "bmc-down")
    assert ipmitool(stack, "v20z", "-R", "1", "-N", "1", "power", "status").returncode != 0
    stack.lab("fault", "v20z", "bmc-up")
    assert ipmitool(stack, "v20z", "power", "status").stdout.strip() == "Chassis Power is off"


def test_voes_ipmi_driver_reaches_a_bmc_again_after_it_was_down(stack):
    """A BMC that reboots forgets its sessions: the driver must log in
    afresh, a second client of the same BMC must not wait on the first
    one's session, and the other BMCs keep answering throughout."""
    from voe.drivers.power.ipmi import IpmiPower, IpmiSettings
    from voe.errors import DriverError

    port = next(h for h in stack.doc["hosts"] if h["name"] == "dl360-3")["bmc"]["port"]
    def driver():
        return IpmiPower("dl360-3", IpmiSettings(address="127.0.0.1", port=port, username="admin",
                                                 password="voe-lab", timeout=2))
    first = driver()
    assert first.power_state(retry=False).value == "off"
    assert driver().power_state(retry=False).value == "off"  # a second client, same BMC
    stack.lab("fault", "dl360-3", "bmc-down")
    try:
        first.power_state(retry=False)
        raise AssertionError("a BMC that is down answered")
    except DriverError as e:
        assert "dl360-3" in str(e)
    stack.lab("fault", "dl360-3", "bmc-up")
    assert first.power_state(retry=False).value == "off"
    assert driver().power_state(retry=False).value == "off"
    assert ipmitool(stack, "v20z", "power", "status").stdout.strip() == "Chassis Power is off"


SHARED_PORT_SCENARIO = """
import sys
from voe.drivers.power import ipmi

def driver(host, port):
    return ipmi.IpmiPower(host, ipmi.IpmiSettings(address="127.0.0.1", port=int(port), username="admin",
                                                  password="voe-lab", timeout=2))
one, other = driver("v20z", sys.argv[1]), driver("dl360-3", sys.argv[2])
assert one.power_state(retry=False).value == "off"
assert other.power_state(retry=False).value == "off"
open_session = other._link
one._retire(one._link)  # as after a failed call: the next one logs in afresh
assert one.power_state(retry=False).value == "off"
assert one._link.cmd.ipmi_session.socket is open_session.cmd.ipmi_session.socket, "not one client port"
assert other.power_state(retry=False).value == "off"
assert other._link is open_session, "the session with the other BMC was lost and logged in again"
"""


def test_a_new_login_to_one_bmc_leaves_the_sessions_with_the_others_open(stack):
    """A controller speaks to every BMC from one UDP port. A new login to
    one of them (after a failed call, say) must not end its sessions with
    the others: the lab's BMCs once forgot them all, and a group start's
    power-ons then timed out by the dozen. The scenario runs in a fresh
    interpreter: there pyghmi's pool holds a single socket, so both sessions
    share a client port for certain (in this one, earlier tests' sockets
    make the pool's choice vary)."""
    ports = [str(next(h for h in stack.doc["hosts"] if h["name"] == host)["bmc"]["port"])
             for host in ("v20z", "dl360-3")]
    run = subprocess.run([sys.executable, "-c", SHARED_PORT_SCENARIO, *ports],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_a_bmc_that_restarted_since_the_last_call_answers_the_next_one(stack):
    """A BMC forgets its sessions when it restarts (a firmware reset, a
    repair): the driver's next call, a fence's power-off say, must reach it
    rather than fail on a session the BMC no longer knows."""
    from voe.drivers.power import ipmi

    port = next(h for h in stack.doc["hosts"] if h["name"] == "v20z")["bmc"]["port"]
    driver = ipmi.IpmiPower("v20z", ipmi.IpmiSettings(address="127.0.0.1", port=port, username="admin",
                                                      password="voe-lab", timeout=2))
    assert driver.power_state(retry=False).value == "off"
    stack.lab("fault", "v20z", "bmc-down")
    stack.lab("fault", "v20z", "bmc-up")  # a new BMC process: the old session is unknown to it
    driver.power_on()
    assert driver.power_state(retry=False).value == "on"
    driver.power_off(confirm=True)


def test_voes_ipmi_driver_boots_a_server_off_and_boots_one_on_again(stack):
    """A start's last step: power on, or reset a server already on, so that
    it boots the one-time PXE override just set. Each boot uses the
    override up; a server left running would still hold it."""
    from voe.drivers.power import ipmi

    port = next(h for h in stack.doc["hosts"] if h["name"] == "v20z")["bmc"]["port"]
    driver = ipmi.IpmiPower("v20z", ipmi.IpmiSettings(address="127.0.0.1", port=port, username="admin",
                                                      password="voe-lab", timeout=2))
    try:
        for _ in ("off: powered on", "on: reset"):
            driver.set_boot_device("pxe")
            driver.power_on_or_reset()
            assert driver.power_state(retry=False).value == "on"
            assert driver.boot_device()[0] is None, "the server did not boot again"
    finally:
        driver.power_off(confirm=True)


def test_switch_down_stops_answering_snmp_and_up_restores_it(stack):
    sw2 = next(s for s in stack.doc["switches"] if s["name"] == "sw2")["settings"]["port"]
    assert "voe lab switch sw2" in snmp.snmpget(sw2, "1.3.6.1.2.1.1.1.0", hex_strings=False)
    stack.lab("fault", "sw2", "down")
    assert "voe lab switch sw2" not in subprocess.run(["snmpget", "-v2c", "-c", "private", "-t", "0.5", "-r", "0",
                                             f"127.0.0.1:{sw2}", "1.3.6.1.2.1.1.1.0"],
                                            capture_output=True, text=True).stdout
    stack.lab("fault", "sw2", "up")
    assert "voe lab switch sw2" in snmp.snmpget(sw2, "1.3.6.1.2.1.1.1.0", hex_strings=False)


def test_hypervisor_host_os_crash_kills_its_api_but_not_its_bmc(stack):
    url = next(h for h in stack.doc["hosts"] if h["name"] == "dl360-1")["hypervisor"]["url"]
    assert httpx.get(f"{url}/v1/host", auth=("admin", "voe-lab")).status_code == 200
    stack.lab("fault", "dl360-1", "os-crash")
    try:
        httpx.get(f"{url}/v1/host", auth=("admin", "voe-lab"), timeout=2)
        raise AssertionError("the hypervisor API still answers")
    except httpx.ConnectError:
        pass
    assert ipmitool(stack, "dl360-1", "power", "status").stdout.strip() == "Chassis Power is on"


def test_lab_status_lists_every_endpoint(stack):
    s = stack.lab_json("status")
    assert {b["host"] for b in s["bmcs"]} == {h["name"] for h in stack.doc["hosts"]}
    assert set(s["bmcs"][0]) >= {"host", "protocol", "address", "port", "username", "password"}
    assert set(s["switches"][0]) >= {"name", "address", "port", "community", "v3", "ports"}
    assert s["hypervisors"][0]["host"] == "dl360-1" and s["controller"] == stack.boot_url
