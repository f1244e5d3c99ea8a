"""The CLI's way to the controller: always the REST API, never the database.

Where to find it: ``--url``/``--token``/``--ca``, else
``VOE_URL``/``VOE_TOKEN``/``VOE_CA``, else the data directory of a
controller on this machine (its ``controller.url``, ``admin-token`` and
``ca.pem`` files). Without a CA, the system's CAs are trusted."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from platformdirs import user_data_dir

DEFAULT_URL = "https://127.0.0.1:8470"
DEFAULT_BOOT_URL = "http://127.0.0.1:8480"


class ApiError(Exception):
    def __init__(self, status: int, detail: Any, loc: list | None = None):
        self.status, self.detail, self.loc = status, detail, loc or []
        super().__init__(self.lines()[0] if self.lines() else str(status))

    def problems(self) -> list[dict]:
        """422 details as a list of {loc, msg}; other errors as one item."""
        if isinstance(self.detail, list):
            return [d for d in self.detail if isinstance(d, dict)]
        return [{"loc": self.loc, "msg": str(self.detail)}]

    def lines(self) -> list[str]:
        out = []
        for p in self.problems():
            loc = ".".join(str(x) for x in p.get("loc", []) if x != "body")
            out.append(f"{loc}: {p['msg']}" if loc else str(p["msg"]))
        return out


def _raise_for(r: httpx.Response) -> None:
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text}
        raise ApiError(r.status_code, body.get("detail", body), body.get("loc"))


@dataclass
class Target:
    url: str
    token: str | None
    ca: str | None = None


def resolve(url: str | None = None, token: str | None = None, data_dir: str | None = None,
            ca: str | None = None) -> Target:
    url = url or os.environ.get("VOE_URL")
    token = token or os.environ.get("VOE_TOKEN")
    ca = ca or os.environ.get("VOE_CA")
    directory = Path(data_dir or os.environ.get("VOE_DATA_DIR") or user_data_dir("voe"))
    if url is None and (directory / "controller.url").exists():
        url = (directory / "controller.url").read_text().strip()
    if token is None and (directory / "admin-token").exists():
        token = (directory / "admin-token").read_text().strip()
    if ca is None and (directory / "ca.pem").exists():
        ca = str(directory / "ca.pem")
    return Target(url or DEFAULT_URL, token, ca)


def data_dir(given: str | None = None) -> Path:
    """The controller's data directory: given, ``VOE_DATA_DIR``, or the user's."""
    return Path(given or os.environ.get("VOE_DATA_DIR") or user_data_dir("voe"))


def resolve_boot_url(given_data_dir: str | None = None) -> str:
    """Where machines fetch boot scripts: ``VOE_BOOT_URL``, else the data
    dir's ``boot.url`` that ``voe serve`` writes."""
    directory = data_dir(given_data_dir)
    if os.environ.get("VOE_BOOT_URL"):
        return os.environ["VOE_BOOT_URL"]
    if (directory / "boot.url").exists():
        return (directory / "boot.url").read_text().strip()
    return DEFAULT_BOOT_URL


class Client:
    def __init__(self, target: Target, timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self.target = target
        try:
            verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=target.ca) if target.ca else True
        except (OSError, ssl.SSLError) as e:
            raise ApiError(0, f"CA {target.ca} cannot be read as a PEM certificate bundle ({e}); "
                              "give the controller's CA (its data dir's ca.pem) with --ca or VOE_CA") from None
        self._http = httpx.Client(base_url=target.url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout,
                                  verify=verify)

    def request(self, method: str, path: str, **kw) -> Any:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.ConnectError as e:
            raise self._unreachable(e) from None
        _raise_for(r)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    def download(self, path: str, out: BinaryIO) -> int:
        """Stream a GET's body into ``out``; the bytes written."""
        written = 0
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise_for(r)
                for chunk in r.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
        except httpx.ConnectError as e:
            raise self._unreachable(e) from None
        return written

    def _unreachable(self, e: httpx.ConnectError) -> ApiError:
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            trusted = f"CA {self.target.ca}" if self.target.ca else "this system's CAs (no --ca given)"
            return ApiError(0, f"the controller at {self.target.url} presents a certificate that {trusted} did "
                               "not sign; give its CA (the controller's data dir's ca.pem) with --ca or VOE_CA")
        if "WRONG_VERSION_NUMBER" in str(e) or "record layer failure" in str(e):
            return ApiError(0, f"{self.target.url} does not speak TLS; is it the controller's boot port? "
                               "The API is on the port `voe serve --port` names (https)")
        return ApiError(0, f"cannot reach the controller at {self.target.url}; start it with `voe serve` "
                           "or point VOE_URL at it")

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("POST", path, json=json, **kw)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def list_all(self, kind: str, **params) -> list[dict]:
        """Every page of a list."""
        items: list[dict] = []
        offset = 0
        while True:
            page = self.get(f"/{kind}", params={**params, "limit": 1000, "offset": offset})
            items += page["items"]
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                return items
