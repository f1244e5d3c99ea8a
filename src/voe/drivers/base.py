"""One small interface per concern, as Ironic splits power from management.

A driver does I/O and knows nothing of the store. It is built from a declared
settings schema (a pydantic model: name, type, required, secret), so the API,
``voe diff`` and the console validate and render settings without knowing the
driver. Drivers write only the primitive calls (``_power_on``, ``_read_port``
...); the retry-then-verify discipline lives here, once:

* a *read* that fails transiently is retried with backoff;
* a *write* is never retried blindly: it is done once, then confirmed by a
  read, because an unconfirmed write proves nothing (docs/design.md, "positive
  evidence");
* every failure is a ``DriverError`` naming the device and the operation.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from voe.domain.ports import PortConfig, carries
from voe.domain.storage import Access
from voe.errors import DriverError, DriverTimeout

T = TypeVar("T")

DriverObserver = Callable[["Driver", str, float, str], None]
"""Told of each device call a driver makes: the driver, ``read`` or
``write``, its seconds (a read's retries included), and its outcome
(``ok``, ``error`` or ``timeout``)."""


class DriverSettings(BaseModel):
    """Base of every driver's declared settings. Fields marked
    ``json_schema_extra={"secret": True}`` are stripped from every output."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per device call")
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts for reads that failed transiently")


def secret_fields(settings: type[BaseModel]) -> set[str]:
    return {
        name
        for name, f in settings.model_fields.items()
        if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("secret")
    }


