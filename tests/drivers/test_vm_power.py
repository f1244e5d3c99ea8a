"""VM power through a real hypervisor peer: libvirt's test:///default driver."""

from __future__ import annotations

import pytest

from voe.drivers.base import PowerState, VmSpec, VmState
from voe.drivers.hypervisor.libvirt import LibvirtHypervisor, LibvirtSettings
from voe.drivers.power.vm import VmPower
from voe.errors import DriverError

SPEC = VmSpec("lb-g1", vcpus=1, memory_mib=512, macs=("02:56:4f:00:00:11",))


@pytest.fixture
def hv():
    driver = LibvirtHypervisor("kvm1", LibvirtSettings(uri="test:///default", timeout=5))
    driver.define(SPEC)
    yield driver
    driver.close()


def test_power_on_off_reset_through_the_hypervisor(hv):
    power = VmPower(hv, SPEC.name)
    assert power.power_state() == PowerState.OFF
    power.power_on()
    assert hv.state(SPEC.name) == VmState.RUNNING
    power.reset()
    assert power.power_state() == PowerState.ON
    power.power_off()  # confirmed off: fencing evidence
    assert hv.state(SPEC.name) == VmState.OFF
    power.power_on()
    power.soft_off()
    assert hv.state(SPEC.name) == VmState.OFF
    assert power.device == "kvm1/lb-g1"


def test_boot_device_is_written_into_the_vm_definition(hv):
    power = VmPower(hv, SPEC.name)
    assert power.boot_device() == ("pxe", True)
    power.set_boot_device("disk")
    assert hv.spec(SPEC.name).boot == "disk"
    assert power.boot_device() == ("disk", True)
    assert hv.spec(SPEC.name).macs == SPEC.macs  # nothing else changed


def test_a_vm_that_does_not_exist_reads_off_and_cannot_be_booted(hv):
    power = VmPower(hv, "ghost")
    assert power.power_state() == PowerState.OFF
    with pytest.raises(DriverError, match="no VM named ghost"):
        power.set_boot_device("pxe")
    with pytest.raises(DriverError):
        power.power_on()
