"""A controller and a lab of real machines (``examples/kvm-lab.yaml``):
QEMU servers that network-boot through the lab's dnsmasq, fetch voe's
script, kernel and initrd, and mount their persona's root from the lab's
nfs-ganesha, on a network namespace of the lab's own. The controller
listens on loopback and publishes the lab network's gateway to machines,
as a controller on a boot network does."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import ROOT, Stack, running_stack
from voe.cli.yamlfile import DatacenterFile
from voe.controller.timing import Timing
from voe.lab.kvm import accelerator

KVM_LAB = ROOT / "examples" / "kvm-lab.yaml"
GATEWAY = "10.77.0.1"


def skip_without_machines() -> None:
    """Skips naming what is missing; CI has all of it."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU is missing (apt install qemu-system-x86 ipxe-qemu; scripts/setup.sh does)")
    if shutil.which("libvirtd") is None:
        pytest.skip("libvirtd is missing (apt install libvirt-daemon libvirt-daemon-driver-qemu; scripts/setup.sh does)")
    if not os.path.exists("/dev/kvm"):
        pytest.skip("/dev/kvm is missing")
    if os.geteuid() != 0:
        pytest.skip("the lab's network namespace, bridge and taps need root (CI is root)")


def persona_template() -> Path:
    """The Debian base with this checkout's agent: a tree to make a template of."""
    from voe.images import debian

    return debian.with_agent(debian.ensure(log=lambda m: None))


def san_template(boot_url: str) -> Path:
    """The same system as a disk that boots from a LUN, its agent asking
    the boot service at ``boot_url`` who it is."""
    from voe.images import debian

    return debian.san_disk(debian.ensure(log=lambda m: None), boot_url)


def kvm_doc(tmp_path: Path) -> dict:
    """The KVM lab's datacenter on free ports, its storage files in ``tmp_path``."""
    doc = DatacenterFile(KVM_LAB).data()
    for sw in doc["switches"]:
        sw["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    for h in doc["hosts"]:
        h["bmc"]["port"] = free_port(socket.SOCK_DGRAM if h["bmc"]["driver"] == "ipmi" else socket.SOCK_STREAM)
        if h.get("storage", {}).get("driver") == "ganesha":
            h["storage"]["settings"] = {"export_dir": str(tmp_path / "exports"),
                                        "dbus_address": f"unix:path={tmp_path / 'ganesha-bus.sock'}"}
        elif h.get("storage", {}).get("driver") == "tgt":  # its management socket: one of this test's own
            h["storage"]["settings"] = {"control_port": free_port() % 30000 + 1000}
        if h.get("hypervisor", {}).get("driver") == "libvirt":  # its libvirtd listens in the test's directory
            h["hypervisor"]["url"] = f"qemu:///system?socket={tmp_path / h['name'] / 'libvirt-sock'}"
            h["hypervisor"]["settings"]["domain_type"] = accelerator()[0].replace("tcg", "qemu")
    return doc


@contextmanager
def kvm_stack(tmp_path: Path, timing: Timing | None = None) -> Iterator[Stack]:
    skip_without_machines()
    # a boot under software emulation takes a minute or two, and its firmware
    # some 20 s to ask for its script: a real server's POST is as slow. The
    # guests run below the controllers beside them (the lab's niceness), so
    # a guest may not run for seconds: its beats are paced as for a loaded
    # real server, not for the process machines' 0.25 s
    timing = timing or Timing(boot_timeout=300.0, boot_script_timeout=90.0, heartbeat_interval=5.0)
    with running_stack(tmp_path, timing, doc=kvm_doc(tmp_path), public=GATEWAY) as s:
        yield s