class Driver(ABC):
    """Common to every concern: the device it talks to and its settings."""

    Settings: ClassVar[type[DriverSettings]] = DriverSettings
    concern: ClassVar[str] = "device"
    observer: DriverObserver | None = None  # set by whoever keeps the driver (the controller's metrics)

    def __init__(self, device: str, settings: DriverSettings):
        self.device = device
        self.settings = settings

    @property
    def driver_name(self) -> str:
        """The driver's class, as metrics name it."""
        return type(self).__name__

    @abstractmethod
    def check(self) -> str:
        """Prove reachability and credentials; return what was seen
        (e.g. "power on, firmware 2.1"). Raises DriverError otherwise."""

    def close(self) -> None:  # noqa: B027 - a driver with nothing to release keeps this
        """Release sessions and sockets; safe to call twice."""

    # -- discipline shared by all drivers ---------------------------------

    def _fail(self, operation: str, cause: object, transient: bool = False) -> DriverError:
        return DriverError(self.device, operation, str(cause) or type(cause).__name__, transient)

    @contextmanager
    def _observed(self, kind: str) -> Iterator[None]:
        """Tell the observer, if any, how a call inside went."""
        observer = self.observer
        if observer is None:
            yield
            return
        began, outcome = time.monotonic(), "error"
        try:
            yield
            outcome = "ok"
        except DriverTimeout:
            outcome = "timeout"
            raise
        finally:
            observer(self, kind, time.monotonic() - began, outcome)

    @contextmanager
    def _mapped(self, operation: str) -> Iterator[None]:
        """A write: whatever fails inside becomes a ``DriverError`` naming
        this device and ``operation`` (a timeout a ``DriverTimeout``), the
        cause kept: one place for every library's errors, as httpx's
        ``map_exceptions``."""
        with self._observed("write"):
            try:
                yield
            except DriverError:
                raise
            except TimeoutError:
                raise DriverTimeout(self.device, operation, self.settings.timeout) from None
            except Exception as e:
                raise self._fail(operation, e) from e

    def _read(self, operation: str, fn: Callable[[], T], retries: int | None = None) -> T:
        """Run a read, retrying transient failures with exponential backoff."""
        with self._observed("read"):
            delay = 0.05
            retries = self.settings.retries if retries is None else retries
            for attempt in range(retries + 1):
                try:
                    return fn()
                except DriverError as e:
                    if not e.transient or attempt == retries:
                        raise
                time.sleep(delay)
                delay *= 2
            raise AssertionError("unreachable")

    def _confirm(self, operation: str, read: Callable[[], T], want: Callable[[T], bool],
                 timeout: float | None = None, interval: float = 0.05) -> T:
        """Poll ``read`` until ``want`` holds; the read-back that turns a write
        into evidence. Raises DriverError (not transient) when it never does."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.timeout)
        seen: T | None = None
        while True:
            seen = self._read(operation, read)
            if want(seen):
                return seen
            if time.monotonic() >= deadline:
                raise DriverError(self.device, operation, f"not confirmed: device still reads {seen!r}")
            time.sleep(interval)
            interval = min(interval * 2, 0.5)


# --- power ------------------------------------------------------------------


class PowerState(str, Enum):
    ON = "on"
    OFF = "off"


BootDevice = Literal["pxe", "disk"]


class PowerDriver(Driver):
    """Power of one machine: a physical host through its BMC, or a VM through
    its hypervisor."""

    concern = "power"

    @abstractmethod
    def _power_on(self) -> None: ...

    @abstractmethod
    def _power_off(self) -> None:
        """Hard off: cut power now, no OS involvement."""

    @abstractmethod
    def _soft_off(self) -> None:
        """ACPI power button: ask the OS to shut down."""

    @abstractmethod
    def _reset(self) -> None: ...

    @abstractmethod
    def _get_power_state(self) -> PowerState: ...

    @abstractmethod
    def _set_boot_device(self, device: BootDevice, persistent: bool) -> None: ...

    @abstractmethod
    def _get_boot_device(self) -> tuple[BootDevice | None, bool]: ...

    # public, verified operations

    def power_state(self, retry: bool = True) -> PowerState:
        """``retry=False``: one attempt, for a look that must not hold up a
        failover (the fence that follows is what counts)."""
        return self._read("power status", self._get_power_state, None if retry else 0)

    def power_on(self, confirm: bool = True) -> None:
        self._write("power on", self._power_on)
        if confirm:
            self._confirm("power on", self._get_power_state, lambda s: s == PowerState.ON)

    def power_off(self, confirm: bool = True) -> None:
        """Hard power-off, confirmed by the device reading off: fencing evidence."""
        self._write("power off", self._power_off)
        if confirm:
            self._confirm("power off", self._get_power_state, lambda s: s == PowerState.OFF)

    def soft_off(self) -> None:
        self._write("soft off", self._soft_off)

    def reset(self) -> None:
        self._write("reset", self._reset)

    def power_on_or_reset(self) -> None:
        """Boot now, from the boot device just set: power on, or reset a
        machine already on; confirmed on. One operation, so that a driver
        whose BMC does both in one command saves a level of a group start
        one exchange per server (``IpmiPower``)."""
        self._write("power on or reset", self._power_on_or_reset)
        self._confirm("power on", self._get_power_state, lambda s: s == PowerState.ON)

    def _power_on_or_reset(self) -> None:
        if self._get_power_state() == PowerState.ON:
            self._reset()
        else:
            self._power_on()

    def set_boot_device(self, device: BootDevice, persistent: bool = False) -> None:
        self._write(f"set boot device {device}", lambda: self._set_boot_device(device, persistent))
        self._confirm(f"set boot device {device}", self._get_boot_device, lambda b: b[0] == device)

    def boot_device(self) -> tuple[BootDevice | None, bool]:
        return self._read("get boot device", self._get_boot_device)

    def _write(self, operation: str, fn: Callable[[], None]) -> None:
        with self._mapped(operation):
            fn()


# --- switch -----------------------------------------------------------------


class SwitchDriver(Driver):
    """VLAN membership and admin state of a managed switch's ports."""

    concern = "switch"

    @abstractmethod
    def _read_port(self, port: str) -> PortConfig: ...

    @abstractmethod
    def _write_port(self, port: str, config: PortConfig) -> None:
        """Make the port carry exactly ``config``; create missing VLANs."""

    @abstractmethod
    def _set_admin(self, port: str, up: bool) -> None: ...

    @abstractmethod
    def _list_vlans(self) -> set[int]: ...

    def read_port(self, port: str) -> PortConfig:
        return self._read(f"read port {port}", lambda: self._read_port(port))

    def read_ports(self, ports: list[str], retry: bool = True) -> dict[str, PortConfig]:
        """``retry=False``: one attempt, for a read that only saves work
        (a switch that may be dying must not hold its callers for retries)."""
        return self._read(f"read ports {', '.join(ports)}", lambda: self._read_ports(ports), None if retry else 0)

    def configure_port(self, port: str, config: PortConfig) -> PortConfig:
        """Write, then read back and compare: returns the confirmed state."""
        op = f"configure port {port}"
        with self._mapped(op):
            self._write_port(port, config)
        return self._confirm(op, lambda: self._read_port(port), lambda seen: carries(seen, config))

    def set_admin(self, port: str, up: bool) -> None:
        op = f"set port {port} admin {'up' if up else 'down'}"
        with self._mapped(op):
            self._set_admin(port, up)
        self._confirm(op, lambda: self._read_port(port), lambda seen: seen.admin_up == up)

    def vlans(self) -> set[int]:
        return self._read("list VLANs", self._list_vlans)

    def _write_ports(self, configs: dict[str, PortConfig]) -> None:
        """Write several ports; drivers that can batch override this."""
        for port, config in configs.items():
            self._write_port(port, config)

    def _read_ports(self, ports: list[str]) -> dict[str, PortConfig]:
        return {port: self._read_port(port) for port in ports}

    def configure_ports(self, configs: dict[str, PortConfig]) -> None:
        """Several ports in one pass (one read of the VLAN table, one write
        per VLAN, one read-back), each confirmed as in ``configure_port``."""
        if not configs:
            return
        op = f"configure ports {', '.join(sorted(configs))}"
        with self._mapped(op):
            self._write_ports(configs)
        self._confirm(op, lambda: self._read_ports(list(configs)),
                      lambda seen: all(carries(seen[p], c) for p, c in configs.items()))


