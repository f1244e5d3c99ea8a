"""The vSphere driver against VMware's own vCenter simulator (vcsim, built
from Debian's govmomi sources by the setup step): pyvmomi over HTTP, the
real SOAP API, no ESX underneath."""

from __future__ import annotations

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from harness import free_port
from voe.domain.models import Host
from voe.drivers.base import VmSpec, VmState
from voe.drivers.factory import hypervisor_for_host
from voe.drivers.hypervisor.vsphere import VsphereHypervisor, VsphereSettings
from voe.errors import DriverError
from voe.lab import vcsim

SPEC = VmSpec("web-1", vcpus=2, memory_mib=2048, macs=("02:56:4f:00:00:07", "02:56:4f:00:00:08"), vlans=(100, 200))


@pytest.fixture(scope="module")
def simulator():
    try:
        sim = vcsim.Vcsim(f"127.0.0.1:{free_port()}", "voe", "voe-lab")
    except vcsim.VcsimMissing as e:
        pytest.skip(str(e))
    yield sim
    sim.stop()


@pytest.fixture
def esx(simulator):
    host = Host.model_validate({"name": "esx1", "bmc": {"address": "127.0.0.1"}, "cpus": 16, "memory": "64GiB",
                                "hypervisor": {"driver": "vsphere", "url": simulator.url, "username": "voe",
                                               "password": "voe-lab", "cpus": 16, "memory": "48GiB",
                                               "settings": {"esx_host": vcsim.FIRST_HOST, "verify_tls": False}}})
    driver = hypervisor_for_host(host)  # as the controller builds it from the inventory
    yield driver
    for name in driver.list():
        driver.destroy(name)
        driver.undefine(name)
    driver.close()


def test_a_persona_vm_is_defined_with_its_macs_on_vlan_port_groups(esx, simulator):
    assert isinstance(esx, VsphereHypervisor)
    esx.define(SPEC)
    assert esx.state("web-1") == VmState.OFF
    seen = esx.spec("web-1")
    assert (seen.vcpus, seen.memory_mib, seen.macs, seen.boot) == (2, 2048, SPEC.macs, "network")
    assert (seen.networks, seen.vlans) == (("voe-vlan-100", "voe-vlan-200"), (100, 200))
    # what vSphere itself says, read without voe's driver
    si = SmartConnect(protocol="http", host="127.0.0.1", port=int(simulator.url.split(":")[2].split("/")[0]),
                      user="voe", pwd="voe-lab")
    try:
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
        vm = next(v for v in view.view if v.name == "web-1")
        nics = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        assert [(n.addressType, n.macAddress) for n in nics] == [("manual", m) for m in SPEC.macs]
        host = vm.runtime.host
        groups = {pg.spec.name: (pg.spec.vlanId, pg.spec.vswitchName)
                  for pg in host.configManager.networkSystem.networkInfo.portgroup}
        assert groups["voe-vlan-100"] == (100, "vSwitch0") and groups["voe-vlan-200"] == (200, "vSwitch0")
    finally:
        Disconnect(si)


def test_start_fence_and_remove(esx):
    esx.define(SPEC)
    esx.start("web-1")
    assert esx.list() == {"web-1": VmState.RUNNING}
    esx.start("web-1")  # idempotent
    esx.destroy("web-1")  # the fence: a hard power-off, confirmed by the state vSphere reports
    assert esx.state("web-1") == VmState.OFF
    esx.define(SPEC)  # a new incarnation: the VM defined afresh, port groups reused
    esx.start("web-1")
    with pytest.raises(DriverError, match="a VM of that name is running here"):
        esx.define(SPEC)
    esx.destroy("web-1")
    esx.undefine("web-1")
    assert esx.state("web-1") == VmState.ABSENT and esx.spec("web-1") is None


def test_check_names_the_host_and_bad_settings_are_named(esx, simulator):
    assert f"host {vcsim.FIRST_HOST} (connected)" in esx.check()
    wrong = VsphereHypervisor("esx9", VsphereSettings(url=simulator.url, username="voe", password="wrong",
                                                      esx_host=vcsim.FIRST_HOST, verify_tls=False, retries=0))
    with pytest.raises(DriverError) as e:
        wrong.check()
    assert e.value.device == "esx9" and "InvalidLogin" in str(e.value)
    unknown = VsphereHypervisor("esx9", VsphereSettings(url=simulator.url, username="voe", password="voe-lab",
                                                        esx_host="esx-nowhere", verify_tls=False))
    with pytest.raises(DriverError, match="vSphere knows no host 'esx-nowhere'"):
        unknown.list()
    gone = VsphereHypervisor("esx9", VsphereSettings(url=f"http://127.0.0.1:{free_port()}/sdk", esx_host="x",
                                                     verify_tls=False, retries=0, timeout=3))
    with pytest.raises(DriverError) as e:
        gone.check()
    assert e.value.transient and "unreachable" in str(e.value)


def test_vms_defined_at_once_share_their_new_port_groups(esx):
    """A group start defines its VMs in parallel: the first to need a
    VLAN's port group makes it, the others use it."""
    from concurrent.futures import ThreadPoolExecutor

    specs = [VmSpec(f"web-{i}", 1, 1024, (f"02:56:4f:00:01:0{i}",), vlans=(300 + i % 2,)) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(esx.define, specs))
    assert {s.name: esx.spec(s.name).vlans for s in specs} == {s.name: s.vlans for s in specs}
