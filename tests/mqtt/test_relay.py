"""The event relay on real stores and a real Mosquitto: a market-wide move, outages, MQTT off.

The burst drives a real ``EngineLoop`` (real ``MarginEngine``, ``HealthStore``, publisher,
relay and HTTP API) with price rounds fed straight into its queue: 40,000 accounts minted on
Anvil would take minutes, and the watchers are not what is under test here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from daemon.api.app import ApiServer
from daemon.api.positions import PositionMarkets
from daemon.config.model import ApiConfig, MqttConfig
from daemon.engine_loop import EngineLoop, PricesChanged
from daemon.metrics import Metrics
from daemon.mqtt.event_payloads import batch_messages, event_messages, event_payload
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.relay import EventRelay
from daemon.mqtt.topics import Topics, encode_json
from daemon.store.cycle_transactions import SPLIT_CYCLE_ROWS
from daemon.store.migrate import migrate
from daemon.store.outbox import OutboxConnection
from daemon.store.records import OutboxEntry, StoredTransition
from daemon.store.rows import CycleContext
from daemon.store.writer import HealthStore
from margin.engine import MarginEngine
from margin.model import Flag
from tests.api.apikit import StaticView
from tests.mqttkit import Mosquitto, Subscriber, TcpGate
from tests.storekit import (
    BOOK_CHAINS,
    BOOK_TOKENS,
    DIALECTS,
    DUSDC,
    PG_PORT,
    USDC_ARB,
    WETH,
    account_address,
    asset_price,
    book,
    book_rows,
    fresh_database,
    postgres_database,
)
from tests.waitkit import WAIT_S, eventually

BURST = 40_000  # more transitions in one cycle than asyncpg or SQLite can bind at once
DELIVERY_TIMEOUT_S = 120.0
LOW_VOLATILITY = 0.01  # no latency risk: every account moves by LIQUIDATABLE alone
PAGE = 10_000  # transitions read per query (the store's largest page)
API_PAGE = 1_000  # the API's largest page


def healthy_book(n: int) -> MarginEngine:
    """``n`` accounts with 1 ETH (eth) and 100 USDC (arb) against 1,000 USDC of debt: health
    1.69 at ETH 2,000, under water (0.89) at ETH 1,000."""
    engine = MarginEngine(tokens=BOOK_TOKENS, chains=BOOK_CHAINS)
    accounts = [account_address(i) for i in range(n)]
    engine.load_balances("eth", WETH, accounts, [10**18] * n, 100)
    engine.load_balances("arb", USDC_ARB, accounts, [100 * 10**6] * n, 200)
    engine.load_balances("eth", DUSDC, accounts, [1_000 * 10**6] * n, 100)
    return engine


def eth_at(price: str, round_at: float) -> PricesChanged:
    return PricesChanged(
        {
            "ETH": asset_price("ETH", price, round_at, volatility=LOW_VOLATILITY),
            "USDC": asset_price("USDC", "1", round_at, volatility=LOW_VOLATILITY),
        }
    )


def own_connection(store: HealthStore) -> OutboxConnection | None:
    """The relay's own connection, as the daemon gives it on PostgreSQL (unfenced)."""
    if store.engine.dialect.name != "postgresql":
        return None
    return OutboxConnection(store.engine, value_decimals=store.value_decimals)


