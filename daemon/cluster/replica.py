"""A replica's cluster chores that need the store but not the pipeline: joining the lease
table with its first shards, and noticing positions posted to other replicas."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from daemon.cluster.member import RENEWALS_PER_TTL, ClusterMember
from daemon.config.model import ClusterConfig
from daemon.metrics import Metrics
from daemon.store.errors import StoreUnavailable
from daemon.store.leases import LeaseStore
from daemon.store.writer import HealthStore

log = logging.getLogger(__name__)


def default_replica_id() -> str:
    """``<hostname>-<pid>``: unique per process, recognisable in ``/v1/cluster``."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def join_cluster(
    store: HealthStore, cluster: ClusterConfig, *, url: str, metrics: Metrics
) -> ClusterMember:
    """Join the lease table and take this replica's first shards; ``StoreUnavailable`` when
    the database does not answer the lease statements."""
    replica_id = cluster.replica_id or default_replica_id()
    leases = LeaseStore(store.engine, replica_id=replica_id, ttl_s=cluster.lease_ttl_s)
    member = ClusterMember(leases, shards=cluster.shards, metrics=metrics)
    await member.join()
    try:
        await member.rebalance()
    except TimeoutError:
        raise StoreUnavailable(url, "no answer to the lease statements") from None
    return member


async def poll_positions(
    store: HealthStore, member: ClusterMember, changed: Callable[[str], Awaitable[None]]
) -> None:
    """Positions may be posted to any replica: every renewal period, compare the stored
    positions' ``updated_at`` with the previous look and call ``changed`` for every account
    whose set differs (the daemon reloads those it owns). Forever."""
    period = member.ttl_s / RENEWALS_PER_TTL
    seen: dict[tuple[str, str], float] | None = None
    while True:
        try:
            now = await store.queries.position_versions()
        except StoreUnavailable as exc:  # retried at the next period
            log.warning("positions_poll_failed error=%s", exc)
            await asyncio.sleep(period)
            continue
        if seen is None:
            seen = now
        accounts = {key[0] for key in seen.keys() ^ now.keys()}
        accounts |= {key[0] for key, at in now.items() if seen.get(key, at) != at}
        seen = now
        for account in sorted(accounts):
            await changed(account)
        await asyncio.sleep(period)
