"""The Redfish driver against sushy-tools' emulator (OpenStack's reference
Redfish emulator) in a subprocess, with its libvirt backend on libvirt's
test:///default driver and HTTP Basic auth from an htpasswd file.

The emulator opens a libvirt connection per request; libvirt drops
test:///default's in-memory state when its last connection closes, so the
launcher keeps one connection open for the emulator's lifetime."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from harness import free_port
from voe.drivers.base import PowerState
from voe.drivers.power.redfish import RedfishPower, RedfishSettings
from voe.errors import DriverError

bcrypt = pytest.importorskip("bcrypt")
pytest.importorskip("sushy_tools", reason="sushy-tools not installed (pip install -e '.[test]')")

LAUNCH = """
import sys, libvirt
keep = libvirt.open("test:///default")
from sushy_tools.emulator.main import main
sys.argv = ["sushy-emulator", "--config", sys.argv[1], "--libvirt-uri", "test:///default",
            "-i", "127.0.0.1", "-p", sys.argv[2]]
main()
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    d = tmp_path_factory.mktemp("sushy")
    (d / "htpasswd").write_text("admin:" + bcrypt.hashpw(b"voe-lab", bcrypt.gensalt(rounds=4)).decode() + "\n")
    (d / "emulator.conf").write_text(f"SUSHY_EMULATOR_AUTH_FILE = {str(d / 'htpasswd')!r}\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(d / "emulator.conf"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=open(d / "emulator.log", "wb"))
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/redfish/v1/", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sushy-emulator did not start: {(d / 'emulator.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def driver(port: int, password: str = "voe-lab", **kw) -> RedfishPower:
    return RedfishPower("dl360-9", RedfishSettings(address="127.0.0.1", port=port, scheme="http", username="admin",
                                                   password=password, **{"timeout": 5, **kw}))


def test_power_off_on_reset_soft_off(emulator):
    power = driver(emulator)
    power.power_on()
    assert power.power_state() == PowerState.ON
    power.power_off()  # ForceOff, confirmed by PowerState
    assert power.power_state() == PowerState.OFF
    power.power_on()
    power.reset()
    assert power.power_state() == PowerState.ON
    power.soft_off()
    assert power._confirm("soft off", power._get_power_state, lambda s: s == PowerState.OFF)
    power.close()


def test_boot_source_override(emulator):
    power = driver(emulator)
    power.set_boot_device("pxe")
    assert power.boot_device()[0] == "pxe"
    power.set_boot_device("disk", persistent=True)
    assert power.boot_device() == ("disk", True)


def test_first_system_when_none_is_named_and_check_says_what_it_saw(emulator):
    seen = driver(emulator).check()
    assert "/redfish/v1/Systems/" in seen and "power" in seen


def test_a_named_system_that_does_not_exist_is_an_error(emulator):
    with pytest.raises(DriverError) as e:
        driver(emulator, system_id="/redfish/v1/Systems/nope").power_state()
    assert e.value.device == "dl360-9"


@pytest.mark.parametrize("auth", ["basic", "auto"])
def test_wrong_password_is_refused_and_not_transient(emulator, auth):
    with pytest.raises(DriverError) as e:
        driver(emulator, password="wrong", auth=auth).power_state()
    assert not e.value.transient


def test_an_unreachable_bmc_is_transient():
    with pytest.raises(DriverError) as e:
        driver(free_port(), retries=0, timeout=2).power_state()
    assert e.value.transient and "unreachable" in e.value.cause
