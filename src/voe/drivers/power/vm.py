"""A VM's power through its hypervisor, so the controller powers VMs and
physical hosts through the same PowerDriver calls (virtualbmc's table, in
process: power operation -> hypervisor operation).

| power         | hypervisor                              |
|---------------|-----------------------------------------|
| on            | start                                   |
| hard off      | destroy (pull the plug; fencing)        |
| soft off      | shutdown (ACPI)                         |
| reset         | destroy, then start                     |
| status        | running/paused -> on; off/absent -> off |
| boot device   | the ``boot`` of the VM's definition     |

A paused VM reads *on*: its memory and disks are live and it may resume,
so it is no evidence that the persona cannot run.

The boot device lives in the VM's definition; changing it redefines the VM
with ``boot`` changed (libvirt applies it at the next start; the lab
hypervisor refuses it while the VM runs). The hypervisor driver must offer
``spec(name)`` (libvirt and lab do).
"""

from __future__ import annotations

from dataclasses import replace

from voe.drivers.base import BootDevice, DriverSettings, HypervisorDriver, PowerDriver, PowerState, VmSpec, VmState
from voe.errors import DriverError

_BOOT = {"pxe": "network", "disk": "disk"}
_FROM_BOOT = {"network": "pxe", "disk": "disk"}


class VmPowerSettings(DriverSettings):
    """Timeout and retries apply to the confirmation reads; the hypervisor
    driver's own settings govern its calls."""


class VmPower(PowerDriver):
    Settings = VmPowerSettings

    def __init__(self, hypervisor: HypervisorDriver, vm: str, settings: VmPowerSettings | None = None):
        super().__init__(f"{hypervisor.device}/{vm}", settings or VmPowerSettings(timeout=hypervisor.settings.timeout))
        self.hypervisor = hypervisor
        self.vm = vm

    def check(self) -> str:
        return f"VM {self.vm} on {self.hypervisor.device}: {self.hypervisor.state(self.vm).value}"

    def _power_on(self) -> None:
        self.hypervisor.start(self.vm)

    def _power_off(self) -> None:
        self.hypervisor.destroy(self.vm)

    def _soft_off(self) -> None:
        self.hypervisor.shutdown(self.vm)

    def _reset(self) -> None:
        self.hypervisor.destroy(self.vm)
        self.hypervisor.start(self.vm)

    def _get_power_state(self) -> PowerState:
        state = self.hypervisor.state(self.vm)
        return PowerState.ON if state in (VmState.RUNNING, VmState.PAUSED) else PowerState.OFF

    def _set_boot_device(self, device: BootDevice, persistent: bool) -> None:
        """A VM definition has no one-time override: the choice persists."""
        spec = self._spec("set boot device")
        if spec.boot != _BOOT[device]:
            self.hypervisor.define(replace(spec, boot=_BOOT[device]))  # type: ignore[arg-type]

    def _get_boot_device(self) -> tuple[BootDevice | None, bool]:
        return _FROM_BOOT.get(self._spec("get boot device").boot), True  # type: ignore[return-value]

    def _spec(self, operation: str) -> VmSpec:
        read = getattr(self.hypervisor, "spec", None)
        if read is None:
            raise DriverError(self.device, operation,
                              f"the {type(self.hypervisor).__name__} driver cannot read a VM definition back")
        spec = read(self.vm)
        if spec is None:
            raise DriverError(self.device, operation, f"no VM named {self.vm} on {self.hypervisor.device}")
        return spec
