"""Power through a BMC's Redfish service, with OpenStack's sushy client.

Redfish calls this driver makes (DMTF DSP0266 / DSP8010 schemas):

| voe              | Redfish                                                         |
|------------------|-----------------------------------------------------------------|
| on               | ``ComputerSystem.Reset`` ResetType ``On``                       |
| hard off         | ``ComputerSystem.Reset`` ResetType ``ForceOff``                 |
| soft off         | ``ComputerSystem.Reset`` ResetType ``GracefulShutdown``         |
| reset            | ``ComputerSystem.Reset`` ResetType ``ForceRestart``             |
| status           | ``PowerState`` (``PoweringOn`` reads on, ``PoweringOff`` off)   |
| next boot device | ``Boot.BootSourceOverrideTarget`` ``Pxe``/``Hdd``, ``...Enabled`` ``Once``/``Continuous`` |

sushy retries a refused connection and a BMC's 5xx answers by itself, for
up to half a minute by default (and treats 0 retries as "the default"). Here
it tries once, plus one quick retry of a 5xx: retry-then-verify is the base
class's job, and a failover must not wait on a dying BMC.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal, TypeVar

import sushy
from pydantic import Field
from sushy import exceptions as sushy_exc
from sushy.resources.system.system import System

from voe.domain.models import Host
from voe.drivers.base import BootDevice, DriverSettings, PowerDriver, PowerState
from voe.errors import DriverError

T = TypeVar("T")

_RESET = {
    "power on": sushy.ResetType.ON,
    "power off": sushy.ResetType.FORCE_OFF,
    "soft off": sushy.ResetType.GRACEFUL_SHUTDOWN,
    "reset": sushy.ResetType.FORCE_RESTART,
}
_TARGET = {"pxe": sushy.BootSource.PXE, "disk": sushy.BootSource.HDD}
_FROM_TARGET = {sushy.BootSource.PXE: "pxe", sushy.BootSource.HDD: "disk"}
_ON = {sushy.PowerState.ON, sushy.PowerState.POWERING_ON}


class RedfishSettings(DriverSettings):
    address: str = Field(description="BMC host name or IP")
    port: int = Field(default=443, ge=1, le=65535)
    scheme: Literal["https", "http"] = Field(default="https", description="http only for emulators and labs")
    username: str = ""
    password: str = Field(default="", json_schema_extra={"secret": True})
    verify_tls: bool = Field(default=True, description="check the BMC's TLS certificate")
    system_id: str | None = Field(default=None, description="Systems member, e.g. /redfish/v1/Systems/1; "
                                                            "the first system when absent")
    auth: Literal["auto", "session", "basic"] = Field(
        default="auto", description="auto: a Redfish session, falling back to HTTP Basic")


class RedfishPower(PowerDriver):
    Settings = RedfishSettings

    def __init__(self, device: str, settings: RedfishSettings):
        super().__init__(device, settings)
        self._conn: sushy.Sushy | None = None
        self._auth: sushy.auth.AuthBase | None = None
        self._system_path: str | None = settings.system_id
        self._lock = threading.Lock()

    @classmethod
    def from_host(cls, host: Host) -> RedfishPower:
        b = host.bmc
        return cls(host.name, RedfishSettings(address=b.address, port=b.effective_port(), username=b.username,
                                              password=b.password or "", verify_tls=b.verify_tls,
                                              scheme=b.scheme))

    # --- session -------------------------------------------------------------

    def _connect(self) -> sushy.Sushy:
        s = self.settings
        self._auth = {"auto": sushy.auth.SessionOrBasicAuth, "session": sushy.auth.SessionAuth,
                      "basic": sushy.auth.BasicAuth}[s.auth](username=s.username, password=s.password)
        return sushy.Sushy(f"{s.scheme}://{s.address}:{s.port}", auth=self._auth, verify=s.verify_tls,
                           server_side_retries=1, server_side_retries_delay=0.1,
                           read_timeout=s.timeout, connect_timeout=s.timeout)

    def _system(self) -> System:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            if self._system_path is None:
                members = self._conn.get_system_collection().members_identities
                if not members:
                    raise DriverError(self.device, "find system", "the BMC lists no ComputerSystem")
                self._system_path = sorted(members)[0]
            return self._conn.get_system(self._system_path)

    def _call(self, operation: str, fn: Callable[[System], T]) -> T:
        """Run ``fn(system)``; sushy's errors become typed ones. A failed
        connection is dropped so the next call logs in afresh."""
        try:
            return fn(self._system())
        except sushy_exc.AccessError as e:
            raise DriverError(self.device, operation, f"credentials refused: {e}") from None
        except sushy_exc.ServerSideError as e:
            raise DriverError(self.device, operation, str(e), transient=True) from None
        except sushy_exc.ConnectionError as e:
            self._conn = None  # the BMC is gone: nothing to log out of
            raise DriverError(self.device, operation, f"BMC unreachable: {e}", transient=True) from None
        except sushy_exc.SushyError as e:
            raise DriverError(self.device, operation, str(e)) from None

    def close(self) -> None:
        """Log the Redfish session out (a BMC has few session slots)."""
        with self._lock:
            conn, auth, self._conn, self._auth = self._conn, self._auth, None, None
        if conn is not None and auth is not None:
            try:
                auth.close()
            except sushy_exc.SushyError:
                pass  # the session expires on the BMC by itself

    def check(self) -> str:
        def look(system: System) -> str:
            return (f"Redfish {self.settings.address}:{self.settings.port} {system.path} "
                    f"({system.manufacturer or '?'} {system.model or '?'}): power {system.power_state.value}")
        return self._read("check", lambda: self._call("check", look))

    # --- primitives ------------------------------------------------------------

    def _reset_as(self, operation: str) -> None:
        self._call(operation, lambda system: system.reset_system(_RESET[operation]))

    def _power_on(self) -> None:
        self._reset_as("power on")

    def _power_off(self) -> None:
        self._reset_as("power off")

    def _soft_off(self) -> None:
        self._reset_as("soft off")

    def _reset(self) -> None:
        self._reset_as("reset")

    def _get_power_state(self) -> PowerState:
        state = self._call("power status", lambda system: system.power_state)
        return PowerState.ON if state in _ON else PowerState.OFF

    def _set_boot_device(self, device: BootDevice, persistent: bool) -> None:
        enabled = sushy.BootSourceOverrideEnabled.CONTINUOUS if persistent else sushy.BootSourceOverrideEnabled.ONCE
        self._call(f"set boot device {device}",
                   lambda system: system.set_system_boot_options(target=_TARGET[device], enabled=enabled))

    def _get_boot_device(self) -> tuple[BootDevice | None, bool]:
        boot = self._call("get boot device", lambda system: system.boot)
        if boot.enabled == sushy.BootSourceOverrideEnabled.DISABLED:
            return None, False
        return _FROM_TARGET.get(boot.target), boot.enabled == sushy.BootSourceOverrideEnabled.CONTINUOUS  # type: ignore[return-value]
