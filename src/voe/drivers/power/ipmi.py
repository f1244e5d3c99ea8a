"""Power through a BMC over IPMI 2.0 (RMCP+ lanplus), with pyghmi's client.

pyghmi's calls block and, against a BMC that has gone silent, can wait far
longer than a controller may; every call here runs under a hard deadline
(``settings.timeout``) and a session that failed is dropped, so the next
call logs in afresh (a BMC that came back is reached again).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from pydantic import Field
from pyghmi import exceptions as pyghmi_exc
from pyghmi.ipmi import command
from pyghmi.ipmi.private import session as pyghmi_session

from voe.domain.models import Host
from voe.drivers.base import BootDevice, DriverSettings, PowerDriver, PowerState
from voe.errors import DriverError, DriverTimeout

_BOOTDEV = {"pxe": "network", "disk": "hd"}
_FROM_BOOTDEV = {"network": "pxe", "hd": "disk"}
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ipmi")

# pyghmi waits for a reply without first looking at the packets its IO
# thread already queued, so a reply that beats the waiter is noticed only
# when the retransmit timer fires: initialtimeout plus up to 0.5 s of
# jitter (0.5 s by default). About one call in fifty met it in the lab, each
# adding most of a second to a failover. A BMC answers a retransmitted
# request (same sequence number) again, so an early first retransmit
# costs a duplicate packet at worst.
pyghmi_session.initialtimeout = 0.05


class IpmiSettings(DriverSettings):
    address: str
    port: int = Field(default=623, ge=1, le=65535)
    username: str = ""
    password: str = Field(default="", json_schema_extra={"secret": True})


class IpmiPower(PowerDriver):
    Settings = IpmiSettings

    def __init__(self, device: str, settings: IpmiSettings):
        super().__init__(device, settings)
        self._cmd: command.Command | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_host(cls, host: Host) -> "IpmiPower":
        b = host.bmc
        return cls(host.name, IpmiSettings(address=b.address, port=b.effective_port(), username=b.username,
                                           password=b.password or ""))

    def _session(self) -> command.Command:
        if self._cmd is None:
            s = self.settings
            self._cmd = command.Command(s.address, s.username, s.password, port=s.port, keepalive=False)
        return self._cmd

    def _call(self, operation: str, fn):
        """Run ``fn(session)`` under the deadline; failures are typed."""
        def run():
            with self._lock:
                return fn(self._session())
        future = _POOL.submit(run)
        try:
            return future.result(timeout=self.settings.timeout)
        except FutureTimeout:
            self._cmd = None
            raise DriverTimeout(self.device, operation, self.settings.timeout) from None
        except pyghmi_exc.IpmiException as e:
            self._cmd = None
            text = str(e) or "no answer from the BMC"
            transient = "timeout" in text.lower() or text == "None" or "no answer" in text
            raise DriverError(self.device, operation, text, transient=transient) from None
        except OSError as e:
            self._cmd = None
            raise DriverError(self.device, operation, str(e), transient=True) from None

    def check(self) -> str:
        state = self.power_state()
        return f"IPMI {self.settings.address}:{self.settings.port} as {self.settings.username}: power {state.value}"

    def _power_on(self) -> None:
        self._call("power on", lambda c: c.set_power("on"))

    def _power_off(self) -> None:
        self._call("power off", lambda c: c.set_power("off"))

    def _soft_off(self) -> None:
        self._call("soft off", lambda c: c.set_power("shutdown"))

    def _reset(self) -> None:
        self._call("reset", lambda c: c.set_power("reset"))

    def _get_power_state(self) -> PowerState:
        r = self._call("power status", lambda c: c.get_power())
        return PowerState(r["powerstate"])

    def _set_boot_device(self, device: BootDevice, persistent: bool) -> None:
        self._call(f"set boot device {device}", lambda c: c.set_bootdev(_BOOTDEV[device], persist=persistent))

    def _get_boot_device(self) -> tuple[BootDevice | None, bool]:
        r = self._call("get boot device", lambda c: c.get_bootdev())
        return _FROM_BOOTDEV.get(r.get("bootdev")), bool(r.get("persistent"))
