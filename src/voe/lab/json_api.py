"""The lab's management services over HTTP: JSON with Basic auth, served
while their host's OS runs — the hypervisor API (docs/lab-hypervisor-api.md)
and the storage API (docs/lab.md). ``model.handle(method, path, body)``
answers each request."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from voe.lab.http_thread import HttpThread


class JsonApi:
    """Serves one host's API; ``model`` is the lab's model of the service."""

    def __init__(self, model, url: str, username: str, password: str):
        self.model = model
        u = urlsplit(url)
        self.address = (u.hostname or "127.0.0.1", u.port or 80)
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._server: HttpThread | None = None
        self.frozen = threading.Event()  # set while the host hangs

    def start(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept open (see ``http_thread``)

            def log_message(self, *a):  # quiet
                pass

            def _answer(self, code: int, body=None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                while api.frozen.is_set():  # a hung host does not answer
                    time.sleep(0.1)
                if self.headers.get("Authorization") != api.auth:
                    return self._answer(401, {"detail": "bad credentials"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                code, out = api.model.handle(method, self.path, body)
                self._answer(code, out)

            def do_GET(self):
                self._handle("GET")

            def do_PUT(self):
                self._handle("PUT")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self._server = HttpThread(self.address, Handler, f"lab-api-{self.address[1]}")
        self._server.start()

    def stop(self) -> None:
        """Connection refused from now on, as when the host's OS is gone."""
        if self._server is not None:
            self._server.stop()
            self._server = None
