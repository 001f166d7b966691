"""Shard leases on real PostgreSQL: single statements judged by the database clock, a new
epoch at every acquisition, and writes fenced by it in their own transaction."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from daemon.store.engine import create_store_engine
from daemon.store.fencing import LeaseLost, fence_of
from daemon.store.leases import LeaseStore, ShardCountMismatch, read_cluster
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import account_health, health_transitions
from daemon.store.writer import HealthStore
from tests.api.apikit import running_api
from tests.storekit import book, book_rows

TTL_S = 30.0  # long: expiry is made to happen by moving the database's lease rows


@pytest_asyncio.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_store_engine(pg_url)
    yield created
    await created.dispose()


def replica(engine: AsyncEngine, name: str, ttl_s: float = TTL_S) -> LeaseStore:
    return LeaseStore(engine, replica_id=name, ttl_s=ttl_s)


async def expire(engine: AsyncEngine, owner: str) -> None:
    """Let ``owner``'s leases run out on the database clock (as a stopped replica's would)."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE owner = :o"
            ),
            {"o": owner},
        )


async def test_shard_rows_are_created_once_and_a_different_count_is_refused(
    engine: AsyncEngine,
) -> None:
    a = replica(engine, "a")
    await a.ensure_shards(8)
    await a.ensure_shards(8)
    view = await read_cluster(engine, ttl_s=TTL_S)
    assert [s.shard for s in view.shards] == list(range(8))
    assert all(s.owner is None and s.epoch == 0 for s in view.shards)
    with pytest.raises(ShardCountMismatch, match=r"cluster\.shards is 4"):
        await a.ensure_shards(4)


async def test_acquire_renew_release_and_takeover(engine: AsyncEngine) -> None:
    a, b = replica(engine, "a"), replica(engine, "b")
    await a.ensure_shards(4)
    taken = await a.acquire(3)
    assert [(t.shard, t.epoch, t.previous_owner) for t in taken] == [
        (0, 1, None),
        (1, 1, None),
        (2, 1, None),
    ]
    # b finds only the free shard: a's live leases are not for taking.
    assert [(t.shard, t.epoch) for t in await b.acquire(4)] == [(3, 1)]
    assert await b.acquire(4) == []
    held_a = {t.shard: t.epoch for t in taken}
    assert sorted(await a.renew(held_a)) == [0, 1, 2]
    # a renewal at a stale epoch renews nothing
    assert await a.renew({0: 0}) == {}
    # a stops renewing; its leases run out; b takes them over at new epochs
    await expire(engine, "a")
    over = await b.acquire(4)
    assert [(t.shard, t.epoch, t.previous_owner) for t in over] == [
        (0, 2, "a"),
        (1, 2, "a"),
        (2, 2, "a"),
    ]
    assert await a.renew(held_a) == {}  # a learns it lost them
    assert await a.release(held_a) == []  # and cannot give back what is not its own
    assert await b.release({0: 2, 3: 1}) == [0, 3]
    view = await read_cluster(engine, ttl_s=TTL_S)
    owners = {s.shard: (s.owner, s.epoch, s.live) for s in view.shards}
    assert owners == {
        0: (None, 2, False),
        1: ("b", 2, True),
        2: ("b", 2, True),
        3: (None, 1, False),
    }
    # the next acquisition of a released shard starts a new epoch
    assert [(t.shard, t.epoch) for t in await a.acquire(1)] == [(0, 3)]


