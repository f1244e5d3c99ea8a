"""VMs on VMware vSphere through pyvmomi: one ESX host, reached through its
vCenter (or the host itself), with the stored credentials.

A persona's VM gets one vmxnet3 NIC per vNIC with the persona's MAC
(``addressType: manual``), each on a standard port group of the host's
vSwitch tagged with that vNIC's VLAN (``voe-vlan-N``, made when missing),
and boots from its first NIC. Power-on, guest shutdown (VMware Tools),
power-off (the fence's destroy: a hard stop, confirmed by the power state
vSphere reports) and removal are vSphere tasks, each awaited under the
driver's deadline. The session is opened on first use and kept; one that
failed is dropped and opened again on the next call.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import Field
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from voe.domain.models import Host
from voe.drivers.base import DriverSettings, HypervisorDriver, VmSpec, VmState
from voe.drivers.hypervisor.session import BlockingSession
from voe.errors import DriverError

T = TypeVar("T")

_STATES = {"poweredOn": VmState.RUNNING, "suspended": VmState.PAUSED, "poweredOff": VmState.OFF}
PORT_GROUP = "voe-vlan-{vlan}"


class VsphereSettings(DriverSettings):
    url: str = Field(description="the vCenter (or ESX host) SDK URL, e.g. https://vcenter.example.com/sdk")
    username: str = ""
    password: str = Field(default="", json_schema_extra={"secret": True})
    esx_host: str = Field(description="the ESX host the VMs run on, as vCenter names it")
    datastore: str | None = Field(default=None, description="where VM files go (default: the host's first)")
    vswitch: str = Field(default="vSwitch0", description="the host's standard vSwitch the port groups are made on")
    guest_id: str = Field(default="otherGuest64", description="the VMs' guest OS identifier")
    verify_tls: bool = Field(default=True, description="check vCenter's certificate against the system's CAs")


class VsphereHypervisor(HypervisorDriver):
    Settings = VsphereSettings

    def __init__(self, device: str, settings: VsphereSettings):
        super().__init__(device, settings)
        self._session = BlockingSession(device, self._connect, _disconnect_quietly, settings.timeout, "vsphere")

    @classmethod
    def from_host(cls, host: Host) -> VsphereHypervisor:
        hv = host.hypervisor
        settings = {"esx_host": host.name, **hv.settings}
        return cls(host.name, VsphereSettings(url=hv.url, username=hv.username, password=hv.password or "",
                                              **settings))

    # --- session -------------------------------------------------------------

    def _connect(self) -> vim.ServiceInstance:
        u = urlsplit(self.settings.url)
        context = ssl.create_default_context() if self.settings.verify_tls else None
        return SmartConnect(protocol=u.scheme or "https", host=u.hostname or "", path=u.path or "/sdk",
                            port=u.port or (443 if u.scheme != "http" else 80),
                            user=self.settings.username, pwd=self.settings.password,
                            sslContext=context, disableSslCertValidation=not self.settings.verify_tls,
                            httpConnectionTimeout=self.settings.timeout)

    def close(self) -> None:
        self._session.close()

    def _vsphere(self, operation: str, fn: Callable[[vim.ServiceInstance], T]) -> T:
        """Run ``fn(session)`` under the deadline; failures are typed and
        name this host."""
        try:
            return self._session.run(operation, fn)
        except (vim.fault.NotAuthenticated, vim.fault.InvalidLogin) as e:
            self._session.drop()
            raise DriverError(self.device, operation, _message(e)) from None
        except (vmodl.MethodFault, vmodl.RuntimeFault) as e:
            raise DriverError(self.device, operation, _message(e)) from None
        except OSError as e:  # refused, reset, unreachable: worth another try
            self._session.drop()
            raise DriverError(self.device, operation, f"vSphere unreachable: {e}", transient=True) from None

    def check(self) -> str:
        def look(si: vim.ServiceInstance) -> str:
            host = self._host(si)
            return (f"{si.content.about.fullName} at {self.settings.url}: host {host.name} "
                    f"({host.runtime.connectionState}), {len(host.vm)} VMs")
        return self._read("check", lambda: self._vsphere("check", look))

    # --- what is where ---------------------------------------------------------

    def _host(self, si: vim.ServiceInstance) -> vim.HostSystem:
        content = si.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        try:
            found = next((h for h in view.view if h.name == self.settings.esx_host), None)
        finally:
            view.Destroy()
        if found is None:
            raise DriverError(self.device, "find ESX host", f"vSphere knows no host {self.settings.esx_host!r}; "
                                                            "set hypervisor.settings.esx_host to its name in vCenter")
        return found

    def _vm(self, si: vim.ServiceInstance, name: str) -> vim.VirtualMachine | None:
        return next((vm for vm in self._host(si).vm if vm.name == name), None)

    def _datacenter(self, entity: vim.ManagedEntity) -> vim.Datacenter:
        while not isinstance(entity, vim.Datacenter):
            entity = entity.parent
        return entity

    def _port_group(self, host: vim.HostSystem, vlan: int) -> vim.Network:
        """The standard port group carrying ``vlan`` on the host's vSwitch,
        made when missing."""
        name = PORT_GROUP.format(vlan=vlan)
        if not any(pg.spec.name == name for pg in host.configManager.networkSystem.networkInfo.portgroup):
            spec = vim.host.PortGroup.Specification(name=name, vlanId=vlan, vswitchName=self.settings.vswitch,
                                                    policy=vim.host.NetworkPolicy())
            try:
                host.configManager.networkSystem.AddPortGroup(portgrp=spec)
            except (vim.fault.AlreadyExists, vim.fault.DuplicateName):
                pass  # a define running beside this one makes it: the group shares it
        # the host lists its networks; the datacenter's network folder has
        # one just made even where the host's list lags
        candidates = list(host.network) + list(self._datacenter(host).networkFolder.childEntity)
        found = next((n for n in candidates if isinstance(n, vim.Network) and n.name == name), None)
        if found is None:
            raise DriverError(self.device, f"make port group {name}", "vSphere made it but lists no network of "
                                                                      "that name")
        return found

    # --- primitives ------------------------------------------------------------

    def _define(self, spec: VmSpec) -> None:
        """Create the VM afresh (an earlier definition, off, is removed
        first): its NICs, their MACs and port groups are exactly the spec's."""
        def define(si: vim.ServiceInstance) -> None:
            host = self._host(si)
            old = self._vm(si, spec.name)
            if old is not None:
                if old.runtime.powerState != "poweredOff":
                    raise DriverError(self.device, f"define VM {spec.name}", "a VM of that name is running here")
                _wait(old.Destroy_Task(), self.device, f"remove the old VM {spec.name}")
            datastore = self.settings.datastore or (host.datastore[0].name if host.datastore else None)
            if datastore is None:
                raise DriverError(self.device, f"define VM {spec.name}", f"host {host.name} has no datastore")
            nics = []
            for i, mac in enumerate(spec.macs):
                vlan = spec.vlans[i] if i < len(spec.vlans) else None
                network = self._port_group(host, vlan) if vlan else next(iter(host.network))
                nic = vim.vm.device.VirtualVmxnet3(
                    key=-(i + 1), addressType="manual", macAddress=mac,
                    backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network.name,
                                                                                 network=network),
                    connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True))
                nics.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=nic))
            boot = [vim.vm.BootOptions.BootableEthernetDevice(deviceKey=-1)] if spec.boot == "network" and nics \
                else [vim.vm.BootOptions.BootableDiskDevice()]
            config = vim.vm.ConfigSpec(
                name=spec.name, numCPUs=spec.vcpus, memoryMB=spec.memory_mib, guestId=self.settings.guest_id,
                files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"), deviceChange=nics,
                bootOptions=vim.vm.BootOptions(bootOrder=boot))
            folder = self._datacenter(host).vmFolder
            _wait(folder.CreateVM_Task(config=config, pool=host.parent.resourcePool, host=host), self.device,
                  f"create VM {spec.name}")
        self._vsphere(f"define VM {spec.name}", define)

    def _on_vm(self, name: str, operation: str, op: Callable[[vim.VirtualMachine], None]) -> None:
        def run(si: vim.ServiceInstance) -> None:
            vm = self._vm(si, name)
            if vm is None:
                raise DriverError(self.device, f"{operation} VM {name}", "no such VM on this host")
            op(vm)
        self._vsphere(f"{operation} VM {name}", run)

    def _start(self, name: str) -> None:
        def start(vm: vim.VirtualMachine) -> None:
            if vm.runtime.powerState != "poweredOn":
                _wait(vm.PowerOnVM_Task(), self.device, f"power on VM {name}")
        self._on_vm(name, "start", start)

    def _shutdown(self, name: str) -> None:
        self._on_vm(name, "shut down", lambda vm: vm.runtime.powerState == "poweredOn" and vm.ShutdownGuest())

    def _destroy(self, name: str) -> None:
        def power_off(vm: vim.VirtualMachine) -> None:
            if vm.runtime.powerState != "poweredOff":
                _wait(vm.PowerOffVM_Task(), self.device, f"power off VM {name}")
        self._on_vm(name, "power off", power_off)

    def _undefine(self, name: str) -> None:
        self._on_vm(name, "remove", lambda vm: _wait(vm.Destroy_Task(), self.device, f"remove VM {name}"))

    def _list(self) -> dict[str, VmState]:
        def states(si: vim.ServiceInstance) -> dict[str, VmState]:
            return {vm.name: _STATES.get(vm.runtime.powerState, VmState.OFF) for vm in self._host(si).vm}
        return self._vsphere("list VMs", states)

    def spec(self, name: str) -> VmSpec | None:
        """The VM as vSphere has it: vCPUs, memory, each NIC's MAC and VLAN
        (from its port group); None when absent."""
        def read(si: vim.ServiceInstance) -> VmSpec | None:
            vm = self._vm(si, name)
            if vm is None:
                return None
            host = self._host(si)
            vlans = {pg.spec.name: pg.spec.vlanId for pg in host.configManager.networkSystem.networkInfo.portgroup}
            nics = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
            first = vm.config.bootOptions.bootOrder[0] if vm.config.bootOptions.bootOrder else None
            return VmSpec(name=vm.name, vcpus=vm.config.hardware.numCPU, memory_mib=vm.config.hardware.memoryMB,
                          macs=tuple(n.macAddress for n in nics),
                          boot="network" if isinstance(first, vim.vm.BootOptions.BootableEthernetDevice) else "disk",
                          networks=tuple(n.backing.deviceName for n in nics),
                          vlans=tuple(vlans.get(n.backing.deviceName, 0) for n in nics))
        return self._read(f"read VM {name}", lambda: self._vsphere(f"read VM {name}", read))


def _disconnect_quietly(si: vim.ServiceInstance) -> None:
    try:
        Disconnect(si)
    except Exception:  # a session gone already is closed enough
        pass


def _wait(task: vim.Task, device: str, operation: str) -> None:
    """Until the task ends (the caller's deadline bounds the wait); its
    error, if any, as a DriverError."""
    delay = 0.02
    while task.info.state in ("queued", "running"):
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    if task.info.state != "success":
        raise DriverError(device, operation, _message(task.info.error) if task.info.error else "the task failed")


def _message(fault: object) -> str:
    msg = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None)
    return f"{type(fault).__name__}: {msg}" if msg else type(fault).__name__
