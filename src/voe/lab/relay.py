"""Per-machine TCP relays between agents and the controller, so a
``partition`` fault can cut one machine off while it keeps running (the
case where heartbeats stop but nothing is dead)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class Relay:
    """One machine's relays: a listener per controller its agent may call
    (a boot script names them all), all cut and healed together."""

    def __init__(self) -> None:
        self.cut = False
        self._servers: dict[tuple[str, int], tuple[asyncio.base_events.Server, int]] = {}
        self._conns: set[asyncio.StreamWriter] = set()

    async def url_to(self, target_url: str) -> str:
        """The URL to call instead of ``target_url``: a listener relaying
        to it, made at the first call for that target."""
        u = urlsplit(target_url)
        target = (u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80))
        if target not in self._servers:
            server = await asyncio.start_server(lambda r, w: self._serve(r, w, target), "127.0.0.1", 0)
            self._servers[target] = (server, server.sockets[0].getsockname()[1])
        return f"{u.scheme}://127.0.0.1:{self._servers[target][1]}{u.path.rstrip('/')}"

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for w in list(self._conns):
                w.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     target: tuple[str, int]) -> None:
        if self.cut:
            # a partitioned network does not refuse, it drops: hold, then close
            await asyncio.sleep(5)
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*target)
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
        for server, _ in self._servers.values():
            server.close()
        for w in list(self._conns):
            w.close()
