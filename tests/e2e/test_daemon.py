"""The real daemon process end to end: Anvil chains with block times, loopback exchanges,
PostgreSQL, Mosquitto. Keepers see liquidations in the API and on MQTT; nothing is duplicated
across a restart; a broker restart gets retained state back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

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

QUIET_S = 1.0  # a short look, once the state is settled, that no event follows


@pytest.fixture
async def e2e(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        yield w


def events(sub: Subscriber, prefix: str, kind: str) -> list[dict[str, object]]:
    return [json.loads(p) for p in sub.payloads(f"{prefix}/events/{kind}")]


async def unpublished(w: World) -> int:
    """Stored transitions whose events the relay has not seen acknowledged yet."""
    conn = await asyncpg.connect(w.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM health_transitions WHERE published_at IS NULL"
            )
        )
    finally:
        await conn.close()


async def liquidatable(w: World) -> list[dict[str, object]]:
    status, body = await get_json(w, "/v1/liquidatable")
    assert status == 200
    return list(body["accounts"])


async def test_liquidation_recovery_manipulation_and_restart(e2e: World) -> None:
    w = e2e
    async with Subscriber(w.broker.port, f"{w.prefix}/#") as sub:
        async with running_daemon(w) as daemon:
            # 1 WETH at 2000 x 0.8 = 1600 against 1500 of debt on the other chain: healthy.
            status, bob = await get_json(w, f"/v1/accounts/{BOB.upper().replace('0X', '0x')}")
            assert status == 200
            assert bob["state"]["flags"] == []
            assert await liquidatable(w) == []

            w.set_eth("1800")  # 1440 against 1500: liquidatable, shortfall 60
            listed = await eventually(lambda: liquidatable(w), what="Bob listed")
            assert [a["account"] for a in listed] == [BOB]
            assert listed[0]["shortfall"] == "60.00"
            assert listed[0]["actionable"] is True
            assert {line["chain"] for line in listed[0]["breakdown"]["holdings"]} == {"l1", "l2"}
            await eventually(
                lambda: _async(events(sub, w.prefix, "liquidatable")), what="liquidatable event"
            )
            (event,) = events(sub, w.prefix, "liquidatable")
            assert event["account"] == BOB
            assert "LIQUIDATABLE" in event["to_flags"]

            # A transfer restores collateral: 1.5 WETH x 1800 x 0.8 = 2160.
            await w.l1.transact(w.weth, "MintableERC20", "mint", BOB, 5 * 10**17)
            await eventually(
                lambda: _async(events(sub, w.prefix, "recovered")), what="recovered event"
            )
            assert await liquidatable(w) == []

            # One manipulated source (-50%): an outlier, the price holds, no event.
            before = len(sub.messages)
            w.set_eth("1800", "900", "1800")

            async def eth_with_outlier() -> dict[str, Any] | None:
                _, prices = await get_json(w, "/v1/prices")
                eth = next(p for p in prices["prices"] if p["asset"] == "ETH")
                return eth if eth["dropped"] else None

            eth = await eventually(eth_with_outlier, what="the manipulated source dropped")
            await asyncio.sleep(QUIET_S)  # and no event follows
            assert Decimal(eth["price"]) == Decimal("1800")
            assert eth["status"] == "OK"
            assert list(eth["dropped"].values()) == ["outlier"]
            new = [m for m in sub.messages[before:] if "/events/" in m.topic.value]
            assert new == []

            assert await daemon.stop() == 0
        seen = {k: len(events(sub, w.prefix, k)) for k in ("liquidatable", "recovered")}
        assert sub.payloads(f"{w.prefix}/status")[-1] == b"offline"

        # Restart on the same database: it resumes, and no event is sent twice. Ready means the
        # first valuation is stored; the test also waits for the first cycle to be counted and
        # for every stored transition to be published, so a resend would have happened by then.
        async with running_daemon(w):
            await eventually(
                lambda: _async(sub.payloads(f"{w.prefix}/status")[-1] == b"online"),
                what="online again",
            )
            await eventually(lambda: engine_cycles(w), what="the restarted daemon's first cycle")
            await eventually(
                lambda: _async_not(unpublished(w)), what="every stored transition published"
            )
            await asyncio.sleep(QUIET_S)  # and nothing arrives after that either
            assert {k: len(events(sub, w.prefix, k)) for k in seen} == seen


async def test_broker_restart_gets_retained_state_back(e2e: World) -> None:
    w = e2e
    topic = f"{w.prefix}/accounts/{BOB}"
    async with running_daemon(w):
        async with Subscriber(w.broker.port, f"{w.prefix}/#") as sub:
            await eventually(lambda: _async(sub.payloads(topic)), what="retained account state")
        await w.broker.kill()  # no persistence: the broker forgets every retained message
        await w.broker.start()
        async with Subscriber(w.broker.port, f"{w.prefix}/#") as sub:
            await eventually(lambda: _async(sub.payloads(topic)), what="state republished")
            await eventually(
                lambda: _async(sub.payloads(f"{w.prefix}/chains/l1")), what="chain status"
            )
            state = json.loads(sub.payloads(topic)[-1])
            assert state["account"] == BOB
            assert sub.payloads(f"{w.prefix}/status")[-1] == b"online"


async def _async(value: object) -> object:
    return value


async def _async_not(count: Awaitable[int]) -> bool:
    return not await count