async def wait_for(check: object, what: str, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
    assert callable(check)
    await eventually(check, what=what, timeout_s=max(timeout_s, WAIT_S), poll_s=0.1)


def event_ids(keeper: Subscriber) -> list[tuple[str, object]]:
    """(event type, transition id) of every event received, each payload decoded once."""
    ids = keeper.values("id")
    return [
        (m.topic.value.rsplit("/", 1)[-1], i) for m, i in zip(keeper.messages, ids, strict=False)
    ]


async def all_transitions(store: HealthStore) -> list[StoredTransition]:
    out: list[StoredTransition] = []
    while page := await store.queries.transitions(after_id=out[-1].id if out else 0, limit=PAGE):
        out += page
    return out


async def listed_accounts(api: str) -> tuple[int, set[str]]:
    """Every account ``GET /v1/liquidatable`` lists, page by page, and the reported total."""
    seen: set[str] = set()
    total = -1
    async with aiohttp.ClientSession() as session:
        for offset in range(0, BURST + API_PAGE, API_PAGE):
            url = f"{api}/v1/liquidatable?limit={API_PAGE}&offset={offset}"
            async with session.get(url) as response:
                assert response.status == 200
                body = await response.json()
            total = int(body["total"])
            seen.update(a["account"] for a in body["accounts"])
    return total, seen


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_one_move_flipping_40k_accounts_is_stored_published_and_listed_once(
    dialect: str, tmp_path: Path, broker: Mosquitto, prefix: str
) -> None:
    settings = ApiConfig(listen="127.0.0.1:0")
    async with fresh_database(dialect, tmp_path) as url:
        await migrate(url)
        async with (
            await HealthStore.open(url) as store,
            Subscriber(broker.port, f"{prefix}/events/#") as keeper,
            MqttPublisher(MqttConfig(url=broker.url, topic_prefix=prefix)) as publisher,
            ApiServer(
                queries=store.queries,
                store=store,
                view=StaticView(),
                settings=settings,
                metrics=Metrics(),
                markets=PositionMarkets(assets=frozenset(), chains=frozenset()),
            ) as api,
        ):
            relay = EventRelay(
                store=store, publisher=publisher, batch=10_000, connection=own_connection(store)
            )
            loop = EngineLoop(
                engine=healthy_book(BURST),
                store=store,
                publisher=publisher,
                value_decimals=2,
                events=relay,
            )
            relaying = asyncio.create_task(relay.run())
            try:
                await loop.cycle([eth_at("2000", 1.0)])  # every account stored, healthy
                assert await store.queries.transitions() == []
                await loop.cycle([eth_at("1000", 2.0)])  # the crash: all of them at once

                async def crash_stored() -> list[StoredTransition]:
                    # A loaded machine may take longer than the cycle waits for its write
                    # (cycle_writer.WRITE_WAIT_S): the write then finishes in the background.
                    found = await all_transitions(store)
                    return found if len(found) >= BURST else []

                stored = await eventually(crash_stored, what="the crash's transitions stored")
                assert len(stored) == BURST
                assert len({t.account for t in stored}) == BURST  # each stored once
                assert all(t.to_flags & Flag.LIQUIDATABLE for t in stored)
                expected = {("liquidatable", t.id) for t in stored}

                await wait_for(
                    lambda: len(set(keeper.values("id"))) >= BURST,
                    f"{BURST} events at the subscriber",
                )
                await wait_for(lambda: relay.stats().marked >= BURST, "every transition marked")
                await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile
            finally:
                relaying.cancel()
            received = event_ids(keeper)
            assert set(received) == expected
            assert len(received) == len(expected)  # once each: no duplicates
            assert await store.queries.outbox(limit=10) == []
            total, listed = await listed_accounts(api.url)
            assert total == BURST
            assert listed == {account_address(i) for i in range(BURST)}


async def test_a_resent_event_is_byte_identical(tmp_path: Path, prefix: str) -> None:
    """Built twice from the store (as a restart would), an event is the same message."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    await migrate(url)
    async with await HealthStore.open(url) as store:
        await store.write_cycle(
            book_rows(book(3, underwater_every=1)),
            CycleContext(at=1.5, blocks={"eth": 100, "arb": 7}, prices={"ETH": "2000"}),
        )
        first = await store.queries.outbox(limit=10)
        again = await store.queries.outbox(limit=10)
    topics = Topics(prefix)
    messages = [m for e in first for m in event_messages(topics, e)]
    assert messages == [m for e in again for m in event_messages(topics, e)]
    assert len(messages) == 3
    payload = json.loads(messages[0][1])
    assert payload["blocks"] == {"arb": 7, "eth": 100}  # from the cycle row, not memory
    assert payload["id"] == first[0].id
    assert payload["shortfall"] == "110.00"
    assert messages[0][0] == topics.event("liquidatable")


@pytest.mark.parametrize(
    ("from_flags", "to_flags", "health", "kinds"),
    [
        (Flag.NONE, Flag.LIQUIDATABLE | Flag.LATENCY_RISK, 0.5, ["liquidatable", "latency_risk"]),
        (Flag.LIQUIDATABLE, Flag.NONE, float("inf"), ["recovered"]),  # no debt: health null
        (Flag.NONE, Flag.STALE_CHAIN, 1.5, []),  # no event: marked without publishing
    ],
)
def test_event_payload_is_the_documented_json(
    from_flags: Flag, to_flags: Flag, health: float, kinds: list[str]
) -> None:
    entry = OutboxEntry(
        id=42,
        account="0x" + "ab" * 20,
        from_flags=int(from_flags),
        to_flags=int(to_flags),
        health=health,
        health_latency=float("inf"),
        shortfall=Decimal("12.50"),
        actionable=True,
        at=1_700_000_000.123456,
        blocks={"l2": 9, "l1": 1234},
    )
    topics = Topics("p")
    messages = event_messages(topics, entry)
    assert [topic for topic, _ in messages] == [topics.event(k) for k in kinds]  # type: ignore[arg-type]
    for _, payload in messages:  # the fast encoder matches encode_json exactly
        assert payload == encode_json(event_payload(entry))


def test_a_batch_encodes_each_cycle_once_and_every_payload_as_documented() -> None:
    first, second = {"l2": 9, "l1": 1234}, {"l1": 1235}
    entries = [
        OutboxEntry(
            id=i,
            account="0x" + f"{i:02x}" * 20,
            from_flags=int(Flag.NONE if i % 2 else Flag.LIQUIDATABLE),
            to_flags=int(Flag.LIQUIDATABLE if i % 2 else Flag.NONE),
            health=[0.5, float("inf"), float("nan"), 1][i % 4],
            health_latency=[0.25, 2.0][i % 2],
            shortfall=Decimal("0.00") if i % 2 == 0 else Decimal("1234567.89"),
            actionable=bool(i % 3),
            at=1_700_000_000 + i / 7,
            blocks=first if i < 5 else second,
        )
        for i in range(10)
    ]
    topics = Topics("p")
    batch = batch_messages(topics, entries)
    assert batch == [m for entry in entries for m in event_messages(topics, entry)]
    assert [payload for _, payload in batch] == [encode_json(event_payload(e)) for e in entries]


async def test_mqtt_off_marks_transitions_without_publishing(tmp_path: Path) -> None:
    async with mqtt_off_relay(tmp_path, 5) as (store, relay):
        await relay.drain()
        assert await store.queries.outbox(limit=10) == []
        assert (relay.stats().marked, relay.stats().published) == (5, 0)


@pytest.mark.parametrize("own", [False, True], ids=["pool", "own-connection"])
async def test_database_and_broker_outages_delay_events_and_lose_none(
    broker: Mosquitto, prefix: str, own: bool
) -> None:
    """The relay waits out a database cut (reads and marks retried) and a broker cut
    (deliveries wait for the next connection); nothing is marked before its PUBACK. Through
    the store's pool (cluster mode's path) and through the relay's own connection."""
    db_gate, mqtt_gate = TcpGate(PG_PORT), TcpGate(broker.port)
    await db_gate.open()
    await mqtt_gate.open()
    async with postgres_database() as direct_url:
        await migrate(direct_url)
        gated_url = direct_url.replace(f":{PG_PORT}/", f":{db_gate.port}/")
        async with (
            await HealthStore.open(direct_url) as writer,
            await HealthStore.open(gated_url) as store,
            Subscriber(broker.port, f"{prefix}/events/#") as keeper,
            MqttPublisher(
                MqttConfig(
                    url=mqtt_gate.url,
                    topic_prefix=prefix,
                    reconnect_min_s=0.05,
                    reconnect_max_s=0.2,
                )
            ) as publisher,
        ):
            connection = OutboxConnection(store.engine, value_decimals=2) if own else None
            relay = EventRelay(
                store=store, publisher=publisher, batch=4, poll_s=0.2, connection=connection
            )
            relaying = asyncio.create_task(relay.run())
            try:
                # The database is away: the relay cannot read, nothing is published yet.
                await db_gate.close()
                await writer.write_cycle(
                    book_rows(book(10, underwater_every=1)),
                    CycleContext(at=1.0, blocks={"eth": 1}, prices={}),
                )
                relay.wake()
                await wait_for(lambda: relay.stats().last_error is not None, "a failed read")
                assert keeper.messages == []
                # The broker goes too; the database comes back: read, but not delivered.
                await mqtt_gate.close()
                await db_gate.open()
                await wait_for(lambda: relay.stats().pending > 0, "a batch read", 30)
                await asyncio.sleep(0.5)  # a short look: nothing is marked while undelivered
                assert len(await writer.queries.outbox(limit=100)) == 10  # none marked
                await mqtt_gate.open()
                await wait_for(lambda: len(keeper.messages) >= 10, "every event", 30)
                await wait_for(lambda: relay.stats().marked == 10, "every mark", 30)
            finally:
                relaying.cancel()
            assert sorted(i for _, i in event_ids(keeper)) == sorted(
                t.id for t in await all_transitions(writer)
            )
            assert await writer.queries.outbox(limit=100) == []
    await db_gate.close()
    await mqtt_gate.close()


