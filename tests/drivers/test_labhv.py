"""The lab hypervisor driver against the lab's own hypervisor API server
(voe.lab.hypervisor): real HTTP, real Basic auth, the lab's VM model. The
VMs find no controller to boot from, which changes nothing for power."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import free_port
from voe.drivers.base import VmSpec, VmState
from voe.drivers.hypervisor.labhv import LabHvSettings, LabHypervisor
from voe.errors import DriverError
from voe.lab import machine as machine_module
from voe.lab.hypervisor import Hypervisor
from voe.lab.machine import ControllerLink, Machine, ProcessOS

SPEC = VmSpec("web-1-g2", vcpus=1, memory_mib=512, macs=("02:56:4f:00:00:01",), vlans=(100,))


@pytest.fixture
def lab_hv(tmp_path, monkeypatch):
    monkeypatch.setattr(machine_module, "FETCH_PAUSE", 0.01)  # a controller nowhere: its firmware's retries, quickly
    nowhere = ControllerLink(f"http://127.0.0.1:{free_port()}")

    def vm_machine(name, mac, root):
        return Machine(name, [mac], nowhere, ProcessOS(["true"], root), ThreadPoolExecutor(1), kind="vm")

    url = f"http://127.0.0.1:{free_port()}"
    host = Machine("dl360-1", ["00:0b:cd:01:00:01"], nowhere, ProcessOS(["true"], tmp_path / "host"), ThreadPoolExecutor(1))
    hyp = Hypervisor(host, url, "admin", "voe-lab", tmp_path, vm_machine, cpus=8, memory_mib=10240)
    hyp.boot()
    yield hyp, url
    hyp.down()


def driver(url: str, password: str = "voe-lab") -> LabHypervisor:
    return LabHypervisor("dl360-1", LabHvSettings(url=url, username="admin", password=password, timeout=3))


def test_define_start_shutdown_destroy_undefine(lab_hv):
    hyp, url = lab_hv
    hv = driver(url)
    hv.define(SPEC)
    hv.define(SPEC)  # same definition: idempotent
    assert hv.state(SPEC.name) == VmState.OFF
    assert hv.spec(SPEC.name) == SPEC
    hv.start(SPEC.name)
    assert hyp.vms[SPEC.name].machine.powered  # the lab's own truth
    hv.shutdown(SPEC.name)
    assert hv.state(SPEC.name) == VmState.OFF
    hv.start(SPEC.name)
    hv.destroy(SPEC.name)
    assert not hyp.vms[SPEC.name].machine.powered
    hv.undefine(SPEC.name)
    assert hv.list() == {} and hv.spec(SPEC.name) is None
    assert "8 CPUs" in hv.check()


def test_redefining_a_running_vm_differently_is_refused(lab_hv):
    hv = driver(lab_hv[1])
    hv.define(SPEC)
    hv.start(SPEC.name)
    with pytest.raises(DriverError, match="409"):
        hv.define(VmSpec(SPEC.name, 2, 512, SPEC.macs))


def test_wrong_password_is_a_fatal_error(lab_hv):
    with pytest.raises(DriverError) as e:
        driver(lab_hv[1], password="wrong").list()
    assert "401" in e.value.cause and not e.value.transient


def test_a_hypervisor_whose_os_is_gone_is_a_transient_error_naming_it(lab_hv):
    hyp, url = lab_hv
    hyp.down()  # connection refused from now on
    with pytest.raises(DriverError) as e:
        driver(url).list()
    assert e.value.device == "dl360-1" and e.value.transient
    assert "unreachable" in str(e.value)
