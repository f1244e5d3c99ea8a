"""An HTTP server on a thread, started and stopped as a device's management
port comes and goes (a BMC losing power, a host's OS crashing): stopping
closes the socket, so clients see connection refused, as with hardware."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HttpThread:
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], name: str):
        self.address, self.handler, self.name = address, handler, name
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        self._httpd = ThreadingHTTPServer(self.address, self.handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name=self.name, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
