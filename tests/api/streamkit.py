"""A small Server-Sent Events client for tests, and ways to fill the outbox of a running API.

``SseReader`` parses frames from a real HTTP response (aiohttp client) exactly as the SSE
specification reads them: ``id``, ``event``, ``data`` lines, comments, a blank line ends a
frame. ``price_cycle`` stores a real engine cycle (the book of ``tests.api.apikit`` at a new
ETH price), so the transitions it appends are the ones the daemon would write.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import sqlalchemy as sa

from daemon.store.rows import CycleContext, HealthRows
from margin.model import PriceInput
from tests.api.apikit import ARB_BLOCK, ETH_BLOCK, RunningApi

READ_TIMEOUT_S = 30.0


@dataclass
class Frame:
    """One dispatched SSE frame (or a comment, with ``event`` ``None``)."""

    event: str | None
    data: bytes = b""
    id: str | None = None
    comment: str | None = None


@dataclass
class SseReader:
    """Frames of one open stream, read line by line."""

    response: aiohttp.ClientResponse
    seen: list[Frame] = field(default_factory=list)

    async def frame(self, timeout_s: float = READ_TIMEOUT_S) -> Frame:
        """The next frame or comment."""
        current = Frame(event=None)
        data: list[bytes] = []
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self.response.content.readline()
                if not line:
                    raise EOFError("the stream ended")
                line = line.rstrip(b"\n")
                if not line:
                    if current.comment is not None or data or current.event or current.id:
                        current.data = b"\n".join(data)
                        self.seen.append(current)
                        return current
                    continue
                name, _, value = line.partition(b":")
                value = value.removeprefix(b" ")
                if name == b"":
                    current.comment = value.decode()
                elif name == b"id":
                    current.id = value.decode()
                elif name == b"event":
                    current.event = value.decode()
                elif name == b"data":
                    data.append(value)

    async def until(self, predicate: Any, what: str, timeout_s: float = READ_TIMEOUT_S) -> Frame:
        """Read until a frame satisfies ``predicate``; fail naming the last frames seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                frame = await self.frame(max(0.1, left))
            except TimeoutError:
                last = [(f.event, f.id, f.comment) for f in self.seen[-5:]]
                raise AssertionError(f"no {what} within {timeout_s}s; last frames {last}") from None
            if predicate(frame):
                return frame


async def price_cycle(api: RunningApi, eth_price: float, at: float) -> int:
    """Store one full engine cycle of the book at ``eth_price``; the transitions it appended."""
    engine = api.engine
    engine.set_prices([PriceInput(asset="ETH", price=eth_price, volatility=1.0)])
    healths = [engine.account_health(a) for a in engine.accounts]
    rows = HealthRows.from_accounts(healths, value_decimals=2)
    context = CycleContext(
        at=at, blocks={"eth": ETH_BLOCK, "arb": ARB_BLOCK}, prices={"ETH": str(eth_price)}
    )
    transitions = await api.store.write_cycle(rows, context)
    api.hub.wake()
    return len(transitions)


async def flood_outbox(api: RunningApi, count: int) -> None:
    """Append ``count`` liquidatable transitions of made-up accounts to the outbox at once
    (one INSERT … SELECT on PostgreSQL): far more than any socket buffer holds."""
    async with api.store.engine.begin() as conn:
        cycle_id = (await conn.execute(sa.text("SELECT max(id) FROM cycles"))).scalar_one()
        await conn.execute(
            sa.text(
                "INSERT INTO health_transitions (account, cycle_id, from_flags, to_flags, health,"
                " health_latency, shortfall, actionable, at)"
                " SELECT '0x' || lpad(to_hex(g), 40, '0'), :cycle, 0, 1, 0.5, 0.5, 100.25, true,"
                " now() FROM generate_series(1, :count) AS g"
            ),
            {"cycle": cycle_id, "count": count},
        )
    api.hub.wake()
