"""Retained account state after a market-wide move: its bytes, its latest-wins coalescing and
its place behind events, on a real store and a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import numpy as np
import pytest

from daemon.config.model import MqttConfig
from daemon.documents import account_document, engine_state
from daemon.engine_loop import EngineLoop
from daemon.mqtt import publisher as publisher_module
from daemon.mqtt.account_state import account_state_json
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.topics import Topics, encode_json
from daemon.store.migrate import migrate
from daemon.store.writer import HealthStore
from margin.kernel import HealthTable
from margin.model import Flag
from tests.mqtt.test_relay import eth_at, healthy_book
from tests.mqttkit import Mosquitto, Subscriber
from tests.storekit import account_address, fresh_database
from tests.waitkit import eventually

ROWS = 400
ACCOUNTS = 3_000  # more than a few retained batches (RETAINED_BATCH)
SETTLE_S = 60.0  # generous: the whole burst on a loaded machine


def random_table(rng: random.Random, n: int) -> HealthTable:
    """``n`` rows of every kind: money of any sign and size, health finite, ∞ and NaN."""

    def money() -> list[float]:
        return [
            float(rng.choice([0, 1, -1, 7, -(10**6), rng.randint(-(10**15), 10**15)]))
            for _ in range(n)
        ]

    def health() -> list[float]:
        return [
            rng.choice([0.5, 1.0, 1.04999, 1.2, 3.25, float("inf"), float("nan"), 1e-7])
            for _ in range(n)
        ]

    return HealthTable(
        collateral_value=np.array(money()),
        weighted_collateral=np.array(money()),
        liability_value=np.array(money()),
        weighted_liability=np.array(money()),
        unrealized_pnl=np.array(money()),
        maintenance=np.array(money()),
        health=np.array(health()),
        health_latency=np.array(health()),
        shortfall=np.array(money()),
        flags=np.array([rng.randrange(0, 2**12) for _ in range(n)], dtype=np.uint16),
        actionable=np.array([rng.random() < 0.5 for _ in range(n)]),
    )


@pytest.mark.parametrize("decimals", [0, 2, 6])
def test_the_direct_account_json_is_the_documented_document(decimals: int) -> None:
    table = random_table(random.Random(decimals), ROWS)
    for i in range(ROWS):
        account = f"0x{i:040X}" if i % 2 else account_address(i)
        at = 1_700_000_000.0 + i / 7
        state = engine_state(account, table, i, value_decimals=decimals, at=at)
        expected = encode_json(account_document(state))
        assert account_state_json(account, table, i, value_decimals=decimals, at=at) == expected


class Numbered:
    """Retained payloads by row: ``{"row": n}``."""

    def payload(self, row: int) -> bytes:
        return b'{"row":%d}' % row


async def test_retained_state_waits_while_events_are_relayed(
    broker: Mosquitto, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never the starvation bound here: only the order is under test.
    monkeypatch.setattr(publisher_module, "RETAINED_YIELD_S", 600.0)
    topics = Topics(prefix)
    accounts = [account_address(i) for i in range(ACCOUNTS)]
    events = [(topics.event("liquidatable"), b'{"seq":%d}' % n) for n in range(ACCOUNTS)]
    async with (
        Subscriber(broker.port, f"{prefix}/#") as keeper,
        MqttPublisher(MqttConfig(url=broker.url, topic_prefix=prefix)) as publisher,
    ):
        await eventually(lambda: publisher.connected, what="connected")
        async with publisher.events_first():  # what the relay holds while it relays
            publisher.set_account_states_later(accounts, list(range(ACCOUNTS)), Numbered())
            for _ in range(10):
                await asyncio.sleep(0)  # the carrier's turns: it must not take them
            await publisher.deliver(events)
        await eventually(
            lambda: len(keeper.messages) >= 2 * ACCOUNTS + 1,
            what="every event and account state at the keeper",
            timeout_s=SETTLE_S,
            seen=lambda: len(keeper.messages),
        )
    kinds = [m.topic.value.split("/")[1] for m in keeper.messages if "/status" not in m.topic.value]
    assert kinds == ["events"] * ACCOUNTS + ["accounts"] * ACCOUNTS
    assert keeper.latest()[topics.account(accounts[-1])] == b'{"row":%d}' % (ACCOUNTS - 1)


async def test_a_crash_and_rebound_leave_each_account_s_latest_state_retained(
    tmp_path: Path, broker: Mosquitto, prefix: str
) -> None:
    topics = Topics(prefix)
    async with fresh_database("sqlite", tmp_path) as url:
        await migrate(url)
        async with (
            await HealthStore.open(url) as store,
            Subscriber(broker.port, f"{prefix}/accounts/#") as watcher,
            MqttPublisher(MqttConfig(url=broker.url, topic_prefix=prefix)) as publisher,
        ):
            loop = EngineLoop(
                engine=healthy_book(ACCOUNTS), store=store, publisher=publisher, value_decimals=2
            )
            await loop.cycle([eth_at("2000", 1.0)])  # every account healthy
            await loop.cycle([eth_at("1000", 2.0)])  # the crash: all liquidatable
            await loop.cycle([eth_at("2000", 3.0)])  # the rebound, before the crash went out

            def settled() -> bool:
                latest = watcher.latest()
                return len(latest) == ACCOUNTS and all(
                    json.loads(p)["bucket"] == "healthy" for p in latest.values()
                )

            await eventually(
                settled,
                what="every account's retained state healthy again",
                timeout_s=SETTLE_S,
                seen=lambda: f"{len(watcher.latest())} accounts, {len(watcher.messages)} messages",
            )
            assert publisher.stats().retained_topics == ACCOUNTS
            async with Subscriber(broker.port, f"{prefix}/accounts/#") as late:
                await eventually(lambda: len(late.messages) == ACCOUNTS, what="retained states")
            table = loop.engine.results
            for i, account in enumerate(loop.engine.accounts):
                payload = late.latest()[topics.account(account)]
                at = json.loads(payload)["updated_at"]
                state = engine_state(account, table, i, value_decimals=2, at=at)
                assert payload == encode_json(account_document(state))
                assert not state.flags & Flag.LIQUIDATABLE
    # At most one message per account and move (a state replaced before it went out is sent
    # once, as its latest), never a burst twice.
    assert len(watcher.messages) <= 3 * ACCOUNTS
