"""The lab's Redfish BMC, driven by voe's Redfish driver (sushy as the
client) and checked against the lab machine's own state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness import free_port
from voe.drivers.base import PowerState
from voe.drivers.power.redfish import RedfishPower, RedfishSettings
from voe.errors import DriverError
from voe.lab import machine as machine_module
from voe.lab.machine import ControllerLink, Machine, ProcessOS
from voe.lab.redfish import RedfishEmulator


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


def test_session_first_clients_fall_back_to_basic(bmc):
    power = RedfishPower("dl360-7", RedfishSettings(address="127.0.0.1", port=bmc.port, scheme="http",
                                                    username="admin", password="voe-lab", timeout=3))
    assert power.power_state() == PowerState.OFF


def test_wrong_password_is_refused(bmc):
    with pytest.raises(DriverError, match="credentials refused"):
        driver(bmc, password="nope").power_state()


def test_bad_reset_type_is_a_400(bmc):
    r = httpx.post(f"http://127.0.0.1:{bmc.port}{bmc.system_path}/Actions/ComputerSystem.Reset",
                   json={"ResetType": "Nmi"}, auth=("admin", "voe-lab"))
    assert r.status_code == 400 and not bmc.machine.powered
