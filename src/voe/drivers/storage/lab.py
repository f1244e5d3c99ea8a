"""The lab's storage server (``voe.lab.storage``), through its JSON API:
the same grant/revoke/read-back contract as tgt and nfs-ganesha, with state
the lab's truth report shows."""

from __future__ import annotations

import httpx
from pydantic import Field

from voe.domain.storage import Access
from voe.drivers.base import StorageDriver, StorageSettings
from voe.errors import DriverError, DriverTimeout


class LabStorageSettings(StorageSettings):
    url: str = Field(description="the lab storage API, e.g. http://127.0.0.1:8482")
    username: str = "admin"
    password: str = Field(default="", json_schema_extra={"secret": True})


class LabStorageDriver(StorageDriver):
    protocols = frozenset({"nfs", "iscsi"})
    Settings = LabStorageSettings

    def __init__(self, device: str, settings: LabStorageSettings):
        super().__init__(device, settings)
        # one client for the driver's life: a grant is a write and a
        # read-back on the start path of every persona, and a fresh client
        # builds a TLS context each time
        self._http = httpx.Client(base_url=settings.url.rstrip("/"), auth=(settings.username, settings.password),
                                  timeout=settings.timeout)

    def close(self) -> None:
        self._http.close()

    def _req(self, operation: str, method: str, body: dict | None = None) -> httpx.Response:
        s: LabStorageSettings = self.settings  # type: ignore[assignment]
        try:
            r = self._http.request(method, "/v1/grants", json=body, timeout=s.timeout)
        except httpx.TimeoutException:
            raise DriverTimeout(self.device, operation, s.timeout) from None
        except httpx.HTTPError as e:
            raise DriverError(self.device, operation, f"storage API unreachable: {e}", transient=True) from None
        if r.status_code >= 400:
            raise DriverError(self.device, operation, f"HTTP {r.status_code}: {r.text[:200]}")
        return r

    def grants(self) -> list[Access]:
        return self._read("list grants", lambda: [
            Access(g["persona"], g["kind"], g["path"], g["initiator"], g.get("target"), g.get("lun") or 1)
            for g in self._req("list grants", "GET").json()])

    def check(self) -> str:
        return f"lab storage answers: {len(self.grants())} grant(s)"

    def _body(self, a: Access) -> dict:
        return {"persona": a.persona, "kind": a.kind, "path": a.path, "initiator": a.initiator, "target": a.target,
                "lun": a.lun}

    def _grant(self, access: Access) -> None:
        self._req(f"grant {access.persona}", "PUT", self._body(access))
        self._confirm(f"grant {access.persona}", self.grants, lambda seen: access in seen)

    def _revoke(self, access: Access) -> None:
        self._req(f"revoke {access.persona}", "DELETE", self._body(access))
        self._confirm(f"revoke {access.persona}", self.grants,
                      lambda seen: not any(g.initiator == access.initiator and (g.target or g.path) ==
                                           (access.target or access.path) for g in seen))
