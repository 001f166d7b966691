"""A restart with nothing changed on chain is quiet: warm-up state (chains not read yet, their
status not known yet) is not a transition, so nothing is stored and no event is published;
and a first start stores only the real state (no `→ STALE_CHAIN` and back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from margin.model import Flag
from tests.daemonkit import (
    BOB,
    World,
    engine_cycles,
    eventually,
    get_json,
    running_daemon,
    world,
)
from tests.mqttkit import Subscriber
from tests.storekit import postgres_database

CAROL = "0x" + "ca" * 20  # owes 1,700 against Bob's 1,500: liquidatable at ETH 2,000
QUIET_S = 1.5  # after the first cycle: a short look that nothing more is stored or sent
WAIT_S = 60.0


@pytest.fixture
async def restart_world(tmp_path: Path) -> AsyncIterator[World]:
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


async def test_a_restart_with_nothing_changed_stores_and_publishes_nothing(
    restart_world: World,
) -> None:
    w = restart_world
    config = w.config()
    config["accounts"] = [BOB, CAROL]

    async def carol_listed() -> bool:
        status, body = await get_json(w, "/v1/liquidatable")
        return status == 200 and [a["account"] for a in body["accounts"]] == [CAROL]

    async with running_daemon(w, config, name="first") as daemon:
        await eventually(carol_listed, WAIT_S, "Carol listed")
        await eventually(lambda: engine_cycles(w), WAIT_S, "the first engine cycle")
        await asyncio.sleep(QUIET_S)  # the first run's own warm-up settles
        assert await daemon.stop() == 0
    stored = await transitions(w)
    # The first start is quiet too: Bob (healthy) is silent, Carol goes under once.
    assert [(t[1], Flag(t[2]), Flag(t[3])) for t in stored] == [
        (CAROL, Flag.NONE, Flag.LIQUIDATABLE)
    ]

    events = f"{w.prefix}/events/#"
    async with Subscriber(w.broker.port, events) as sub, running_daemon(w, config, name="second"):
        await eventually(carol_listed, WAIT_S, "Carol listed after the restart")
        await eventually(lambda: engine_cycles(w), WAIT_S, "the restarted daemon's first cycle")
        await asyncio.sleep(QUIET_S)  # a short look: nothing is stored or published
        assert await transitions(w) == stored, "a restart stored transitions"
        assert [m.topic.value for m in sub.messages] == [], "a restart published events"
