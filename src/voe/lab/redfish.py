"""A lab machine's Redfish BMC: the few resources a Redfish client (sushy,
curl, Ironic) needs to power a server and pick its next boot device, over
HTTP with Basic auth, served from a thread.

| Redfish (DSP0266, DSP8010 schemas)                            | lab machine                 |
|---------------------------------------------------------------|-----------------------------|
| ``GET /redfish/v1/`` ServiceRoot                              | -                           |
| ``GET /redfish/v1/Systems`` ComputerSystemCollection          | -                           |
| ``GET /redfish/v1/Systems/{name}`` ``PowerState``, ``Boot``   | ``power_state()``, ``boot_device()`` |
| ``POST .../Actions/ComputerSystem.Reset`` ``On``              | ``power_on()``              |
| ``... ForceOff``                                              | ``power_off()``             |
| ``... GracefulShutdown``                                      | ``soft_off()``              |
| ``... ForceRestart``                                          | ``reset()``                 |
| ``PATCH /redfish/v1/Systems/{name}`` ``Boot`` override        | ``set_boot(device, persistent)`` |

No SessionService: clients that try sessions first (sushy's default) fall
back to Basic auth, which every Redfish service must accept.
"""

from __future__ import annotations

import base64
import json
from http.server import BaseHTTPRequestHandler

from voe.lab.http_thread import HttpThread

ROOT = "/redfish/v1"
_RESETS = {"On": "power_on", "ForceOff": "power_off", "GracefulShutdown": "soft_off", "ForceRestart": "reset"}
_TARGETS = {"Pxe": "pxe", "Hdd": "disk", "None": None}
_FROM_DEVICE = {"pxe": "Pxe", "disk": "Hdd", None: "None"}


class RedfishEmulator:
    """One BMC: ``machine`` is the lab machine it powers."""

    def __init__(self, machine, address: str, port: int, username: str, password: str):
        self.machine = machine
        self.address, self.port = address, port
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._server = HttpThread((address, port), _handler(self), f"redfish-{port}")

    @property
    def system_path(self) -> str:
        return f"{ROOT}/Systems/{self.machine.name}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    # --- the resources --------------------------------------------------------

    def get(self, path: str) -> tuple[int, dict]:
        path = path.rstrip("/") or "/"
        if path == ROOT:
            return 200, {"@odata.id": f"{ROOT}/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
                         "Id": "RootService", "Name": "voe lab BMC", "RedfishVersion": "1.6.0",
                         "Systems": {"@odata.id": f"{ROOT}/Systems"}}
        if path == f"{ROOT}/Systems":
            return 200, {"@odata.id": path, "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                         "Name": "Computer System Collection", "Members@odata.count": 1,
                         "Members": [{"@odata.id": self.system_path}]}
        if path == self.system_path:
            return 200, self._system()
        return 404, _error(f"no resource {path}")

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

    def post(self, path: str, body: dict) -> tuple[int, dict | None]:
        if path != f"{self.system_path}/Actions/ComputerSystem.Reset":
            return 404, _error(f"no action {path}")
        method = _RESETS.get(body.get("ResetType"))
        if method is None:
            return 400, _error(f"ResetType must be one of {', '.join(_RESETS)}")
        getattr(self.machine, method)()
        return 204, None

    def patch(self, path: str, body: dict) -> tuple[int, dict | None]:
        if path.rstrip("/") != self.system_path:
            return 404, _error(f"no resource {path}")
        boot = body.get("Boot", {})
        current, persistent = self.machine.boot_device()
        target = boot.get("BootSourceOverrideTarget", _FROM_DEVICE[current])
        enabled = boot.get("BootSourceOverrideEnabled", "Continuous" if persistent else "Once")
        if target not in _TARGETS or enabled not in ("Once", "Continuous", "Disabled"):
            return 400, _error(f"unsupported boot override {boot}")
        device = None if enabled == "Disabled" else _TARGETS[target]
        self.machine.set_boot(device, enabled == "Continuous")
        return 204, None


def _error(message: str) -> dict:
    return {"error": {"code": "Base.1.0.GeneralError", "message": message}}


def _handler(bmc: RedfishEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet, as a BMC is
            pass

        def _answer(self, code: int, body: dict | None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("OData-Version", "4.0")
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") != ROOT and self.headers.get("Authorization") != bmc._auth:
                return self._answer(401, _error("authentication required"))  # the root is public, as specified
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return self._answer(400, _error("body is not JSON"))
            if method == "GET":
                return self._answer(*bmc.get(self.path))
            return self._answer(*(bmc.post if method == "POST" else bmc.patch)(self.path, body))

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PATCH(self):
            self._serve("PATCH")

    return Handler
