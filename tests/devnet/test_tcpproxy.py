"""The TCP proxy the chaos tests put between the daemon and its servers: forwards, cuts
(reset + refused), restores on the same port, stalls and resumes without losing bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.tcpproxy import TcpProxy

QUIET_S = 0.3  # long enough for a forwarded byte on loopback; proves a stall, not timing
WAIT_S = 10.0


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), WAIT_S)
    finally:
        writer.close()


async def test_forwards_cuts_restores_pauses_and_resumes(echo: int) -> None:
    async with TcpProxy("127.0.0.1", echo) as proxy:
        assert await roundtrip(proxy.port, b"hello") == b"hello"

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), WAIT_S) == b"x"
        assert proxy.connections == 1
        proxy.cut()
        assert proxy.is_cut
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), WAIT_S)  # reset, not left hanging
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)

        await proxy.restore()
        assert await roundtrip(proxy.port, b"again") == b"again"

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.pause()
        writer.write(b"held")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(4), QUIET_S)
        proxy.resume()
        assert await asyncio.wait_for(reader.readexactly(4), WAIT_S) == b"held"
        writer.close()
