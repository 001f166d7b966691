"""Loopback price APIs shaped like real ones, with settable prices, clocks and faults.

Used by the tests and by ``crossmargin demo`` (its exchanges), so it lives in package code.

``PriceServer`` is one real aiohttp server on 127.0.0.1 that answers, under any path prefix
(so a URL can carry a fake API key):

- Coinbase ``/v2/prices/{pair}/spot`` → ``{"data": {"amount": "3000.12", "base": …}}``
- Binance ``/api/v3/ticker/price?symbol=ETHUSDT`` → ``{"symbol": …, "price": "3000.12000000"}``
- Kraken ``/0/public/Ticker?pair=ETHUSD`` → ``{"error": [], "result": {"XETHZUSD": {"c": […]}}}``
- Bitstamp ``/api/v2/ticker/{pair}/`` → ``{"timestamp": "…", "last": "3000.12"}``
- Pyth Hermes ``/v2/updates/price/latest?ids[]=…`` → ``{"binary": …, "parsed": [{"id": …,
  "price": {"price", "conf", "expo", "publish_time"}, …}]}``
- ``/generic/{key}`` → ``{"data": {"amount": "3000.12", "ts": <unix s>}}``

``clock`` (unix s, ``None`` = real time) is the server's time: the ``Date`` header, Bitstamp's
timestamp, Pyth's ``publish_time`` and the generic ``ts``. ``mode`` injects faults: ``down``
(connection refused), ``slow`` (answers after ``slow_s``), ``html`` (a 200 HTML error page),
``garbage`` (200 with bytes that are not JSON), ``http500``, ``shape`` (valid JSON without the
price).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from decimal import Decimal
from email.utils import formatdate
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from aiohttp import web


class Mode(StrEnum):
    """How the server answers the next requests."""

    OK = "ok"
    DOWN = "down"
    SLOW = "slow"
    HTML = "html"
    GARBAGE = "garbage"
    HTTP500 = "http500"
    SHAPE = "shape"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PriceServer:
    """A loopback exchange/Hermes API; ``url`` is its base URL."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.prices: dict[str, Decimal] = {}  # pair / symbol / generic key -> price
        self.pyth: dict[str, tuple[int, int, int]] = {}  # feed id (no 0x) -> (price, conf, expo)
        self.clock: float | None = None
        self.mode = Mode.OK
        self.slow_s = 30.0
        self.requests = 0
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        # No access log: request paths carry the fake API keys of redaction tests.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        """Base URL; any path prefix below it is accepted."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        await self._listen()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release.set()
        await self._runner.cleanup()

    def set(self, key: str, price: str | Decimal) -> None:
        """Set the price of a pair (``ETH-USD``, ``ETHUSDT``…) or generic key."""
        self.prices[key] = Decimal(price)

    def set_pyth(self, feed_id: str, price: int, conf: int, expo: int = -8) -> None:
        """Set a Pyth feed's integer price and confidence (scaled by ``10**expo``)."""
        self.pyth[feed_id.lower().removeprefix("0x")] = (price, conf, expo)

    async def set_mode(self, mode: Mode | str, *, slow_s: float | None = None) -> None:
        """Switch behaviour; ``down`` closes the listening socket, leaving it reopens it."""
        mode = Mode(mode)
        if slow_s is not None:
            self.slow_s = slow_s
        previous, self.mode = self.mode, mode
        self._release.set()
        self._release = asyncio.Event()
        if mode is Mode.DOWN and self._site is not None:
            await self._site.stop()
            self._site = None
        elif previous is Mode.DOWN and mode is not Mode.DOWN:
            await self._listen()

    def now(self) -> float:
        """The server's clock."""
        return time.time() if self.clock is None else self.clock

    async def _listen(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        headers = {"Date": formatdate(self.now(), usegmt=True)}
        mode = self.mode
        if mode is Mode.DOWN:  # a kept-alive connection outlived the listener: reset it
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if mode is Mode.SLOW:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.slow_s)
        if mode is Mode.HTML:
            html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
            return web.Response(content_type="text/html", text=html, headers=headers)
        if mode is Mode.GARBAGE:
            return web.Response(body=b"\x00\xffprice=??\x13", headers=headers)
        if mode is Mode.HTTP500:
            return web.Response(status=500, text="Internal Server Error", headers=headers)
        if mode is Mode.SHAPE:
            return web.json_response({"message": "maintenance"}, headers=headers)
        try:
            body = self._answer(request)
        except KeyError:
            return web.json_response({"error": "unknown pair"}, status=404, headers=headers)
        return web.Response(text=json.dumps(body), content_type="application/json", headers=headers)

    def _answer(self, request: web.Request) -> Any:
        path, query, now = request.path, request.query, self.now()
        parts = [p for p in path.split("/") if p]
        if path.endswith("/spot") and "prices" in parts:
            pair = parts[-2]
            base, _, quote = pair.partition("-")
            return {"data": {"amount": str(self.prices[pair]), "base": base, "currency": quote}}
        if path.endswith("/api/v3/ticker/price"):
            symbol = query["symbol"]
            return {"symbol": symbol, "price": f"{self.prices[symbol]:.8f}"}
        if path.endswith("/0/public/Ticker"):
            pair = query["pair"]
            name = f"X{pair[:3]}Z{pair[3:]}"
            last = str(self.prices[pair])
            return {"error": [], "result": {name: {"a": [last, "1", "1.0"], "c": [last, "0.5"]}}}
        if "ticker" in parts and len(parts) >= 2 and parts[-2] == "ticker":
            pair = parts[-1]
            return {"timestamp": str(int(now)), "last": str(self.prices[pair])}
        if path.endswith("/v2/updates/price/latest"):
            return self._hermes(query.getall("ids[]"), int(now))
        if len(parts) >= 2 and parts[-2] == "generic":
            return {"data": {"amount": str(self.prices[parts[-1]]), "ts": now}}
        raise KeyError(path)

    def _hermes(self, ids: list[str], publish_time: int) -> Any:
        parsed = []
        for feed_id in ids:
            key = feed_id.lower().removeprefix("0x")
            price, conf, expo = self.pyth[key]
            entry = {"price": str(price), "conf": str(conf), "expo": expo}
            parsed.append(
                {
                    "id": key,
                    "price": {**entry, "publish_time": publish_time},
                    "ema_price": {**entry, "publish_time": publish_time},
                    "metadata": {"slot": 1, "proof_available_time": publish_time},
                }
            )
        return {"binary": {"encoding": "hex", "data": ["00"]}, "parsed": parsed}


# --- source entries for configs -------------------------------------------------------------


def _base(server: PriceServer | str) -> str:
    return server if isinstance(server, str) else server.url


def coinbase(server: PriceServer | str, pair: str = "ETH-USD", **extra: Any) -> dict[str, Any]:
    """An ``http`` source with the Coinbase preset on ``server`` (or a base URL)."""
    return {"kind": "http", "preset": "coinbase", "url": _base(server), "pair": pair, **extra}


def binance(server: PriceServer | str, pair: str = "ETHUSDT", **extra: Any) -> dict[str, Any]:
    """An ``http`` source with the Binance preset on ``server`` (or a base URL)."""
    return {"kind": "http", "preset": "binance", "url": _base(server), "pair": pair, **extra}


def generic(server: PriceServer | str, key: str = "ETH", **extra: Any) -> dict[str, Any]:
    """A hand-written ``http`` source (``price_path``/``timestamp_path``) on ``server``."""
    return {
        "kind": "http",
        "url": f"{_base(server)}/generic/{key}",
        "price_path": "data.amount",
        "timestamp_path": "data.ts",
        **extra,
    }
