"""A lab machine's Redfish BMC: the resources a Redfish client (sushy,
curl, Ironic) needs to log in, power a server and pick its next boot
device, over HTTP, served from a thread.

| Redfish (DSP0266, DSP8010 schemas)                            | lab machine                 |
|---------------------------------------------------------------|-----------------------------|
| ``GET /redfish/v1/`` ServiceRoot, ``$metadata``, ``odata``     | -                           |
| ``POST /redfish/v1/SessionService/Sessions``, ``DELETE`` one  | - (``redfish_sessions``)    |
| ``GET /redfish/v1/Systems`` ComputerSystemCollection          | -                           |
| ``GET /redfish/v1/Systems/{name}`` ``PowerState``, ``Boot``   | ``power_state()``, ``boot_device()`` |
| ``POST .../Actions/ComputerSystem.Reset`` ``On``              | ``power_on()``              |
| ``... ForceOff``                                              | ``power_off()``             |
| ``... GracefulShutdown``                                      | ``soft_off()``              |
| ``... ForceRestart``                                          | ``reset()``                 |
| ``PATCH /redfish/v1/Systems/{name}`` ``Boot`` override        | ``set_boot(device, persistent)`` |

Every request but the service root, its metadata and a login carries
either a session's ``X-Auth-Token`` or HTTP Basic credentials, both of
which the specification requires a service to accept. A BMC that loses
power forgets its sessions: the lab builds a new emulator when it returns.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from voe.lab.http_thread import HttpThread
from voe.lab.redfish_sessions import SESSIONS_PATH, SessionService

ROOT = "/redfish/v1"
SESSION_SERVICE_PATH = f"{ROOT}/SessionService"
METADATA_PATH = f"{ROOT}/$metadata"
ODATA_PATH = f"{ROOT}/odata"
_PUBLIC = {"/redfish", ROOT, METADATA_PATH, ODATA_PATH}  # readable without credentials (DSP0266)
_RESETS = {"On": "power_on", "ForceOff": "power_off", "GracefulShutdown": "soft_off", "ForceRestart": "reset"}
_TARGETS = {"Pxe": "pxe", "Hdd": "disk", "None": None}
_FROM_DEVICE = {"pxe": "Pxe", "disk": "Hdd", None: "None"}
_SCHEMAS = {  # the DMTF schema each resource served here is an instance of
    "ServiceRoot": "ServiceRoot.v1_5_0", "ComputerSystemCollection": "ComputerSystemCollection",
    "ComputerSystem": "ComputerSystem.v1_10_0", "SessionService": "SessionService.v1_1_0",
    "SessionCollection": "SessionCollection", "Session": "Session.v1_1_0",
}


@dataclass
class Reply:
    code: int
    body: dict | str | None = None  # JSON, or the CSDL document as XML text
    headers: dict[str, str] = field(default_factory=dict)


class RedfishEmulator:
    """One BMC: ``machine`` is the lab machine it powers."""

    def __init__(self, machine, address: str, port: int, username: str, password: str,
                 session_timeout: int = 600):
        self.machine = machine
        self.address, self.port = address, port
        self.sessions = SessionService(username, password, session_timeout)
        self._server = HttpThread((address, port), _handler(self), f"redfish-{port}")

    @property
    def system_path(self) -> str:
        return f"{ROOT}/Systems/{self.machine.name}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def authorized(self, headers) -> bool:
        """A live session's token, or the account's Basic credentials."""
        token = headers.get("X-Auth-Token")
        if token:
            return self.sessions.authenticate(token) is not None
        scheme, _, encoded = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.sessions.credentials_match(username, password)

    @staticmethod
    def is_public(method: str, path: str) -> bool:
        return (method == "GET" and path in _PUBLIC) or (method == "POST" and path == SESSIONS_PATH)

    # --- the resources --------------------------------------------------------

    def get(self, path: str) -> Reply:
        if path == "/redfish":
            return Reply(200, {"v1": f"{ROOT}/"})
        if path == ROOT:
            return Reply(200, {
                "@odata.id": f"{ROOT}/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
                "@odata.context": f"{METADATA_PATH}#ServiceRoot.ServiceRoot",
                "Id": "RootService", "Name": "voe lab BMC", "RedfishVersion": "1.6.0",
                "Systems": {"@odata.id": f"{ROOT}/Systems"},
                "SessionService": {"@odata.id": SESSION_SERVICE_PATH},
                "Links": {"Sessions": {"@odata.id": SESSIONS_PATH}}})
        if path == METADATA_PATH:
            return Reply(200, _metadata())
        if path == ODATA_PATH:
            return Reply(200, {"@odata.context": METADATA_PATH, "value": [
                {"name": "Service", "kind": "Singleton", "url": f"{ROOT}/"},
                {"name": "Systems", "kind": "Singleton", "url": f"{ROOT}/Systems"},
                {"name": "SessionService", "kind": "Singleton", "url": SESSION_SERVICE_PATH}]})
        if path == f"{ROOT}/Systems":
            return Reply(200, _collection(path, "ComputerSystemCollection", "Computer System Collection",
                                          [self.system_path]))
        if path == self.system_path:
            return Reply(200, self._system())
        if path == SESSION_SERVICE_PATH:
            return Reply(200, {
                "@odata.id": path, "@odata.type": "#SessionService.v1_1_0.SessionService",
                "Id": "SessionService", "Name": "Session Service", "ServiceEnabled": True,
                "SessionTimeout": self.sessions.timeout, "Sessions": {"@odata.id": SESSIONS_PATH}})
        if path == SESSIONS_PATH:
            return Reply(200, _collection(path, "SessionCollection", "Session Collection",
                                          [s.path for s in self.sessions.all()]))
        if path.startswith(SESSIONS_PATH + "/"):
            session = self.sessions.find(path.rsplit("/", 1)[1])
            return Reply(200, session.resource()) if session else Reply(404, _error(f"no session {path}"))
        return Reply(404, _error(f"no resource {path}"))

    def _system(self) -> dict:
        device, persistent = self.machine.boot_device()
        enabled = "Disabled" if device is None else ("Continuous" if persistent else "Once")
        return {
            "@odata.id": self.system_path, "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
            "Id": self.machine.name, "Name": self.machine.name, "SystemType": "Physical",
            "Manufacturer": "voe lab", "Model": "lab machine",
            "PowerState": "On" if self.machine.power_state() == "on" else "Off",
            "Boot": {"BootSourceOverrideEnabled": enabled, "BootSourceOverrideTarget": _FROM_DEVICE[device],
                     "BootSourceOverrideTarget@Redfish.AllowableValues": list(_TARGETS)},
            "Actions": {"#ComputerSystem.Reset": {
                "target": f"{self.system_path}/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": list(_RESETS)}},
        }

    def post(self, path: str, body: dict) -> Reply:
        if path == SESSIONS_PATH:
            return self._login(body)
        if path != f"{self.system_path}/Actions/ComputerSystem.Reset":
            return Reply(404, _error(f"no action {path}"))
        method = _RESETS.get(body.get("ResetType"))
        if method is None:
            return Reply(400, _error(f"ResetType must be one of {', '.join(_RESETS)}"))
        getattr(self.machine, method)()
        return Reply(204)

    def _login(self, body: dict) -> Reply:
        username, password = body.get("UserName"), body.get("Password")
        if not isinstance(username, str) or not isinstance(password, str):
            return Reply(400, _error("a login needs UserName and Password, both strings"))
        session = self.sessions.login(username, password)
        if session is None:
            return Reply(401, _error("wrong user name or password"))
        return Reply(201, session.resource(), {"X-Auth-Token": session.token, "Location": session.path})

    def patch(self, path: str, body: dict) -> Reply:
        if path != self.system_path:
            return Reply(404, _error(f"no resource {path}"))
        boot = body.get("Boot", {})
        current, persistent = self.machine.boot_device()
        target = boot.get("BootSourceOverrideTarget", _FROM_DEVICE[current])
        enabled = boot.get("BootSourceOverrideEnabled", "Continuous" if persistent else "Once")
        if target not in _TARGETS or enabled not in ("Once", "Continuous", "Disabled"):
            return Reply(400, _error(f"unsupported boot override {boot}"))
        device = None if enabled == "Disabled" else _TARGETS[target]
        self.machine.set_boot(device, enabled == "Continuous")
        return Reply(204)

    def delete(self, path: str) -> Reply:
        if path.startswith(SESSIONS_PATH + "/") and self.sessions.logout(path.rsplit("/", 1)[1]):
            return Reply(204)
        return Reply(404, _error(f"no session {path}"))


def _collection(path: str, kind: str, name: str, members: list[str]) -> dict:
    return {"@odata.id": path, "@odata.type": f"#{kind}.{kind}", "Name": name,
            "Members@odata.count": len(members), "Members": [{"@odata.id": m} for m in members]}


def _metadata() -> str:
    """The service's CSDL document: a reference to each DMTF schema it
    serves, and the service container rooted at the ServiceRoot."""
    refs = "\n".join(
        f'  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/{kind}_v1.xml">\n'
        f'    <edmx:Include Namespace="{kind}"/>\n'
        + (f'    <edmx:Include Namespace="{ns}"/>\n' if ns != kind else "")
        + "  </edmx:Reference>"
        for kind, ns in ((k.split(".")[0], v) for k, v in _SCHEMAS.items()))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
            f"{refs}\n"
            "  <edmx:DataServices>\n"
            '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
            '      <EntityContainer Name="Service" Extends="ServiceRoot.v1_5_0.ServiceContainer"/>\n'
            "    </Schema>\n"
            "  </edmx:DataServices>\n"
            "</edmx:Edmx>\n")


def _error(message: str) -> dict:
    return {"error": {"code": "Base.1.0.GeneralError", "message": message}}


def _handler(bmc: RedfishEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet, as a BMC is
            pass

        def _answer(self, reply: Reply) -> None:
            if isinstance(reply.body, str):
                data, kind = reply.body.encode(), "application/xml"
            else:
                data, kind = (b"", None) if reply.body is None else (json.dumps(reply.body).encode(), "application/json")
            self.send_response(reply.code)
            if kind:
                self.send_header("Content-Type", kind)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("OData-Version", "4.0")
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if not bmc.is_public(method, path) and not bmc.authorized(self.headers):
                return self._answer(Reply(401, _error("authentication required: a session's X-Auth-Token "
                                                      "or HTTP Basic credentials")))
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return self._answer(Reply(400, _error("body is not JSON")))
            if not isinstance(body, dict):
                return self._answer(Reply(400, _error("body must be a JSON object")))
            if method == "GET":
                return self._answer(bmc.get(path))
            if method == "DELETE":
                return self._answer(bmc.delete(path))
            return self._answer((bmc.post if method == "POST" else bmc.patch)(path, body))

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PATCH(self):
            self._serve("PATCH")

        def do_DELETE(self):
            self._serve("DELETE")

    return Handler
