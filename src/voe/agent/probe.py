"""A persona's network probe, answering its machine's keeper on a
virtio-serial port (``io.voe.probe``), as QEMU's guest agent answers on
its own: one JSON request per line, one JSON answer per line. A request
may carry an ``id``, which its answer repeats: an answer that its asker
stopped waiting for reaches the next asker, who knows it by its ``id``.

* ``{"op": "interfaces"}``: the persona's interfaces as its kernel has
  them (name, MAC, VLAN id of an 802.1q interface, addresses);
* ``{"op": "send", "to": ADDRESS, "token": T}``: a UDP datagram carrying
  ``T`` to the probe port of ``ADDRESS``, from whichever interface the
  kernel routes it;
* ``{"op": "heard"}``: every probe that arrived here, with the interface
  it arrived on.

So reach between two personas is shown by packets: one sends, the other
says what arrived and where. The port exists only on a machine that
offers it (the lab's KVM machines), so a persona elsewhere runs no probe.
Standard library only, as the agent.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

from voe.agent import system

PROBE_PORT = 7310  # UDP
DEVICE = "/dev/virtio-ports/io.voe.probe"
IP_PKTINFO = 8


class Probe:
    """The listening half: every probe datagram that arrives, and where."""

    def __init__(self, port: int = PROBE_PORT) -> None:
        self.heard: list[dict] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.sock.bind(("0.0.0.0", port))
        threading.Thread(target=self._listen, name="probe-listen", daemon=True).start()

    def _listen(self) -> None:
        while True:
            data, ancdata, _, (src, _) = self.sock.recvmsg(2048, socket.CMSG_SPACE(12))
            index = next((struct.unpack("i", v[:4])[0] for level, kind, v in ancdata
                          if level == socket.IPPROTO_IP and kind == IP_PKTINFO), 0)
            try:
                name = socket.if_indextoname(index)
            except OSError:
                name = "?"
            with self.lock:
                self.heard.append({"token": data.decode(errors="replace"), "from": src, "interface": name})

    def answer(self, request: dict) -> dict:
        answer = self._answer(request)
        if "id" in request:
            answer["id"] = request["id"]
        return answer

    def _answer(self, request: dict) -> dict:
        """Every failure is an answer too: a probe that died would answer
        no request after it, and its keeper could only wait."""
        op = request.get("op")
        try:
            if op == "interfaces":
                return {"interfaces": system.interfaces()}
            if op == "send":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(str(request["token"]).encode(), (request["to"], PROBE_PORT))
                return {"sent": True}
            if op == "heard":
                with self.lock:
                    return {"heard": list(self.heard)}
        except Exception as e:  # every failure: see the docstring
            return {"error": f"{op}: {type(e).__name__}: {e}"}
        return {"error": f"unknown op {op!r}: interfaces, send or heard"}


def serve(device: str = DEVICE) -> None:
    """Answer requests on ``device`` for as long as it exists. Everything
    an answer needs is loaded first: a probe must answer while the
    persona's root (on NFS) is cut off with its network."""
    system.interfaces()
    probe = Probe()
    fd = os.open(device, os.O_RDWR)
    print(f"voe-probe answering on {device}", flush=True)  # when, on the console: the lab waits for it
    pending = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:  # nobody at the other end yet
            time.sleep(0.2)
            continue
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if not isinstance(request, dict):
                continue
            _write_all(fd, json.dumps(probe.answer(request)).encode() + b"\n")


def _write_all(fd: int, data: bytes) -> None:
    """A port takes at most a few pages per write."""
    while data:
        data = data[os.write(fd, data):]
