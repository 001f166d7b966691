"""A reorg is not a stale chain: while the daemon re-reads what a reorg orphaned, the chain
keeps its status, every account holding something on it keeps its flags (nothing stored,
nothing republished) and the daemon stays ready.

Found by ``bench/chaos.py``: a reorg cleared the watcher's last read block, so for as long as
the re-read took, the chain looked never read: ``/readyz`` said "chain l2 not read yet" and,
when the chain-status loop looked in that window, every account got ``STALE_CHAIN`` and lost
it again a moment later (two stored transitions and two retained states per account, about
one reorg in twenty on a fast node). Here the node answers slowly (1.5 s per request, well
within ``max_lag_s``), so the re-read takes seconds and the window cannot be missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from tests.daemonkit import BOB, World, eventually, get_json, running_daemon, world
from tests.faultproxy import FaultMode, FaultProxy
from tests.mqttkit import Subscriber
from tests.storekit import postgres_database

CAROL = "0x" + "ca" * 20  # owes 1,700 against 1 WETH: liquidatable at ETH 2,000
SLOW_RPC_MS = 1500  # per request to l2, after the daemon is ready
REORG_DEPTH = 4  # deeper than the blocks a slowed daemon may lag behind the head
WATCH_S = 60.0


@pytest.fixture
async def reorg_world(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        await w.l1.mint_many(w.weth, [(CAROL, 10**18)])
        await w.l2.mint_many(w.debt, [(CAROL, 1700 * 10**6)])
        yield w


async def transitions(w: World) -> list[tuple[int, str, int, int]]:
    url = sa.make_url(w.database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        rows = await conn.fetch(
            "SELECT id, account, from_flags, to_flags FROM health_transitions ORDER BY id"
        )
    finally:
        await conn.close()
    return [(r["id"], r["account"], r["from_flags"], r["to_flags"]) for r in rows]


async def l2_status(w: World) -> dict[str, Any]:
    status, body = await get_json(w, "/v1/chains")
    assert status == 200, body
    return next(c for c in body["chains"] if c["name"] == "l2")


async def test_a_reorg_neither_stales_the_chain_nor_makes_the_daemon_unready(
    reorg_world: World,
) -> None:
    w = reorg_world
    async with FaultProxy(w.l2.url) as slow_l2:
        config = w.config()
        config["accounts"] = [BOB, CAROL]
        next(c for c in config["chains"] if c["name"] == "l2")["rpc_urls"] = [slow_l2.url]

        async def carol_listed() -> bool:
            status, body = await get_json(w, "/v1/liquidatable")
            return status == 200 and [a["account"] for a in body["accounts"]] == [CAROL]

        states = f"{w.prefix}/accounts/#"
        async with (
            Subscriber(w.broker.port, states) as sub,
            running_daemon(w, config, name="reorg"),
        ):
            await eventually(carol_listed, WATCH_S, "Carol listed")
            # The daemon's head ring must reach below the reorg: blocks it has seen.
            await w.l2.mine(REORG_DEPTH + 2)
            mined, _ = await w.l2.head()

            async def read_past_them() -> bool:
                return ((await l2_status(w))["last_read_block"] or 0) >= mined

            await eventually(read_past_them, WATCH_S, "l2 read past the mined blocks")
            await asyncio.sleep(1.0)  # the first retained states are out
            stored = await transitions(w)
            published = len(sub.messages)

            await slow_l2.set_mode(FaultMode.DELAY, delay_ms=SLOW_RPC_MS)
            reorgs = (await l2_status(w))["reorgs"]
            await w.l2.rpc("anvil_reorg", [REORG_DEPTH, []])
            head, _ = await w.l2.head()
            unready: list[list[str]] = []
            deadline = time.monotonic() + WATCH_S
            while True:  # until the daemon saw the reorg and read past it
                status, body = await get_json(w, "/readyz")
                if status != 200:
                    unready.append(body["reasons"])
                l2 = await l2_status(w)
                if l2["reorgs"] > reorgs and (l2["last_read_block"] or 0) >= head:
                    break
                assert time.monotonic() < deadline, f"reorg not handled: {l2}"
                await asyncio.sleep(0.1)
            await slow_l2.set_mode(FaultMode.PASS)
            await asyncio.sleep(1.0)  # a late flap would be stored by now

            assert unready == [], unready
            assert await transitions(w) == stored
            assert [m.topic.value for m in sub.messages[published:]] == []
