"""A TCP proxy that cuts or stalls a connection on demand: the database (or the broker)
going away under a running daemon, without touching the real server.

    async with TcpProxy("127.0.0.1", 5432) as proxy:     # listens on 127.0.0.1:<free port>
        url = f"postgresql+asyncpg://user@127.0.0.1:{proxy.port}/db"
        proxy.cut()        # every open connection reset, new ones refused (server gone)
        await proxy.restore()  # accepting and forwarding again
        proxy.pause()      # connections stay open but no byte moves (a black hole)
        proxy.resume()     # bytes flow again, nothing was lost
        proxy.cut_after(200_000)  # cut once that many more bytes went client → server

``cut`` closes the listening socket, so a new connection gets ``ECONNREFUSED`` as from a
stopped server; ``restore`` binds the same port again (``SO_REUSEADDR``). ``pause`` keeps
accepting, buffers what arrives and forwards nothing until ``resume``: a hung network, where
only the client's own timeouts help. ``connections`` and ``accepted`` let a test see that a
client did reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import Self

CHUNK_BYTES = 64 * 1024  # read size per forwarding step
LOOPBACK = "127.0.0.1"


class TcpProxy:
    """Forwards TCP connections from ``host:port`` (a free loopback port by default) to
    ``upstream_host:upstream_port``; ``cut``/``restore`` and ``pause``/``resume`` inject the
    faults. Use as an async context manager (or ``start``/``close``)."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, host: str = LOOPBACK, port: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.accepted = 0
        """Connections accepted so far (while not cut)."""
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._cut_in: int | None = None  # bytes to the upstream left before an armed cut

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._links)

    @property
    def is_cut(self) -> bool:
        """True between ``cut`` and ``restore``."""
        return self._server is None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start listening (``port`` 0 picks a free one; ``port`` is then the real one)."""
        await self._listen()

    async def close(self) -> None:
        """Stop listening and reset every connection (idempotent)."""
        self.cut()
        self._flowing.set()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``restore``."""
        if self._server is not None:
            self._server.close()  # stop listening now; no need to wait for handlers
            self._server = None
        for link in list(self._links):
            link.reset()

    async def restore(self) -> None:
        """Accept and forward again on the same port (after ``cut``)."""
        if self._server is None:
            await self._listen()

    def cut_after(self, upstream_bytes: int) -> None:
        """``cut`` once ``upstream_bytes`` more bytes have been forwarded from clients to the
        upstream (the chunk that crosses the mark is not forwarded): a cut at a point of a
        transfer fixed by its size, not by the clock, so a fast client cannot finish first."""
        self._cut_in = upstream_bytes

    def pause(self) -> None:
        """Stall every byte in both directions (open and new connections) until ``resume``."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, starting with what was held back."""
        self._flowing.set()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant before a cut
            _reset(client_w)
            return
        self.accepted += 1
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_w)  # the real server is down: so is the proxy
            return
        link = _Link(client_w, upstream_w)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pipe(client_r, upstream_w, link, upstream=True),
                self._pipe(upstream_r, client_w, link, upstream=False),
            )
        finally:
            self._links.discard(link)
            link.close()

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: _Link,
        *,
        upstream: bool,
    ) -> None:
        with contextlib.suppress(OSError):
            while not link.closed:
                data = await source.read(CHUNK_BYTES)
                if not data:
                    break
                await self._flowing.wait()
                if link.closed:
                    break
                if upstream and self._cut_in is not None:
                    self._cut_in -= len(data)
                    if self._cut_in <= 0:
                        self._cut_in = None
                        self.cut()
                        break
                sink.write(data)
                await sink.drain()
        link.close()  # one side ended: end the other one too (half-open is not needed here)


class _Link:
    """One proxied connection: the client's and the upstream's writers."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = False

    def reset(self) -> None:
        """Abort both sides with a TCP reset (as a crashed server would leave them)."""
        self.closed = True
        _reset(self.client)
        _reset(self.upstream)

    def close(self) -> None:
        """Close both sides in order (FIN)."""
        if not self.closed:
            self.closed = True
            self.client.close()
            self.upstream.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger 0: close() sends RST instead of FIN, the peer sees ECONNRESET at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
