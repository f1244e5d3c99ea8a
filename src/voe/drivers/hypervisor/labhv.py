"""Client of the lab's hypervisor API (docs/lab-hypervisor-api.md): JSON
over HTTP with Basic auth. A refused connection means the hypervisor's OS
is gone; the caller may then fence through the host's BMC."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import Field

from voe.domain.models import Host
from voe.drivers.base import DriverSettings, HypervisorDriver, VmSpec, VmState
from voe.errors import DriverError, DriverTimeout

_STATES = {"running": VmState.RUNNING, "paused": VmState.PAUSED, "off": VmState.OFF}


class LabHvSettings(DriverSettings):
    url: str
    username: str = ""
    password: str = Field(default="", json_schema_extra={"secret": True})


class LabHypervisor(HypervisorDriver):
    Settings = LabHvSettings

    def __init__(self, device: str, settings: LabHvSettings):
        super().__init__(device, settings)
        self._http = httpx.Client(base_url=settings.url.rstrip("/"), auth=(settings.username, settings.password),
                                  timeout=settings.timeout)

    @classmethod
    def from_host(cls, host: Host) -> LabHypervisor:
        hv = host.hypervisor
        return cls(host.name, LabHvSettings(url=hv.url, username=hv.username, password=hv.password or ""))

    def close(self) -> None:
        self._http.close()

    def _req(self, operation: str, method: str, path: str, **kw) -> httpx.Response:
        try:
            r = self._http.request(method, path, timeout=self.settings.timeout, **kw)
        except httpx.TimeoutException:
            raise DriverTimeout(self.device, operation, self.settings.timeout) from None
        except httpx.TransportError as e:
            raise DriverError(self.device, operation, f"hypervisor API unreachable: {e}", transient=True) from None
        if r.status_code >= 400 and r.status_code != 404:
            raise DriverError(self.device, operation, f"HTTP {r.status_code}: {r.text[:200]}")
        return r

    def check(self) -> str:
        h = self._req("check", "GET", "/v1/host").json()
        return f"lab hypervisor {h['name']}: {h['cpus']} CPUs, {h['memory_mib']} MiB, {h['vms']} VMs"

    def _define(self, spec: VmSpec) -> None:
        body = {"vcpus": spec.vcpus, "memory_mib": spec.memory_mib, "macs": list(spec.macs),
                "vlans": list(spec.vlans), "boot": spec.boot}
        self._req(f"define VM {spec.name}", "PUT", _vm(spec.name), json=body)

    def _action(self, name: str, action: str) -> None:
        r = self._req(f"{action} VM {name}", "POST", _vm(name, action))
        if r.status_code == 404:
            raise DriverError(self.device, f"{action} VM {name}", "no such VM")

    def _start(self, name: str) -> None:
        self._action(name, "start")

    def _shutdown(self, name: str) -> None:
        self._action(name, "shutdown")

    def _destroy(self, name: str) -> None:
        self._action(name, "destroy")

    def _undefine(self, name: str) -> None:
        self._req(f"undefine VM {name}", "DELETE", _vm(name))

    def _list(self) -> dict[str, VmState]:
        return {vm["name"]: _STATES[vm["state"]] for vm in self._req("list VMs", "GET", "/v1/vms").json()}

    def _get_spec(self, name: str) -> VmSpec | None:
        r = self._req(f"read VM {name}", "GET", _vm(name))
        if r.status_code == 404:
            return None
        vm = r.json()
        return VmSpec(name=vm["name"], vcpus=vm["vcpus"], memory_mib=vm["memory_mib"], macs=tuple(vm["macs"]),
                      boot=vm["boot"], vlans=tuple(vm.get("vlans", [])))

    def spec(self, name: str) -> VmSpec | None:
        """The VM's definition as the hypervisor holds it; None when absent."""
        return self._read(f"read VM {name}", lambda: self._get_spec(name))


def _vm(name: str, action: str | None = None) -> str:
    """The API path of one VM; the name is quoted so it stays one segment."""
    return f"/v1/vms/{quote(name, safe='')}" + (f"/{action}" if action else "")
