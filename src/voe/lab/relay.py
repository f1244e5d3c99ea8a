"""Each lab machine's way to the controllers: an HTTP proxy of its own
(``CONNECT``, RFC 9110 §9.3.6) that its agent tunnels every call through,
so that a ``partition`` fault can cut one machine off while it keeps
running (the case where heartbeats stop but nothing is dead).

One proxy per machine, not a listener per controller: an agent calls
whichever controller it learns of (a boot script names some, every
answer names the ones serving now), and a cut machine must reach none of
them. TLS runs through the tunnel end to end. Only loopback targets are
tunnelled: the lab's traffic stays on this machine."""

from __future__ import annotations

import asyncio
import ipaddress

_HEAD_LIMIT = 8192
"""Bytes of a CONNECT request's head read at most."""


class Relay:
    """One machine's proxy, cut and healed as one."""

    def __init__(self) -> None:
        self.cut = False
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def url(self) -> str:
        """The proxy's URL, listening from the first call on."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for w in list(self._conns):
                w.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            # a partitioned network does not refuse, it drops: hold, then close
            await asyncio.sleep(5)
            writer.close()
            return
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        target = _connect_target(head[:_HEAD_LIMIT])
        if target is None:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*target)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        if self.cut:  # cut while connecting
            up_w.close()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._conns.update({writer, up_w})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while not self.cut and (data := await src.read(65536)):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._conns.difference_update({writer, up_w})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.close()


def _connect_target(head: bytes) -> tuple[str, int] | None:
    """``(host, port)`` of a ``CONNECT host:port`` request to a loopback
    address; None for any other request or target."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(line) != 3 or line[0] != "CONNECT":
        return None
    host, _, port = line[1].rpartition(":")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        return (host, int(port)) if loopback and 0 < int(port) < 65536 else None
    except ValueError:
        return None
