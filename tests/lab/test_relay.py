"""A lab machine's network: one HTTP proxy that its agent tunnels every
call through, to any controller on this machine and nowhere else, and that
a partition cuts as one."""

from __future__ import annotations

import asyncio

import pytest

from voe.lab.relay import Relay


async def _echo_server() -> tuple[asyncio.base_events.Server, int]:
    async def echo(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _connect(proxy: str, target: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(proxy.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return head, reader, writer


def test_a_tunnel_reaches_a_loopback_service_and_nothing_else():
    async def scenario():
        server, port = await _echo_server()
        relay = Relay()
        proxy = await relay.url()
        head, reader, writer = await _connect(proxy, f"127.0.0.1:{port}")
        assert head.startswith(b"HTTP/1.1 200")
        writer.write(b"beat")
        assert await asyncio.wait_for(reader.read(4), 5) == b"beat"
        writer.close()
        refused, _, w2 = await _connect(proxy, "192.0.2.1:443")  # TEST-NET-1: never dialled
        assert refused.startswith(b"HTTP/1.1 403")
        w2.close()
        await relay.stop()
        server.close()
    asyncio.run(scenario())


def test_a_cut_drops_open_tunnels_and_answers_no_new_one():
    async def scenario():
        server, port = await _echo_server()
        relay = Relay()
        proxy = await relay.url()
        _, reader, writer = await _connect(proxy, f"127.0.0.1:{port}")
        relay.set_cut(True)
        assert await asyncio.wait_for(reader.read(4), 5) == b""  # dropped
        with pytest.raises((asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError)):
            await asyncio.wait_for(_connect(proxy, f"127.0.0.1:{port}"), 1)  # held, never answered
        relay.set_cut(False)
        head, _, w3 = await _connect(proxy, f"127.0.0.1:{port}")
        assert head.startswith(b"HTTP/1.1 200")
        w3.close()
        await relay.stop()
        server.close()
    asyncio.run(scenario())

