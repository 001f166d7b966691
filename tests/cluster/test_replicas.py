"""Cluster mode with real processes: three ``crossmargin run`` replicas on one PostgreSQL
database and one Mosquitto (``tests.cluster.clusterkit``), a keeper subscribed to the broker
for the whole test, and the database as the judge of what must have been published.

No timing is asserted: each step waits (with a generous bound) for the state it expects.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.cluster.shards import shard_of
from tests.cluster.clusterkit import (
    BOOK_ACCOUNTS,
    CALM,
    CRASH,
    SHARDS,
    Ledger,
    Replica,
    assert_exactly_once,
    cluster,
    cluster_world,
    same_liquidatable,
    wait_all_liquidatable,
)
from tests.daemonkit import BOB, World
from tests.mqttkit import Subscriber
from tests.storekit import PG_PORT
from tests.tcpproxy import TcpProxy
from tests.waitkit import eventually


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
        owners = await c.start_all()
        # A position posted to a replica that does not own the account reaches its owner.
        bob_shard = shard_of(BOB, SHARDS)
        other = next(r for r in c.replicas if bob_shard not in owners[r.name])
        underwater = {
            "asset": "ETH",
            "chain": "l1",
            "size": "-10",
            "entry_price": "1000",
            "mmr_tiers": [{"rate": 0.01}],
        }
        assert await other.put_positions(BOB, [underwater]) == 200
        await eventually(
            lambda: bob_in(ledger, want=True), what="Bob liquidatable through his short perp"
        )
        assert await other.put_positions(BOB, []) == 200
        await eventually(lambda: bob_in(ledger, want=False), what="Bob healthy again")
        w.set_eth(CRASH)
        await wait_all_liquidatable(ledger, keeper, w.prefix)
        listed = await same_liquidatable(c.replicas)
        assert len(listed) == len(BOOK_ACCOUNTS)
        events = await assert_exactly_once(ledger, keeper, w.prefix)
        assert events >= len(BOOK_ACCOUNTS)
        assert await ledger.unsharded() == 0  # every transition names its shard


async def bob_in(ledger: Ledger, *, want: bool) -> bool:
    return (BOB in await ledger.liquidatable_accounts()) is want


async def test_a_killed_replica_s_shards_are_taken_over_and_nothing_is_lost(w: World) -> None:
    async with (
        Subscriber(w.broker.port, f"{w.prefix}/events/#") as keeper,
        Ledger(w.database_url) as ledger,
        cluster(w, 3) as c,
    ):
        owners = await c.start_all()
        victim, survivors = c.replicas[0], c.replicas[1:]
        await victim.kill()  # SIGKILL: its leases are only given up by expiring
        w.set_eth(CRASH)  # a later crash: the victim's accounts must be seen too
        await wait_all_liquidatable(ledger, keeper, w.prefix)
        await c.wait_balanced(survivors)
        takeovers = [await r.metric("crossmargin_cluster_takeovers_total") for r in survivors]
        assert sum(takeovers) >= len(owners[victim.name])
        await assert_exactly_once(ledger, keeper, w.prefix)
        await same_liquidatable(survivors)


async def test_a_paused_replica_s_late_writes_are_rejected(w: World) -> None:
    """r0 reaches the database through a proxy that is made a black hole: a write of r0 is
    in flight when r0 is SIGSTOPped. The others take its shards over and publish the crash.
    r0 is continued and its database comes back: its late write arrives with an old epoch and
    is rejected in its own transaction; no event is published twice."""
    async with TcpProxy("127.0.0.1", PG_PORT) as proxy:
        proxied = w.database_url.replace(f":{PG_PORT}/", f":{proxy.port}/")
        async with (
            Subscriber(w.broker.port, f"{w.prefix}/events/#") as keeper,
            Ledger(w.database_url) as ledger,
            cluster(w, 3, urls={0: proxied}) as c,
        ):
            await c.start_all()
            zombie, others = c.replicas[0], c.replicas[1:]
            proxy.pause()
            w.set_eth(CRASH)
            await eventually(
                lambda: zombie_writing(zombie),
                what="r0 has a write in flight to its silent database",
            )
            zombie.signal(signal.SIGSTOP)
            await c.wait_balanced(others)
            await wait_all_liquidatable(ledger, keeper, w.prefix)
            zombie.signal(signal.SIGCONT)
            proxy.resume()
            await eventually(
                lambda: zombie.metric("crossmargin_cluster_fencing_rejections_total"),
                what="r0's late write rejected by its fence",
            )
            await c.wait_balanced(c.replicas)  # r0 rejoins with new leases
            await assert_exactly_once(ledger, keeper, w.prefix)
            await same_liquidatable(c.replicas)


async def zombie_writing(replica: Replica) -> bool:
    return await replica.metric("crossmargin_store_write_in_flight") > 0


async def test_a_rolling_restart_loses_nothing(w: World) -> None:
    async with (
        Subscriber(w.broker.port, f"{w.prefix}/events/#") as keeper,
        Ledger(w.database_url) as ledger,
        cluster(w, 3) as c,
    ):
        await c.start_all()
        prices = [CRASH, CALM, CRASH]
        for replica, price in zip(c.replicas, prices, strict=True):
            assert await replica.stop() == 0  # SIGTERM: written, published, handed over
            w.set_eth(price)  # while it is away
            rest = [r for r in c.replicas if r is not replica]
            await c.wait_balanced(rest)
            await replica.start()
            await c.wait_balanced(c.replicas)
        await wait_all_liquidatable(ledger, keeper, w.prefix)
        events = await assert_exactly_once(ledger, keeper, w.prefix)
        assert events >= 3 * len(BOOK_ACCOUNTS)  # three moves, every account each time
        await same_liquidatable(c.replicas)
