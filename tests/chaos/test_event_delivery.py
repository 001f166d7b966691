"""Events survive crashes and broker outages: the real daemon, SIGKILLed at random moments.

The world of ``tests.daemonkit`` (two Anvil chains, loopback price sources, PostgreSQL and a
private Mosquitto) with ``BOOK`` accounts shaped like Bob: 1 WETH on l1 against 1,500 of debt
on l2, healthy at ETH 2,000 and liquidatable at 1,800. Every price move flips all of them in
one cycle. A keeper subscribes to the broker directly for the whole test (never through the
gate that cuts the daemon off), so it sees every event the broker acknowledged.

What must hold (README, MQTT): every stored transition that raises an event reaches the
keeper at least once, with its id, and every delivery of one id carries the same payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
import yaml

from daemon.documents import HealthBucket
from daemon.mqtt.topics import AccountSignal, transition_events
from margin.model import Flag, flag_names
from tests.daemonkit import BOB, DaemonProcess, World, wait_ready, world
from tests.mqttkit import Subscriber, TcpGate
from tests.storekit import postgres_database

BOOK = 24  # accounts flipping together (Bob and 23 more)
KILL_TRIALS = 5
KILL_DELAY_MAX_S = 0.015  # SIGKILL this long at most after the commit was seen
COMMIT_POLL_S = 0.001
COMMIT_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 45.0
CRASH, CALM = "1800", "2000"  # ETH prices: every book account liquidatable / healthy
DEBT = 1500 * 10**6


def book_account(i: int) -> str:
    return BOB if i == 0 else f"0x{0xE7E0:04x}{i:036x}"


@pytest.fixture
async def chaos(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        extra = [book_account(i) for i in range(1, BOOK)]
        await w.l1.mint_many(w.weth, [(a, 10**18) for a in extra])
        await w.l2.mint_many(w.debt, [(a, DEBT) for a in extra])
        yield w


class Daemons:
    """Starts ``crossmargin run`` on the world (optionally through a broker gate), again and
    again on the same database; kills whatever is still running at the end."""

    def __init__(self, w: World, broker_url: str) -> None:
        self.w = w
        config = w.config()
        config["accounts"] = [book_account(i) for i in range(BOOK)]
        config["mqtt"]["url"] = broker_url
        self.config_path = w.workdir / "chaos.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.current: DaemonProcess | None = None
        self.runs = 0

    async def start(self) -> DaemonProcess:
        self.runs += 1
        daemon = DaemonProcess(self.config_path, self.w.workdir / f"daemon-{self.runs}.log")
        self.current = daemon
        await daemon.start()
        await wait_ready(self.w, daemon)
        return daemon

    async def sigkill(self) -> None:
        daemon = self.current
        assert daemon is not None
        assert daemon.proc is not None
        daemon.kill()
        await daemon.proc.wait()
        self.current = None

    async def close(self) -> None:
        if self.current is not None:
            await self.sigkill()


@contextlib.asynccontextmanager
async def daemons(w: World, broker_url: str) -> AsyncIterator[Daemons]:
    running = Daemons(w, broker_url)
    try:
        yield running
    finally:
        await running.close()


class Ledger:
    """The store as the keeper's judge: which transitions exist and which events they raise."""

    def __init__(self, database_url: str) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Ledger:
        self.conn = await asyncpg.connect(self.dsn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def last_id(self) -> int:
        assert self.conn is not None
        return int(await self.conn.fetchval("SELECT coalesce(max(id), 0) FROM health_transitions"))

    async def wait_commit(self, after_id: int) -> set[int]:
        """Poll until transitions raising events are committed above ``after_id``; their ids
        (one cycle flips the whole book, so they all arrive in one commit)."""
        assert self.conn is not None
        deadline = time.monotonic() + COMMIT_TIMEOUT_S
        while True:
            rows = await self.conn.fetch(
                "SELECT id, from_flags, to_flags FROM health_transitions WHERE id > $1", after_id
            )
            raising = {row["id"] for row in rows if _raises_events(row)}
            if raising:
                return raising
            if time.monotonic() > deadline:
                raise AssertionError(f"no event-raising transition committed after id {after_id}")
            await asyncio.sleep(COMMIT_POLL_S)

    async def expected(self) -> dict[tuple[str, int], dict[str, object]]:
        """(kind, id) → the stored transition, for every event a stored transition raises."""
        assert self.conn is not None
        rows = await self.conn.fetch(
            "SELECT id, account, from_flags, to_flags FROM health_transitions ORDER BY id"
        )
        return {(kind, row["id"]): dict(row) for row in rows for kind in _kinds(row)}

    async def unpublished(self, ids: set[int]) -> set[int]:
        assert self.conn is not None
        rows = await self.conn.fetch(
            "SELECT id FROM health_transitions WHERE id = ANY($1) AND published_at IS NULL",
            sorted(ids),
        )
        return {row["id"] for row in rows}


def _kinds(row: asyncpg.Record) -> tuple[str, ...]:
    before = AccountSignal(Flag(row["from_flags"]), HealthBucket.NO_DEBT)
    after = AccountSignal(Flag(row["to_flags"]), HealthBucket.NO_DEBT)
    return transition_events(before, after)


def _raises_events(row: asyncpg.Record) -> bool:
    return bool(_kinds(row))


def deliveries(keeper: Subscriber, prefix: str) -> dict[tuple[str, int], list[bytes]]:
    """Every event the keeper received, by (kind, id), in arrival order."""
    out: dict[tuple[str, int], list[bytes]] = {}
    for message in keeper.messages:
        topic = message.topic.value
        if not topic.startswith(f"{prefix}/events/"):
            continue
        payload = message.payload
        assert isinstance(payload, bytes)
        out.setdefault((topic.rsplit("/", 1)[-1], json.loads(payload)["id"]), []).append(payload)
    return out


async def wait_for(check: Callable[[], object], what: Callable[[], str]) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what())
        await asyncio.sleep(0.1)


