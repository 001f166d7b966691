"""Cluster mode with real processes: three ``crossmargin run`` replicas on one PostgreSQL
database and one Mosquitto (``tests.cluster.clusterkit``), a keeper subscribed to the broker
for the whole test, and the database as the judge of what must have been published.

No timing is asserted: each step waits (with a generous bound) for the state it expects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.cluster.shards import shard_of
from tests.cluster.clusterkit import (
    BOOK_ACCOUNTS,
    CRASH,
    SHARDS,
    Ledger,
    assert_exactly_once,
    cluster,
    cluster_world,
    same_liquidatable,
    wait_all_liquidatable,
)
from tests.daemonkit import World
from tests.mqttkit import Subscriber


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with cluster_world(tmp_path) as built:
        yield built


def test_the_book_covers_every_shard() -> None:
    assert {shard_of(a, SHARDS) for a in BOOK_ACCOUNTS} == set(range(SHARDS))


async def test_three_replicas_publish_every_transition_once_and_list_the_same(w: World) -> None:
    async with (
        Subscriber(w.broker.port, f"{w.prefix}/events/#") as keeper,
        Ledger(w.database_url) as ledger,
        cluster(w, 3) as c,
    ):
        await c.start_all()
        w.set_eth(CRASH)
        await wait_all_liquidatable(ledger, keeper, w.prefix)
        listed = await same_liquidatable(c.replicas)
        assert len(listed) == len(BOOK_ACCOUNTS)
        events = await assert_exactly_once(ledger, keeper, w.prefix)
        assert events >= len(BOOK_ACCOUNTS)
        assert await ledger.unsharded() == 0  # every transition names its shard
