"""The lab's management APIs (hypervisors, storage, Redfish BMCs) take a
level's burst of connections: a group start asks one hypervisor to define
dozens of VMs at once, and a connection refused or reset there fails a
start and fences its persona."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler

from voe.lab import http_thread

BURST = 48  # more than one hypervisor's VMs in the 1,000-persona bench (40)


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def test_a_burst_of_connections_waits_to_be_accepted_and_each_is_answered():
    """Connected before the server accepts any (as when its accept loop is
    starved of CPU): every one is queued by the kernel, none dropped."""
    server = http_thread._Server(("127.0.0.1", 0), _Ok)
    address = server.server_address
    clients = []
    serving = False
    try:
        for _ in range(BURST):
            c = socket.create_connection(address, timeout=1)
            c.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
            clients.append(c)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        serving = True
        for c in clients:
            c.settimeout(5)
            assert c.recv(1024).startswith(b"HTTP/1.1 200"), "a queued connection went unanswered"
    finally:
        for c in clients:
            c.close()
        if serving:
            server.shutdown()
        server.server_close()