async def assert_every_event_delivered(ledger: Ledger, keeper: Subscriber, prefix: str) -> int:
    """Every stored transition's events reach the keeper, each id always with one payload."""
    expected = await ledger.expected()
    assert expected, "the scenario stored no transition that raises an event"

    def lost() -> list[tuple[str, int]]:
        return sorted(set(expected) - set(deliveries(keeper, prefix)))

    await wait_for(
        lambda: not lost(),
        lambda: f"{len(lost())} of {len(expected)} events never delivered: {lost()[:10]}",
    )
    got = deliveries(keeper, prefix)
    for key, payloads in got.items():
        assert len(set(payloads)) == 1, f"{key} delivered with different payloads: {payloads}"
        event = json.loads(payloads[0])
        stored = expected.get(key)
        assert stored is not None, f"event {key} matches no stored transition: {event}"
        assert event["account"] == stored["account"]
        assert event["to_flags"] == flag_names(Flag(int(str(stored["to_flags"]))))
    return len(expected)


async def test_sigkill_right_after_a_commit_loses_no_event(chaos: World) -> None:
    w = chaos
    rng = random.Random()
    async with (
        Subscriber(w.broker.port, f"{w.prefix}/events/#") as keeper,
        Ledger(w.database_url) as ledger,
        daemons(w, w.broker.url) as runs,
    ):
        for trial in range(KILL_TRIALS):
            await runs.start()
            before = await ledger.last_id()
            w.set_eth(CRASH if trial % 2 == 0 else CALM)
            await ledger.wait_commit(before)
            await asyncio.sleep(rng.uniform(0.0, KILL_DELAY_MAX_S))
            await runs.sigkill()
        await runs.start()  # the last run publishes whatever the others stored
        events = await assert_every_event_delivered(ledger, keeper, w.prefix)
    assert events >= KILL_TRIALS * BOOK


async def test_broker_outage_then_sigkill_loses_no_event(chaos: World) -> None:
    w = chaos
    gate = TcpGate(w.broker.port)  # the daemon's only way to the broker
    await gate.open()
    try:
        async with (
            Subscriber(w.broker.port, f"{w.prefix}/events/#") as keeper,
            Ledger(w.database_url) as ledger,
            daemons(w, gate.url) as runs,
        ):
            # An outage the daemon survives: nothing is marked published before its PUBACK,
            # and everything goes out once the broker is back.
            await runs.start()
            await gate.close()
            before = await ledger.last_id()
            w.set_eth(CRASH)
            stored = await ledger.wait_commit(before)
            await asyncio.sleep(1.0)  # the daemon tries (and fails) to publish meanwhile
            assert await ledger.unpublished(stored) == stored
            await gate.open()
            await assert_every_event_delivered(ledger, keeper, w.prefix)

            # An outage the daemon does not survive: SIGKILL while the broker is away; the
            # next run sends what was stored.
            await gate.close()
            before = await ledger.last_id()
            w.set_eth(CALM)
            await ledger.wait_commit(before)
            await asyncio.sleep(1.0)
            await runs.sigkill()
            await gate.open()
            await runs.start()
            events = await assert_every_event_delivered(ledger, keeper, w.prefix)
        assert events >= 2 * BOOK
    finally:
        await gate.close()
