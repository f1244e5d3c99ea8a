"""The lab's control API, on 127.0.0.1: status, truth, faults and reach,
for the ``voe lab`` commands, tests and benchmarks. Plain JSON over HTTP."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from voe.lab.lab import Lab, LabError


def serve(lab: Lab, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self, code: int, body) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            u = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path == "/status":
                return self._answer(200, lab.status())
            if u.path == "/truth":
                return self._answer(200, lab.truth_report())
            if u.path == "/reach":
                try:
                    ok, why = lab.reach(q["a"], q["b"])
                except KeyError as e:
                    return self._answer(422, {"detail": f"missing {e}"})
                return self._answer(200, {"reach": ok, "why": why})
            self._answer(404, {"detail": "no such resource"})

        def do_POST(self):
            u = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if u.path == "/fault":
                try:
                    return self._answer(200, {"done": lab.fault(body["target"], body["fault"])})
                except (LabError, KeyError) as e:
                    return self._answer(422, {"detail": str(e)})
            if u.path == "/truth/reset":
                lab.checker.seen.clear()
                return self._answer(200, {"done": True})
            self._answer(404, {"detail": "no such resource"})

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="lab-control", daemon=True).start()
    return httpd
