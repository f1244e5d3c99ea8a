"""Per-machine TCP relays between agents and the controller, so a
``partition`` fault can cut one machine off while it keeps running (the
case where heartbeats stop but nothing is dead)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class Relay:
    """A relay whose far end is the last one asked of ``url_to``: a machine
    boots one script at a time, and each names where its agent calls."""

    def __init__(self) -> None:
        self.target = ("127.0.0.1", 80)
        self.cut = False
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def url_to(self, target_url: str) -> str:
        """Relay to ``target_url`` from now on; the URL to call instead."""
        u = urlsplit(target_url)
        self.target = (u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80))
        return f"{u.scheme}://127.0.0.1:{self.port}{u.path.rstrip('/')}"

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
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
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
        if self.server is not None:
            self.server.close()
        for w in list(self._conns):
            w.close()