async def test_leases_ignore_the_replica_clock(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica whose clock is decades off takes, renews and judges leases exactly as one
    with a right clock: every time comes from the database's now()."""
    a, b = replica(engine, "a"), replica(engine, "b")
    await a.ensure_shards(2)
    monkeypatch.setattr(time, "time", lambda: 0.0)  # 1970 on this "replica"
    taken = await a.acquire(1)
    assert [t.shard for t in taken] == [0]
    monkeypatch.setattr(time, "time", lambda: 4e9)  # 2096: a's lease would look expired
    assert [t.shard for t in await b.acquire(2)] == [1]  # b cannot take shard 0
    renewed = await a.renew({0: taken[0].epoch})
    monkeypatch.undo()
    assert list(renewed) == [0]
    assert abs(renewed[0] - (time.time() + TTL_S)) < TTL_S  # the database's clock, not 0/4e9


async def test_two_replicas_acquiring_at_once_never_share_a_shard(engine: AsyncEngine) -> None:
    a, b = replica(engine, "a"), replica(engine, "b")
    await a.ensure_shards(16)
    got_a, got_b = await asyncio.gather(a.acquire(16), b.acquire(16))
    shards_a = {t.shard for t in got_a}
    shards_b = {t.shard for t in got_b}
    assert not shards_a & shards_b
    assert shards_a | shards_b == set(range(16))


async def test_heartbeats_count_the_replicas_alive(engine: AsyncEngine) -> None:
    a, b = replica(engine, "a", ttl_s=5.0), replica(engine, "b", ttl_s=5.0)
    assert await a.heartbeat() == 1
    assert await b.heartbeat() == 2
    async with engine.begin() as conn:  # b falls silent for longer than the TTL
        await conn.execute(
            sa.text("UPDATE cluster_replicas SET last_seen = now() - interval '6 s' WHERE id='b'")
        )
    assert await a.heartbeat() == 1
    view = await read_cluster(engine, ttl_s=5.0)
    assert [(r.id, r.alive) for r in view.replicas] == [("a", True), ("b", False)]
    await b.leave()
    assert [r.id for r in (await read_cluster(engine, ttl_s=5.0)).replicas] == ["a"]


async def test_a_fenced_cycle_is_rejected_whole_once_the_lease_moved_on(pg_url: str) -> None:
    engine_ = book(20)
    rows = book_rows(engine_)
    rows = dataclasses.replace(rows, shards=[0] * len(rows))
    async with await HealthStore.open(pg_url) as store:
        a, b = replica(store.engine, "a"), replica(store.engine, "b")
        await a.ensure_shards(1)
        (lease,) = await a.acquire(1)
        fence_a = fence_of("a", {0: lease.epoch}, TTL_S)
        first = await store.write_engine_cycle(
            balances=(), prices=(), rows=rows, context=context(1.0), fence=fence_a
        )
        assert first > 0
        assert await stored_shards(store) == [0]
        await expire(store.engine, "a")
        (taken,) = await b.acquire(1)
        assert taken.epoch == lease.epoch + 1
        before = await counts(store)
        with pytest.raises(LeaseLost, match="shard\\(s\\) 0"):
            await store.write_engine_cycle(
                balances=(), prices=(), rows=healthy(rows), context=context(2.0), fence=fence_a
            )
        assert await counts(store) == before  # nothing of the rejected cycle was written
        fence_b = fence_of("b", {0: taken.epoch}, TTL_S)
        back = await store.write_engine_cycle(
            balances=(), prices=(), rows=healthy(rows), context=context(3.0), fence=fence_b
        )
        assert back == first
        # the outbox claim is fenced the same way: a sees nothing, b its shard's transitions
        with pytest.raises(LeaseLost):
            await store.queries.outbox(limit=100, fence=fence_a)
        claimed = await store.queries.outbox(limit=100, fence=fence_b)
        assert len(claimed) == first + back


def context(at: float) -> CycleContext:
    return CycleContext(at=at, blocks={"eth": 100}, prices={"ETH": "2000"})


def healthy(rows: HealthRows) -> HealthRows:
    """The same rows with every flag cleared (a recovery of every flagged account)."""
    return dataclasses.replace(rows, flags=[0] * len(rows))


async def stored_shards(store: HealthStore) -> list[int | None]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(health_transitions.c.shard).distinct())
        return [row.shard for row in rows]


async def counts(store: HealthStore) -> tuple[int, int]:
    async with store.engine.connect() as conn:
        transitions = (
            await conn.execute(sa.select(sa.func.count()).select_from(health_transitions))
        ).scalar()
        changed = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(account_health)
                .where(account_health.c.flags == 0)
            )
        ).scalar()
    return int(transitions or 0), int(changed or 0)


async def test_cluster_document_lists_replicas_and_leases() -> None:
    """``GET /v1/cluster``: held shards per replica; an expired lease shows no owner."""
    async with running_api(cluster_ttl_s=TTL_S) as api:
        async with aiohttp.ClientSession() as session, session.get(api.url + "/v1/cluster") as r:
            assert r.status == 200
            document = await r.json()
        assert document["enabled"] is True
        assert [(x["id"], x["alive"], x["shards"]) for x in document["replicas"]] == [
            ("api-test", True, [0, 1])
        ]
        owners = [(s["shard"], s["owner"], s["epoch"]) for s in document["shards"]]
        assert owners == [(0, "api-test", 1), (1, "api-test", 1), (2, None, 0), (3, None, 0)]
        await expire(api.store.engine, "api-test")
        async with aiohttp.ClientSession() as session, session.get(api.url + "/v1/cluster") as r:
            document = await r.json()
        assert [x["shards"] for x in document["replicas"]] == [[]]
        assert {s["owner"] for s in document["shards"]} == {None}


async def test_cluster_document_when_cluster_mode_is_off() -> None:
    async with (
        running_api(dialect="sqlite") as api,
        aiohttp.ClientSession() as session,
        session.get(api.url + "/v1/cluster") as r,
    ):
        assert r.status == 200
        assert await r.json() == {"enabled": False, "now": None, "replicas": [], "shards": []}