# --- hypervisor -------------------------------------------------------------


class VmState(str, Enum):
    RUNNING = "running"
    PAUSED = "paused"
    OFF = "off"
    ABSENT = "absent"


@dataclass(frozen=True)
class VmSpec:
    """A VM for one persona incarnation: the persona's MACs, network boot."""

    name: str
    vcpus: int
    memory_mib: int
    macs: tuple[str, ...]
    boot: Literal["network", "disk"] = "network"
    networks: tuple[str, ...] = ()  # the hypervisor-side network/bridge per NIC, when it matters
    vlans: tuple[int, ...] = ()  # the VLAN the hypervisor tags each NIC's frames with (one per MAC)


class HypervisorDriver(Driver):
    concern = "hypervisor"

    @abstractmethod
    def _define(self, spec: VmSpec) -> None: ...

    @abstractmethod
    def _start(self, name: str) -> None: ...

    @abstractmethod
    def _shutdown(self, name: str) -> None:
        """Ask the guest OS to shut down (ACPI)."""

    @abstractmethod
    def _destroy(self, name: str) -> None:
        """Stop the VM now (pull the plug); the definition stays."""

    @abstractmethod
    def _undefine(self, name: str) -> None: ...

    @abstractmethod
    def _list(self) -> dict[str, VmState]: ...

    def state(self, name: str, retry: bool = True) -> VmState:
        return self._read(f"state of VM {name}", lambda: self._list().get(name, VmState.ABSENT), None if retry else 0)

    def list(self) -> dict[str, VmState]:
        return self._read("list VMs", self._list)

    def define(self, spec: VmSpec) -> None:
        self._call(f"define VM {spec.name}", lambda: self._define(spec))

    def start(self, name: str) -> None:
        self._call(f"start VM {name}", lambda: self._start(name))
        self._confirm(f"start VM {name}", lambda: self._list().get(name, VmState.ABSENT), lambda s: s == VmState.RUNNING)

    def shutdown(self, name: str) -> None:
        self._call(f"shut down VM {name}", lambda: self._shutdown(name))

    def destroy(self, name: str) -> str:
        """Stop now and confirm the VM reads off (or absent); returns what
        the hypervisor then says of it, in its own words: fencing evidence."""
        if self.state(name) not in (VmState.OFF, VmState.ABSENT):
            self._call(f"destroy VM {name}", lambda: self._destroy(name))
            self._confirm(f"destroy VM {name}", lambda: self._list().get(name, VmState.ABSENT),
                          lambda s: s in (VmState.OFF, VmState.ABSENT))
        return self._read(f"state of VM {name}", lambda: self._described(name))

    def _described(self, name: str) -> str:
        """The VM's state as the hypervisor words it (a driver that knows
        more than voe's states says more)."""
        return self._list().get(name, VmState.ABSENT).value

    def undefine(self, name: str) -> None:
        if self.state(name) == VmState.ABSENT:
            return
        self._call(f"undefine VM {name}", lambda: self._undefine(name))

    def _call(self, operation: str, fn: Callable[[], None]) -> None:
        with self._mapped(operation):
            fn()


# --- storage ----------------------------------------------------------------


class StorageSettings(DriverSettings):
    lun_dir: str = Field(default="/srv/voe/luns", description="where iSCSI personas' disk images live: DIR/PERSONA.img")


class StorageDriver(Driver):
    """Grants and revokes of one driver run one at a time: services number
    what they create (ganesha's export ids, tgt's target ids) from what
    they list, and two changes at once would take the same number."""

    concern = "storage"
    protocols: ClassVar[frozenset[str]] = frozenset()
    """What the service serves: ``nfs`` roots, ``iscsi`` LUNs."""

    def __init__(self, device: str, settings: DriverSettings):
        super().__init__(device, settings)
        self._changing = threading.Lock()

    def grant(self, access: Access) -> None:
        """Make the access exist on the storage service and confirm it does."""
        with self._changing:
            self._grant(access)

    def revoke(self, access: Access) -> None:
        """Remove the access and confirm, from the service itself, it is gone: fencing."""
        with self._changing:
            self._revoke(access)

    @abstractmethod
    def _grant(self, access: Access) -> None: ...

    @abstractmethod
    def _revoke(self, access: Access) -> None: ...

    @abstractmethod
    def grants(self) -> list[Access]:
        """Read what the service actually allows now."""