@asynccontextmanager
async def mqtt_off_relay(
    tmp_path: Path, transitions: int
) -> AsyncIterator[tuple[HealthStore, EventRelay]]:
    """A relay (batches of 2, MQTT off: a batch is relayed at once) over a SQLite store
    holding one cycle of ``transitions`` liquidatable transitions."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    await migrate(url)
    async with (
        await HealthStore.open(url) as store,
        MqttPublisher(MqttConfig()) as publisher,
    ):
        await store.write_cycle(
            book_rows(book(transitions, underwater_every=1)),
            CycleContext(at=1.0, blocks={"eth": 1}, prices={}),
        )
        yield store, EventRelay(store=store, publisher=publisher, batch=2)


async def until_a_batch_is_in_flight(relay: EventRelay, task: asyncio.Task[None]) -> None:
    """Watched turn by turn: the first time a batch is in flight it has been relayed and its
    mark created, and the relay waits for the next batch's read (nothing else is awaited in
    between while MQTT is off): a cut exactly there."""
    for _ in range(1_000_000):
        if relay.stats().pending or task.done():
            break
        await asyncio.sleep(0)
    assert relay.stats().pending == 2, "the relay never had a batch in flight"


async def test_a_stopped_relay_still_marks_what_it_relayed(tmp_path: Path) -> None:
    """Cancelled (a stop, or shards handed over) between relaying a batch and marking it:
    the batch is still marked, so neither the next start nor a shard's next owner sends it
    again. Before, the mark was cancelled with the relay and the batch went out twice."""
    async with mqtt_off_relay(tmp_path, 6) as (store, relay):
        draining = asyncio.create_task(relay.drain())
        await until_a_batch_is_in_flight(relay, draining)
        draining.cancel()
        with pytest.raises(asyncio.CancelledError):
            await draining
        left = await store.queries.outbox(limit=10)
        assert len(left) == 4, "the relayed batch was not marked"
        assert relay.stats().marked == 2


async def test_stop_ends_the_relay_after_the_batch_under_way(tmp_path: Path) -> None:
    """``stop()`` (a pipeline stopping): the batch under way is relayed and marked, no other
    is started, and ``run`` returns instead of being cut mid-batch."""
    async with mqtt_off_relay(tmp_path, 6) as (store, relay):
        running = asyncio.create_task(relay.run())
        await until_a_batch_is_in_flight(relay, running)
        relay.stop()
        await asyncio.wait_for(running, WAIT_S)  # returns by itself: not cancelled
        assert len(await store.queries.outbox(limit=10)) == 4
        assert (relay.stats().marked, relay.stats().pending) == (2, 0)
        await relay.drain()  # what the stopped relay left goes out on the next pass
        assert await store.queries.outbox(limit=10) == []


async def test_settled_waits_for_the_pass_a_wake_started(tmp_path: Path) -> None:
    """``settled`` (a write's late part waits on it after a commit): true once what was
    committed before the last ``wake`` is relayed, never while it is still in the outbox."""
    async with mqtt_off_relay(tmp_path, 6) as (store, relay):
        assert not await relay.settled(0.05)  # not running: nothing will relay it
        running = asyncio.create_task(relay.run())
        try:
            assert await relay.settled(WAIT_S)
            assert await store.queries.outbox(limit=10) == []
            await store.write_cycle(  # every account recovers: six more transitions
                book_rows(book(6, eth_price=4_000.0, underwater_every=1)),
                CycleContext(at=2.0, blocks={"eth": 2}, prices={}),
            )
            relay.wake()
            assert await relay.settled(WAIT_S)
            assert await store.queries.outbox(limit=10) == []
            assert relay.stats().marked == 12
        finally:
            relay.stop()
            await asyncio.wait_for(running, WAIT_S)


def half_flipping_book(n: int) -> MarginEngine:
    """``healthy_book`` where every other account owes 500 USDC instead of 1,000: at ETH 1,000
    the others go under water, these stay healthy (their figures change, not their flags)."""
    engine = MarginEngine(tokens=BOOK_TOKENS, chains=BOOK_CHAINS)
    accounts = [account_address(i) for i in range(n)]
    debts = [(1_000 if i % 2 else 500) * 10**6 for i in range(n)]
    engine.load_balances("eth", WETH, accounts, [10**18] * n, 100)
    engine.load_balances("arb", USDC_ARB, accounts, [100 * 10**6] * n, 200)
    engine.load_balances("eth", DUSDC, accounts, debts, 100)
    return engine


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_large_writes_late_part_waits_until_its_events_are_relayed(
    dialect: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write of ``SPLIT_CYCLE_ROWS`` rows or more: its transitions are committed first, and
    its late part (breakdowns, then the rows whose flags did not move) runs once the relay has
    relayed them (``EngineLoop._build_breakdowns``), not meanwhile: at a market-wide move it
    took the daemon's and the database's CPU the events needed (on SQLite, the daemon's own
    process does the database's work too)."""
    accounts = 4 * SPLIT_CYCLE_ROWS
    marked_when_stored: list[int] = []

    class WhenStored(logging.Handler):
        """Notes how many transitions were marked when a write has ended."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("cycle_stored"):
                marked_when_stored.append(relay.stats().marked)

    caplog.set_level(logging.INFO, logger="daemon.store.writer")
    writer_log = logging.getLogger("daemon.store.writer")
    handler = WhenStored()
    writer_log.addHandler(handler)
    try:
        async with fresh_database(dialect, tmp_path) as url:
            await migrate(url)
            async with (
                await HealthStore.open(url) as store,
                MqttPublisher(MqttConfig()) as publisher,  # off: the relay marks at once
            ):
                # Small batches and no breakdowns: relaying the crash's transitions (40 reads
                # and marks) takes longer than the late part would, were it not waiting.
                relay = EventRelay(
                    store=store, publisher=publisher, batch=50, connection=own_connection(store)
                )
                loop = EngineLoop(
                    engine=half_flipping_book(accounts),
                    store=store,
                    publisher=publisher,
                    value_decimals=2,
                    events=relay,
                )
                loop.breakdown_limit = 0
                relaying = asyncio.create_task(relay.run())
                try:
                    await loop.cycle([eth_at("2000", 1.0)])  # every account stored, healthy
                    await loop.cycle([eth_at("1000", 2.0)])  # half of them flip
                    await wait_for(lambda: len(marked_when_stored) >= 2, "both writes ended")
                finally:
                    relay.stop()
                    await asyncio.wait_for(relaying, WAIT_S)
                flipped = await all_transitions(store)
    finally:
        writer_log.removeHandler(handler)
    assert len(flipped) == accounts // 2
    assert marked_when_stored == [0, accounts // 2]
