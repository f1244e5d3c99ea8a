"""The lab's Redfish BMC, driven by voe's Redfish driver (sushy as the
client) and checked against the lab machine's own state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from xml.etree import ElementTree

import httpx
import pytest

from harness import free_port
from voe.drivers.base import PowerState
from voe.drivers.power.redfish import RedfishPower, RedfishSettings
from voe.errors import DriverError
from voe.lab import machine as machine_module
from voe.lab.machine import ControllerLink, Machine, ProcessOS
from voe.lab.redfish import RedfishEmulator
from voe.lab.redfish_sessions import MAX_SESSIONS, SessionService


@pytest.fixture
def bmc(tmp_path, monkeypatch):
    monkeypatch.setattr(machine_module, "FETCH_PAUSE", 0.01)  # a controller nowhere: its firmware's retries, quickly
    nowhere = ControllerLink(f"http://127.0.0.1:{free_port()}")
    machine = Machine("dl360-7", ["00:0b:cd:07:00:01"], nowhere, ProcessOS(["true"], tmp_path), ThreadPoolExecutor(1),
                      local_disk=True)
    emulator = RedfishEmulator(machine, "127.0.0.1", free_port(), "admin", "voe-lab")
    emulator.start()
    yield emulator
    emulator.stop()


def driver(bmc: RedfishEmulator, password: str = "voe-lab") -> RedfishPower:
    return RedfishPower("dl360-7", RedfishSettings(address="127.0.0.1", port=bmc.port, scheme="http", auth="basic",
                                                   username="admin", password=password, timeout=3))


def test_power_through_sushy_is_the_machines_power(bmc):
    power = driver(bmc)
    assert power.power_state() == PowerState.OFF
    power.power_on()
    assert bmc.machine.powered and bmc.machine.last_boot.outcome == "disk"
    power.reset()
    assert bmc.machine.powered
    power.power_off()
    assert not bmc.machine.powered
    assert "/redfish/v1/Systems/dl360-7" in power.check()


def test_one_time_pxe_override_is_used_up_by_the_next_boot(bmc):
    power = driver(bmc)
    power.set_boot_device("pxe")
    assert bmc.machine.boot_device() == ("pxe", False)
    assert power.boot_device() == ("pxe", False)
    power.power_on()  # network boot: no controller answers, so no bootable device
    assert bmc.machine.wait_booted().outcome == "no bootable device"
    assert power.boot_device() == (None, False)
    power.set_boot_device("disk", persistent=True)
    assert bmc.machine.boot_device() == ("disk", True)


def session_driver(bmc: RedfishEmulator, auth: str = "session") -> RedfishPower:
    return RedfishPower("dl360-7", RedfishSettings(address="127.0.0.1", port=bmc.port, scheme="http", auth=auth,
                                                   username="admin", password="voe-lab", timeout=3))


@pytest.mark.parametrize("auth", ["session", "auto"])
def test_sushy_logs_in_with_a_session_and_logs_out_on_close(bmc, auth):
    power = session_driver(bmc, auth)
    power.power_on()
    assert bmc.machine.powered
    assert [s.username for s in bmc.sessions.all()] == ["admin"]  # one login, its token used for every call
    power.close()
    assert bmc.sessions.all() == []


def test_a_bmc_that_forgot_its_sessions_is_logged_in_to_again(bmc):
    power = session_driver(bmc)
    assert power.power_state() == PowerState.OFF
    bmc.sessions = SessionService("admin", "voe-lab")  # a BMC reboot forgets every session
    power.power_on()
    assert bmc.machine.powered and len(bmc.sessions.all()) == 1


def test_session_login_token_and_logout_on_the_wire(bmc):
    base = f"http://127.0.0.1:{bmc.port}"
    root = httpx.get(f"{base}/redfish/v1/").json()  # public, as specified
    sessions = root["Links"]["Sessions"]["@odata.id"]
    assert httpx.get(base + root["SessionService"]["@odata.id"], auth=("admin", "voe-lab")).json()["ServiceEnabled"]
    login = httpx.post(base + sessions, json={"UserName": "admin", "Password": "voe-lab"})
    assert login.status_code == 201 and login.headers["Location"] == login.json()["@odata.id"]
    token = {"X-Auth-Token": login.headers["X-Auth-Token"]}
    assert httpx.get(base + bmc.system_path, headers=token).json()["PowerState"] == "Off"
    listed = httpx.get(base + sessions, headers=token).json()
    assert [m["@odata.id"] for m in listed["Members"]] == [login.headers["Location"]]
    assert httpx.delete(base + login.headers["Location"], headers=token).status_code == 204
    assert httpx.get(base + bmc.system_path, headers=token).status_code == 401  # logged out


@pytest.mark.parametrize("body, code", [({"UserName": "admin", "Password": "nope"}, 401),
                                        ({"UserName": "admin"}, 400), ([1, 2], 400)])
def test_a_bad_login_gets_no_session(bmc, body, code):
    r = httpx.post(f"http://127.0.0.1:{bmc.port}/redfish/v1/SessionService/Sessions", json=body)
    assert r.status_code == code and "X-Auth-Token" not in r.headers
    assert bmc.sessions.all() == []


def test_a_made_up_token_is_refused(bmc):
    r = httpx.get(f"http://127.0.0.1:{bmc.port}{bmc.system_path}", headers={"X-Auth-Token": "guess"})
    assert r.status_code == 401


def test_sessions_expire_when_idle_and_live_while_used():
    now = [0.0]
    service = SessionService("admin", "voe-lab", timeout=60, clock=lambda: now[0])
    used, idle = service.login("admin", "voe-lab"), service.login("admin", "voe-lab")
    for _ in range(3):
        now[0] += 40
        assert service.authenticate(used.token) is used
    assert service.authenticate(idle.token) is None  # idle 120 s > 60 s
    assert [s.id for s in service.all()] == [used.id]
    assert service.login("admin", "wrong") is None


def test_the_oldest_idle_session_makes_room_when_the_slots_are_full():
    now = [0.0]
    service = SessionService("admin", "voe-lab", clock=lambda: now[0])
    first = service.login("admin", "voe-lab")
    for _ in range(MAX_SESSIONS):
        now[0] += 1
        service.login("admin", "voe-lab")
    assert len(service.all()) == MAX_SESSIONS and service.find(first.id) is None


def test_metadata_is_public_csdl_naming_each_schema_served(bmc):
    r = httpx.get(f"http://127.0.0.1:{bmc.port}/redfish/v1/$metadata")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/xml"
    edmx = "{http://docs.oasis-open.org/odata/ns/edmx}"
    doc = ElementTree.fromstring(r.text)
    included = {i.get("Namespace") for i in doc.iter(f"{edmx}Include")}
    assert {"ServiceRoot.v1_5_0", "ComputerSystem.v1_10_0", "SessionService.v1_1_0", "Session.v1_1_0"} <= included
    odata = httpx.get(f"http://127.0.0.1:{bmc.port}/redfish/v1/odata").json()
    assert {v["url"] for v in odata["value"]} >= {"/redfish/v1/", "/redfish/v1/SessionService"}


def test_wrong_password_is_refused(bmc):
    with pytest.raises(DriverError, match="credentials refused"):
        driver(bmc, password="nope").power_state()


def test_bad_reset_type_is_a_400(bmc):
    r = httpx.post(f"http://127.0.0.1:{bmc.port}{bmc.system_path}/Actions/ComputerSystem.Reset",
                   json={"ResetType": "Nmi"}, auth=("admin", "voe-lab"))
    assert r.status_code == 400 and not bmc.machine.powered
