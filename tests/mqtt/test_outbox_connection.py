"""The event relay's own PostgreSQL connection (``OutboxConnection``) on a real database: the
entries it reads are those ``StoreQueries.outbox`` reads, its marks are ``mark_published``'s,
and a dropped connection costs one failed attempt, not the relay."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from daemon.store.errors import StoreUnavailable
from daemon.store.migrate import migrate
from daemon.store.outbox import OutboxConnection
from daemon.store.records import OutboxEntry
from daemon.store.rows import CycleContext
from daemon.store.writer import HealthStore
from tests.storekit import book, book_rows, postgres_database

ACCOUNTS = 30


async def stored_cycles(store: HealthStore) -> None:
    """Two cycles (different block numbers): every third account flips to liquidatable,
    then at a lower price all of them (the first ones a second time, with new figures)."""
    await store.write_cycle(
        book_rows(book(ACCOUNTS, underwater_every=3)),
        CycleContext(at=1.25, blocks={"eth": 100, "arb": 7}, prices={"ETH": "2000"}),
    )
    await store.write_cycle(
        book_rows(book(ACCOUNTS, eth_price=1_000.0, underwater_every=3)),
        CycleContext(at=2.5, blocks={"eth": 101, "arb": 9}, prices={"ETH": "1000"}),
    )


async def paged(read: object, limit: int) -> list[OutboxEntry]:
    assert callable(read)
    out: list[OutboxEntry] = []
    while page := await read(limit=limit, after_id=out[-1].id if out else 0):
        out += page
    return out


@contextlib.asynccontextmanager
async def outbox_world() -> AsyncIterator[tuple[HealthStore, OutboxConnection]]:
    """A migrated database of its own with ``stored_cycles`` in it, and the relay's
    connection to it (closed after)."""
    async with postgres_database() as url:
        await migrate(url)
        async with await HealthStore.open(url, value_decimals=2) as store:
            await stored_cycles(store)
            connection = OutboxConnection(store.engine, value_decimals=2)
            try:
                yield store, connection
            finally:
                connection.close()


@pytest.mark.parametrize("limit", [1, 7, 1_000])
async def test_reads_the_entries_the_store_reads(limit: int) -> None:
    async with outbox_world() as (store, connection):
        expected = await paged(store.queries.outbox, limit)
        assert len({e.blocks["eth"] for e in expected}) == 2  # both cycles
        assert await paged(connection.read, limit) == expected
        # Field by field too: a Decimal equal in value but not in digits would pass ==
        # and change the payload ("110.0" against "110.00").
        got = await connection.read(limit=1_000)
        assert [tuple(map(repr, e)) for e in got] == [tuple(map(repr, e)) for e in expected]


async def test_marks_once_what_it_is_given() -> None:
    async with outbox_world() as (store, connection):
        entries = await connection.read(limit=1_000)
        first = [e.id for e in entries[:5]]
        assert await connection.mark(first + first[:2], at=3.0) == 5
        assert await connection.mark(first, at=4.0) == 0  # marked already: kept
        assert await connection.mark([], at=4.0) == 0
        left = await store.queries.outbox(limit=1_000)
        assert [e.id for e in left] == [e.id for e in entries[5:]]
        marked = {t.id: t.published_at for t in await store.queries.transitions()}
        assert {marked[i] for i in first} == {3.0}


async def test_a_dropped_connection_fails_one_attempt_and_the_next_reconnects() -> None:
    async with outbox_world() as (store, connection):
        expected = await connection.read(limit=1_000)
        url = store.engine.url.set(drivername="postgresql")
        admin = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'crossmargin-relay' AND datname = $1",
                store.engine.url.database,
            )
        finally:
            await admin.close()
        assert ended == 1
        failures = 0
        for _ in range(2):
            try:
                assert await connection.read(limit=1_000) == expected
                break
            except StoreUnavailable:
                failures += 1
        assert failures <= 1
        assert await connection.read(limit=1_000) == expected


async def test_refuses_sqlite(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/store.sqlite3"
    await migrate(url)
    async with await HealthStore.open(url) as store:
        with pytest.raises(ValueError, match="PostgreSQL"):
            OutboxConnection(store.engine, value_decimals=2)
