"""A fault-injecting HTTP proxy in front of a real JSON-RPC node, for RPC pool tests.

``FaultProxy(upstream)`` listens on 127.0.0.1 (a free port), accepts POSTs on any path (so a
URL can carry a fake API key) and forwards them to ``upstream`` unless ``set_mode`` says to
misbehave. It counts the requests it saw and the JSON-RPC methods in them; a request refused at
the socket level is, by nature, not seen.

``FaultMode.RANDOM`` makes a share of the requests (``fault_rate``) fail at random, drawn from a
seeded RNG: a connection reset, HTTP 500, 429 with ``Retry-After``, a garbage body, or a hang of
``hang_s`` seconds before the request is forwarded after all. ``faults`` counts each kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections import Counter
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

MAX_BODY_BYTES = 64 * 1024 * 1024  # forward bodies far above the node's 2 MiB limit


class FaultMode(StrEnum):
    """What the proxy does with the next requests."""

    PASS = "pass"  # forward unchanged
    REFUSE = "refuse"  # stop listening (connection refused), reset kept-alive connections
    HANG = "hang"  # never answer (until the mode changes or the proxy closes)
    HTTP500 = "http500"  # 500 with a text body
    RATE_LIMIT = "rate_limit"  # 429 with ``Retry-After: <retry_after>``
    GARBAGE = "garbage"  # 200 with an HTML body
    WRONG_CHAIN = "wrong_chain"  # forward, but answer eth_chainId with ``wrong_chain_id``
    DELAY = "delay"  # forward after ``delay_ms``
    RANDOM = "random"  # ``fault_rate`` of the requests get one of ``RANDOM_FAULTS``, seeded


class RandomFault(StrEnum):
    """What one request drawn for a fault in ``FaultMode.RANDOM`` gets."""

    RESET = "reset"  # the connection is reset without an answer
    HTTP500 = "http500"
    RATE_LIMIT = "rate_limit"  # 429 with ``Retry-After: <retry_after>``
    GARBAGE = "garbage"  # 200 with an HTML body
    HANG = "hang"  # forwarded only after ``hang_s`` seconds


RANDOM_FAULTS = tuple(RandomFault)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FaultProxy:
    """JSON-RPC proxy with switchable faults; ``url`` is its base URL."""

    def __init__(self, upstream: str, *, port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self.mode = FaultMode.PASS
        self.retry_after = "1"
        self.delay_ms = 0
        self.wrong_chain_id = 0xDEAD
        self.fault_rate = 0.0
        self.hang_s = 5.0
        self.faults: Counter[RandomFault] = Counter()
        self._rng = random.Random(0)
        self.requests = 0
        self.methods: list[str] = []
        self._release = asyncio.Event()  # wakes hung handlers when the mode changes
        self._app = web.Application(client_max_size=MAX_BODY_BYTES)
        self._app.router.add_route("*", "/{tail:.*}", self._handle)
        # No access log: it would print the fake API keys of the request paths.
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None)
        self._site: web.TCPSite | None = None
        self._client: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        """Base URL; any path below it is accepted."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start listening."""
        self._client = aiohttp.ClientSession()
        await self._runner.setup()
        await self._listen()

    async def close(self) -> None:
        """Stop listening, release hung requests, close the upstream session."""
        self._release.set()
        await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def set_mode(
        self,
        mode: FaultMode | str,
        *,
        retry_after: str | None = None,
        delay_ms: int | None = None,
        wrong_chain_id: int | None = None,
        fault_rate: float | None = None,
        hang_s: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Switch behaviour for the following requests (``seed`` restarts the fault RNG)."""
        mode = FaultMode(mode)
        if fault_rate is not None:
            self.fault_rate = fault_rate
        if hang_s is not None:
            self.hang_s = hang_s
        if seed is not None:
            self._rng = random.Random(seed)
        if retry_after is not None:
            self.retry_after = retry_after
        if delay_ms is not None:
            self.delay_ms = delay_ms
        if wrong_chain_id is not None:
            self.wrong_chain_id = wrong_chain_id
        previous, self.mode = self.mode, mode
        self._release.set()
        self._release = asyncio.Event()
        if mode is FaultMode.REFUSE and self._site is not None:
            await self._site.stop()
            self._site = None
        elif previous is FaultMode.REFUSE and mode is not FaultMode.REFUSE:
            await self._listen()

    async def _listen(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests += 1
        self.methods.extend(_methods(body))
        mode = self.mode
        if mode is FaultMode.RANDOM:
            return await self._random(request, body)
        if mode is FaultMode.REFUSE:  # a kept-alive connection outlived the listener: reset it
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if mode is FaultMode.HANG:
            await self._release.wait()
            return web.Response(status=503, text="released")
        if mode is FaultMode.HTTP500:
            return web.Response(status=500, text="Internal Server Error")
        if mode is FaultMode.RATE_LIMIT:
            return web.Response(
                status=429, headers={"Retry-After": self.retry_after}, text="Too Many Requests"
            )
        if mode is FaultMode.GARBAGE:
            return web.Response(
                status=200, content_type="text/html", text="<html><body>502 upstream</body></html>"
            )
        if mode is FaultMode.DELAY:
            await asyncio.sleep(self.delay_ms / 1000)
        return await self._forward(request, body, rewrite_chain_id=mode is FaultMode.WRONG_CHAIN)

    async def _random(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if self._rng.random() >= self.fault_rate:
            return await self._forward(request, body, rewrite_chain_id=False)
        fault = self._rng.choice(RANDOM_FAULTS)
        self.faults[fault] += 1
        match fault:
            case RandomFault.RESET:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            case RandomFault.HTTP500:
                return web.Response(status=500, text="Internal Server Error")
            case RandomFault.RATE_LIMIT:
                return web.Response(
                    status=429, headers={"Retry-After": self.retry_after}, text="Too Many Requests"
                )
            case RandomFault.GARBAGE:
                return web.Response(status=200, content_type="text/html", text="<html>502</html>")
            case RandomFault.HANG:
                try:
                    await asyncio.wait_for(self._release.wait(), self.hang_s)
                except TimeoutError:
                    return await self._forward(request, body, rewrite_chain_id=False)
                return web.Response(status=503, text="released")  # mode changed or closing

    async def _forward(
        self, request: web.Request, body: bytes, *, rewrite_chain_id: bool
    ) -> web.StreamResponse:
        assert self._client is not None
        try:
            async with self._client.post(
                self.upstream, data=body, headers={"Content-Type": "application/json"}
            ) as upstream:
                status, raw = upstream.status, await upstream.read()
        except aiohttp.ClientError:
            # The node dropped the connection (e.g. while a too-large body was being written):
            # mirror that to the client rather than inventing an HTTP status.
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=502)
        if rewrite_chain_id:
            raw = _rewrite_chain_id(raw, body, self.wrong_chain_id)
        return web.Response(status=status, body=raw, content_type="application/json")


def _methods(body: bytes) -> list[str]:
    with contextlib.suppress(ValueError):
        payload = json.loads(body)
        items = payload if isinstance(payload, list) else [payload]
        return [str(item.get("method")) for item in items if isinstance(item, dict)]
    return ["<unparsable>"]


def _rewrite_chain_id(raw: bytes, request_body: bytes, chain_id: int) -> bytes:
    try:
        request: Any = json.loads(request_body)
        response: Any = json.loads(raw)
    except ValueError:
        return raw
    wanted = {
        item.get("id")
        for item in (request if isinstance(request, list) else [request])
        if isinstance(item, dict) and item.get("method") == "eth_chainId"
    }
    for item in response if isinstance(response, list) else [response]:
        if isinstance(item, dict) and item.get("id") in wanted and "result" in item:
            item["result"] = hex(chain_id)
    return json.dumps(response).encode()
