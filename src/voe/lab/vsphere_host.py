"""A lab host running VMware ESX, managed by a vCenter: VMware's own
simulator (vcsim) answers the vSphere API on the host's hypervisor URL,
and each VM it reports powered on is a lab machine that network-boots as
a persona's VM does (its first NIC's MAC asks voe for its iPXE script).

The simulator keeps the VMs' definitions and power states; this class
follows them, as the ESX host would run what vCenter says. Like the lab's
own hypervisor it runs only while the host's OS is up: an OS crash or a
power loss ends the simulator (the API refuses connections) and every VM
with it; a hang stops both."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from voe.domain.models import HypervisorSpec
from voe.drivers.base import VmState
from voe.drivers.hypervisor.vsphere import VsphereHypervisor, VsphereSettings
from voe.errors import DriverError
from voe.lab.hypervisor import Vm
from voe.lab.machine import Machine
from voe.lab.vcsim import FIRST_HOST, Vcsim

FOLLOW_EVERY = 0.1  # seconds between reads of the simulator's VM states


class VsphereHost:
    def __init__(self, host: Machine, spec: HypervisorSpec, root: Path,
                 make_vm_machine: Callable[[str, str, Path], Machine], on_change: Callable[[], None]):
        self.host = host
        self.spec = spec
        self.root = root
        self.make_vm_machine = make_vm_machine
        self.on_change = on_change
        self.vms: dict[str, Vm] = {}
        self.up = False
        self._sim: Vcsim | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def boot(self) -> None:
        """The host's OS came up: its API answers; VMs come back off."""
        with self._lock:
            if self.up:
                return
            u = urlsplit(self.spec.url)
            self._sim = Vcsim(f"{u.hostname}:{u.port}", self.spec.username, self.spec.password or "")
            self.up = True
            self._stop = threading.Event()
            reader = VsphereHypervisor(self.host.name, VsphereSettings(
                url=self.spec.url, username=self.spec.username, password=self.spec.password or "",
                esx_host=self.spec.settings.get("esx_host", FIRST_HOST), verify_tls=False, retries=0))
            threading.Thread(target=self._follow, args=(reader, self._stop), name=f"vsphere-{self.host.name}",
                             daemon=True).start()

    def down(self) -> None:
        with self._lock:
            self._stop.set()
            for vm in self.vms.values():
                vm.machine.power_off()
            self.vms.clear()  # vcsim keeps no state: a host that boots again has no VMs
            if self._sim is not None:
                self._sim.stop()
                self._sim = None
            self.up = False

    def hang(self, frozen: bool) -> None:
        for vm in self.vms.values():
            vm.machine.hang(frozen)
        if self._sim is not None and self._sim.proc.poll() is None:
            self._sim.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def _follow(self, reader: VsphereHypervisor, stop: threading.Event) -> None:
        """Run, stop and forget lab machines as the simulator's VMs are
        powered on, off and removed."""
        try:
            while not stop.wait(FOLLOW_EVERY):
                try:
                    states = reader.list()
                except DriverError:
                    continue  # hung, or going down
                with self._lock:
                    if stop.is_set():
                        return
                    changed = self._apply(reader, states)
                if changed:
                    self.on_change()
        finally:
            reader.close()

    def _apply(self, reader: VsphereHypervisor, states: dict[str, VmState]) -> bool:
        changed = False
        for name in [n for n in self.vms if n not in states]:
            self.vms.pop(name).machine.power_off()
            changed = True
        for name, state in states.items():
            vm = self.vms.get(name)
            if vm is None:
                spec = reader.spec(name)
                if spec is None or not spec.macs:
                    continue
                machine = self.make_vm_machine(name, spec.macs[0], self.root / "vms" / name)
                vm = self.vms[name] = Vm(name, spec.vcpus, spec.memory_mib, list(spec.macs), list(spec.vlans),
                                         spec.boot, machine)
            if state == VmState.RUNNING and not vm.machine.powered:
                vm.machine.power_on()
                changed = True
            elif state == VmState.OFF and vm.machine.powered:
                vm.machine.power_off()
                changed = True
        return changed
