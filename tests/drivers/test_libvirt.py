"""The libvirt driver against libvirt's own in-memory ``test:///default``
driver: the real libvirt client library, domain XML parser and state
machine, no hypervisor underneath."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from voe.drivers.base import VmSpec, VmState
from voe.drivers.hypervisor.libvirt import LibvirtHypervisor, LibvirtSettings, domain_xml
from voe.errors import DriverError

SPEC = VmSpec("web-1-g3", vcpus=2, memory_mib=2048, macs=("02:56:4f:00:00:01", "02:56:4f:00:00:02"))


@pytest.fixture
def hv():
    driver = LibvirtHypervisor("kvm1", LibvirtSettings(uri="test:///default", timeout=5))
    yield driver
    driver.close()


def test_define_reads_back_the_personas_vm(hv):
    hv.define(SPEC)
    assert hv.state(SPEC.name) == VmState.OFF
    seen = hv.spec(SPEC.name)
    assert (seen.vcpus, seen.memory_mib, seen.macs, seen.boot) == (2, 2048, SPEC.macs, "network")
    assert seen.networks == ("default", "default")


def test_lifecycle_start_shutdown_destroy_undefine(hv):
    hv.define(SPEC)
    hv.start(SPEC.name)
    assert hv.list()[SPEC.name] == VmState.RUNNING
    hv.start(SPEC.name)  # idempotent
    hv.shutdown(SPEC.name)
    assert hv.state(SPEC.name) == VmState.OFF
    hv.start(SPEC.name)
    assert hv.destroy(SPEC.name) == "shut off (destroyed)"  # libvirt's own words: the fence's evidence
    assert hv.state(SPEC.name) == VmState.OFF
    hv.undefine(SPEC.name)
    assert hv.state(SPEC.name) == VmState.ABSENT
    hv.undefine(SPEC.name)  # idempotent
    assert hv.spec(SPEC.name) is None


def test_the_driver_keeps_its_connection_and_so_the_test_drivers_state(hv):
    """libvirt 9+ shares test:///default between the connections of one
    process and drops it with the last one; a driver that reconnected per
    call would lose every VM it defined."""
    hv.define(SPEC)
    assert SPEC.name in hv.list() and SPEC.name in hv.list()
    hv.close()
    assert SPEC.name not in hv.list()  # reopened: a fresh in-memory hypervisor


def test_failures_name_the_hypervisor_and_the_operation(hv):
    with pytest.raises(DriverError) as e:
        hv.start("no-such-vm")
    assert e.value.device == "kvm1" and e.value.operation == "start VM no-such-vm"
    assert "not found" in e.value.cause.lower()


def test_an_unreachable_uri_is_a_typed_error():
    hv = LibvirtHypervisor("kvm9", LibvirtSettings(uri="qemu+tcp://127.0.0.1:1/system", timeout=5, retries=0))
    with pytest.raises(DriverError) as e:
        hv.list()
    assert e.value.device == "kvm9"


def test_check_reports_what_it_reached(hv):
    assert "test:///default" in hv.check()


def test_bridge_and_openvswitch_vlans_in_the_xml():
    s = LibvirtSettings(bridge="br0", bridge_type="openvswitch")
    dom = ET.fromstring(domain_xml(VmSpec("v", 1, 512, ("02:00:00:00:00:01",), vlans=(100,)), s))
    nic = dom.find("devices/interface")
    assert nic.get("type") == "bridge" and nic.find("source").get("bridge") == "br0"
    assert nic.find("virtualport").get("type") == "openvswitch"
    assert nic.find("vlan/tag").get("id") == "100"
    assert dom.find("os/boot").get("dev") == "network"
    assert nic.find("driver") is None  # offloads stay on unless asked off


def test_the_xml_logs_the_console_offers_the_probe_channel_and_entropy_and_can_turn_offloads_off():
    s = LibvirtSettings(bridge="br0", bridge_type="openvswitch", offloads=False)
    dom = ET.fromstring(domain_xml(VmSpec("web", 1, 512, ("02:00:00:00:00:01",), vlans=(100,)), s))
    assert dom.find("devices/serial/log").get("file") == "/var/log/libvirt/qemu/web-console.log"
    assert dom.find("devices/channel/target").get("name") == "io.voe.probe"
    assert dom.find("devices/rng").get("model") == "virtio"
    assert dom.find("devices/rng/backend").text == "/dev/urandom"
    host = dom.find("devices/interface/driver/host")
    assert host.get("csum") == "off" and host.get("gso") == "off"
    assert dom.find("devices/interface/driver/guest").get("csum") == "off"


def test_auto_domain_type_is_one_the_host_offers(hv):
    import libvirt

    hv.define(SPEC)  # test:///default offers only its own type, "test"
    other = libvirt.open("test:///default")  # the same in-memory hypervisor while the driver's is open
    assert ET.fromstring(other.lookupByName(SPEC.name).XMLDesc()).get("type") == "test"
    other.close()


def test_a_name_that_would_break_the_xml_is_escaped_not_injected(hv):
    hv.define(VmSpec("a'b<c>", 1, 256, ("02:00:00:00:00:09",)))
    assert "a'b<c>" in hv.list()


def test_credentials_are_answered_from_the_settings():
    import libvirt

    hv = LibvirtHypervisor("esx1", LibvirtSettings(uri="esx://esx1/", username="root", password="s3cret"))
    creds = [[libvirt.VIR_CRED_AUTHNAME, "user", "", None, None], [libvirt.VIR_CRED_PASSPHRASE, "pw", "", None, None]]
    assert hv._answer_credentials(creds, None) == 0
    assert [c[4] for c in creds] == ["root", "s3cret"]


@pytest.mark.skipif(not (shutil.which("virt-xml-validate") and shutil.which("xmllint")),
                    reason="virt-xml-validate or xmllint not installed (apt install libvirt-clients libxml2-utils)")
@pytest.mark.parametrize("settings", [LibvirtSettings(), LibvirtSettings(bridge="br0", bridge_type="openvswitch",
                                                                         offloads=False)],
                         ids=["network", "ovs-bridge-no-offloads"])
def test_domain_xml_is_valid_against_libvirts_schema(tmp_path, settings):
    path = tmp_path / "domain.xml"
    path.write_text(domain_xml(VmSpec("web-1-g3", 2, 2048, SPEC.macs, vlans=(100, 200)), settings))
    r = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
