"""An HTTP server on a thread, started and stopped as a device's management
port comes and goes (a BMC losing power, a host's OS crashing): stopping
closes the socket and every connection open on it, so clients see
connection refused or reset, as with hardware. Connections are kept open
between requests when the handler speaks HTTP/1.1, so a controller's
frequent probes pay no TCP handshake (and the lab no new thread) each.
Connections wait in a backlog as deep as a real management daemon's: a
level of a group start asks one hypervisor to define dozens of VMs at
once, and socketserver's default of five would reset connections."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BACKLOG = 128  # connections waiting to be accepted (socketserver's default is 5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address, handler) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._open_lock:
            open_now = list(self._open)
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed by its client meanwhile


class HttpThread:
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], name: str):
        self.address, self.handler, self.name = address, handler, name
        self._httpd: _Server | None = None

    def start(self) -> None:
        self._httpd = _Server(self.address, self.handler)
        threading.Thread(target=self._httpd.serve_forever, name=self.name, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.drop_connections()
            self._httpd = None
