"""The real daemon restarted while the oracle's jump breaker is tripped: two of three ETH
sources manipulated +60 % with frozen data. The restarted daemon holds the last good price,
stays TRIPPED with its volatility, publishes no false event, and accepts the move only once
fresh data confirms it (DESIGN §4: ``confirm_rounds`` consecutive quorum rounds)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from daemon.store.writer import HealthStore
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

QUIET_S = 1.5  # how long "no event" is watched for after the restart's first cycle
EVENT_KINDS = ("liquidatable", "latency_risk", "recovered")


@pytest.fixture
async def chaos_world(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        yield w


def event_counts(sub: Subscriber, w: World) -> dict[str, int]:
    return {k: len(sub.payloads(f"{w.prefix}/events/{k}")) for k in EVENT_KINDS}


async def eth_price(w: World) -> dict[str, Any]:
    status, body = await get_json(w, "/v1/prices")
    assert status == 200, body
    return next(p for p in body["prices"] if p["asset"] == "ETH")


async def bob(w: World) -> dict[str, Any]:
    status, body = await get_json(w, f"/v1/accounts/{BOB}")
    assert status == 200, body
    state: dict[str, Any] = body["state"]
    return state


async def stored_eth_status(w: World) -> str | None:
    async with await HealthStore.open(w.database_url) as store:
        latest = await store.queries.latest_prices()
    return latest["ETH"].status if "ETH" in latest else None


async def test_a_restart_during_a_trip_stays_tripped_until_the_sources_confirm(
    chaos_world: World,
) -> None:
    w = chaos_world
    async with Subscriber(w.broker.port, f"{w.prefix}/#") as sub:
        async with running_daemon(w) as daemon:
            w.set_eth("1800")  # 1 WETH x 1800 x 0.8 = 1440 against 1500: liquidatable
            await eventually(
                lambda: _async(sub.payloads(f"{w.prefix}/events/liquidatable")),
                what="liquidatable event",
            )
            # Two of three sources +60 %, and their data stops changing: the move is a
            # pending jump that no fresh round confirms.
            w.prices.clock = time.time()
            w.set_eth("2880", "2880", "1800")

            async def tripped() -> bool:
                eth = await eth_price(w)
                return eth["status"] == "TRIPPED" and await stored_eth_status(w) == "TRIPPED"

            await eventually(tripped, what="ETH tripped, in memory and in the store")
            before = await eth_price(w)
            assert Decimal(before["price"]) == Decimal("1800")
            assert before["volatility"] > 0.1  # the 2000 -> 1800 move, above the floor
            assert "ORACLE_TRIPPED" in (await bob(w))["flags"]
            daemon.kill()  # SIGKILL: no chance to write anything on the way out
            assert daemon.proc is not None
            await daemon.proc.wait()
        seen = event_counts(sub, w)

        async with running_daemon(w):
            await eventually(lambda: engine_cycles(w), what="the restarted daemon's first cycle")
            await asyncio.sleep(QUIET_S)  # a short look: the trip is not lost, no event goes out
            eth = await eth_price(w)
            assert (eth["status"], Decimal(eth["price"])) == ("TRIPPED", Decimal("1800")), eth
            assert eth["volatility"] == before["volatility"]  # not reset to the floor
            state = await bob(w)
            assert "LIQUIDATABLE" in state["flags"]
            assert state["actionable"] is False  # held: a tripped price is never acted on
            assert event_counts(sub, w) == seen, [m.topic.value for m in sub.messages[-10:]]

            # Fresh data confirms the move: accepted, and only now Bob recovers.
            w.prices.clock = None

            async def confirmed() -> dict[str, Any] | None:
                eth = await eth_price(w)
                return eth if eth["status"] == "OK" else None

            eth = await eventually(confirmed, what="the move confirmed")
            assert Decimal(eth["price"]) == Decimal("2880")
            await eventually(
                lambda: _async(event_counts(sub, w)["recovered"] == seen["recovered"] + 1),
                what="recovered after the confirmation",
            )
            recovered = json.loads(sub.payloads(f"{w.prefix}/events/recovered")[-1])
            assert recovered["account"] == BOB


async def _async(value: object) -> object:
    return value
