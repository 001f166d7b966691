"""``ClusterMember`` on real PostgreSQL: fair shares as replicas come and go, takeovers of
expired leases, and a lost lease noticed at the next renewal."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from daemon.cluster.member import ClusterMember
from daemon.metrics import Metrics
from daemon.store.engine import create_store_engine
from daemon.store.leases import LeaseStore

SHARDS = 16
TTL_S = 30.0  # long: nothing expires unless a test moves the lease rows itself


@pytest_asyncio.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_store_engine(pg_url)
    yield created
    await created.dispose()


def member(engine: AsyncEngine, name: str) -> ClusterMember:
    leases = LeaseStore(engine, replica_id=name, ttl_s=TTL_S)
    return ClusterMember(leases, shards=SHARDS, metrics=Metrics())


async def test_new_replicas_receive_shards_and_the_shares_stay_fair(engine: AsyncEngine) -> None:
    a = member(engine, "a")
    await a.leases.ensure_shards(SHARDS)
    await a.rebalance()
    assert sorted(a.held) == list(range(SHARDS))  # alone: everything
    b = member(engine, "b")
    await b.rebalance()
    assert b.held == {}  # nothing free yet: a holds it all
    await a.tick()
    assert a.changed.is_set()  # a is above its share now (two alive: 8 each)
    await a.rebalance()  # (the daemon does this once a's state is written)
    assert len(a.held) == SHARDS // 2
    await b.tick()
    assert b.changed.is_set()  # free shards for b
    await b.rebalance()
    assert len(b.held) == SHARDS // 2
    assert not set(a.held) & set(b.held)
    c = member(engine, "c")
    await c.rebalance()
    for m in (a, b):
        await m.tick()
        await m.rebalance()
    await c.rebalance()
    shares = sorted(len(m.held) for m in (a, b, c))
    assert shares == [4, 6, 6]  # ceil(16 / 3) = 6 at most each, and every shard held
    assert set(a.held) | set(b.held) | set(c.held) == set(range(SHARDS))


async def test_expired_leases_are_taken_over_and_the_loser_notices(engine: AsyncEngine) -> None:
    a, b = member(engine, "a"), member(engine, "b")
    await a.leases.ensure_shards(SHARDS)
    await a.rebalance()
    await b.rebalance()
    await a.tick()
    await a.rebalance()
    await b.rebalance()
    lost = dict(a.held)
    async with engine.begin() as conn:  # a stops renewing: its leases and heartbeat age out
        await conn.execute(
            sa.text("UPDATE shard_leases SET expires_at = now() - interval '1 s' WHERE owner = 'a'")
        )
        await conn.execute(
            sa.text(
                "UPDATE cluster_replicas SET last_seen = now() - interval '60 s' WHERE id = 'a'"
            )
        )
    await b.tick()
    assert b.changed.is_set()
    await b.rebalance()
    assert sorted(b.held) == list(range(SHARDS))
    assert b.takeovers == len(lost)
    assert all(b.held[s] == e + 1 for s, e in lost.items())  # a new epoch for each
    await a.tick()  # a wakes up: its renewal finds nothing
    assert a.held == {}
    assert a.changed.is_set()
    assert a.fence().epochs == {}
