"""Shard leases and replica heartbeats in PostgreSQL, judged by the database's clock.

Every statement below is one SQL statement whose times come from ``now()`` on the server,
never from the replica: two replicas with skewed clocks still agree on who holds what.

- ``heartbeat``: the replica's ``last_seen = now()``; returns how many replicas are alive
  (seen within one TTL), itself included.
- ``renew``: ``expires_at = now() + ttl`` for the leases still held at their epoch and not
  expired; a lease missing from the answer is lost.
- ``acquire``: up to ``limit`` free or expired leases (lowest shards first,
  ``FOR UPDATE SKIP LOCKED``: two replicas never take the same one), each with
  ``epoch + 1`` — the new fencing token — and its previous owner (a takeover when set).
- ``release``: gives leases back (``owner`` NULL) — callers do so only after the shard's
  state is written.

PostgreSQL only (cluster mode refuses SQLite at config time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import NonRetryableError
from daemon.store.engine import reporting_unavailable, write_transaction

REPLICA_FORGET_TTLS = 6  # a replica silent for this many TTLs leaves cluster_replicas


class ShardCountMismatch(NonRetryableError):
    """The database holds leases for more shards than ``cluster.shards`` says."""

    def __init__(self, configured: int, stored: int) -> None:
        super().__init__(
            f"cluster.shards is {configured} but the database has {stored} shard leases: "
            "every replica must use the same cluster.shards"
        )


@dataclass(frozen=True, slots=True)
class Acquired:
    """A lease just taken: its shard, new epoch, expiry, and who held it before."""

    shard: int
    epoch: int
    expires_at: float
    previous_owner: str | None


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """One row of ``shard_leases`` as ``/v1/cluster`` shows it."""

    shard: int
    owner: str | None
    epoch: int
    expires_at: float | None
    live: bool
    """``owner`` is set and ``expires_at`` is in the future (database clock)."""


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    """One row of ``cluster_replicas``."""

    id: str
    last_seen: float
    alive: bool


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The whole lease table and the replicas, read in one transaction."""

    replicas: list[ReplicaRow]
    shards: list[LeaseRow]
    now: float


def _pairs(held: Mapping[int, int]) -> dict[str, list[int]]:
    shards = sorted(held)
    return {"shards": shards, "epochs": [held[s] for s in shards]}


class LeaseStore:
    """The lease statements of one replica (``replica_id``) with leases of ``ttl_s``."""

    def __init__(self, engine: AsyncEngine, *, replica_id: str, ttl_s: float) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self.ttl_s = ttl_s
        self._ttl = timedelta(seconds=ttl_s)  # bound as an SQL interval

    async def ensure_shards(self, shards: int) -> None:
        """Create the lease rows ``0 … shards-1`` (idempotent); ``ShardCountMismatch`` when the
        table has more (another replica runs with a larger ``cluster.shards``)."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO shard_leases (shard, epoch) "
                    "SELECT s, 0 FROM generate_series(0, CAST(:n AS integer) - 1) AS s "
                    "ON CONFLICT (shard) DO NOTHING"
                ),
                {"n": shards},
            )
            stored = (await conn.execute(sa.text("SELECT count(*) FROM shard_leases"))).scalar()
        if int(stored or 0) != shards:
            raise ShardCountMismatch(shards, int(stored or 0))

    async def heartbeat(self) -> int:
        """Record this replica as seen now; return the replicas alive (seen within one TTL,
        database clock), this one included. Forgets replicas long silent."""
        params = {"me": self.replica_id, "ttl": self._ttl}
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO cluster_replicas (id, started_at, last_seen) "
                    "VALUES (:me, now(), now()) "
                    "ON CONFLICT (id) DO UPDATE SET last_seen = now()"
                ),
                {"me": self.replica_id},
            )
            await conn.execute(
                sa.text(
                    "DELETE FROM cluster_replicas WHERE last_seen < now() - "
                    "CAST(:forget AS interval)"
                ),
                {"forget": self._ttl * REPLICA_FORGET_TTLS},
            )
            alive = await conn.execute(
                sa.text(
                    "SELECT count(*) FROM cluster_replicas "
                    "WHERE id = :me OR last_seen > now() - CAST(:ttl AS interval)"
                ),
                params,
            )
            return int(alive.scalar() or 0)

    async def renew(self, held: Mapping[int, int]) -> dict[int, float]:
        """Extend the leases of ``held`` (shard → epoch) still this replica's at that epoch
        and not expired; return shard → new expiry (unix s). Missing shards are lost."""
        if not held:
            return {}
        async with write_transaction(self.engine) as conn:
            rows = await conn.execute(
                sa.text(
                    "UPDATE shard_leases AS l SET expires_at = now() + CAST(:ttl AS interval) "
                    "FROM unnest(CAST(:shards AS integer[]), CAST(:epochs AS bigint[])) "
                    "AS h(shard, epoch) "
                    "WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = :me "
                    "AND l.expires_at > now() "
                    "RETURNING l.shard, extract(epoch FROM l.expires_at)"
                ),
                {"me": self.replica_id, "ttl": self._ttl, **_pairs(held)},
            )
            return {int(shard): float(expires) for shard, expires in rows}

    async def acquire(self, limit: int) -> list[Acquired]:
        """Take up to ``limit`` free or expired leases, lowest shards first, each at a new
        epoch; rows another transaction holds are skipped (taken at a later tick)."""
        if limit <= 0:
            return []
        async with write_transaction(self.engine) as conn:
            rows = await conn.execute(
                sa.text(
                    "WITH free AS ("
                    " SELECT shard, owner FROM shard_leases"
                    " WHERE owner IS NULL OR expires_at IS NULL OR expires_at <= now()"
                    " ORDER BY shard LIMIT :limit FOR UPDATE SKIP LOCKED) "
                    "UPDATE shard_leases AS l SET owner = :me, epoch = l.epoch + 1, "
                    "expires_at = now() + CAST(:ttl AS interval) "
                    "FROM free WHERE l.shard = free.shard "
                    "RETURNING l.shard, l.epoch, extract(epoch FROM l.expires_at), free.owner"
                ),
                {"me": self.replica_id, "ttl": self._ttl, "limit": limit},
            )
            taken = [
                Acquired(
                    shard=int(shard),
                    epoch=int(epoch),
                    expires_at=float(expires),
                    previous_owner=previous,
                )
                for shard, epoch, expires, previous in rows
            ]
        return sorted(taken, key=lambda a: a.shard)

    async def free(self) -> int:
        """How many leases are free or expired now (database clock)."""
        async with reporting_unavailable(self.engine), self.engine.connect() as conn:
            found = await conn.execute(
                sa.text(
                    "SELECT count(*) FROM shard_leases "
                    "WHERE owner IS NULL OR expires_at IS NULL OR expires_at <= now()"
                )
            )
            return int(found.scalar() or 0)

    async def release(self, held: Mapping[int, int]) -> list[int]:
        """Give back the leases of ``held`` (shard → epoch) still this replica's; return the
        shards released. Call only once their state is written."""
        if not held:
            return []
        async with write_transaction(self.engine) as conn:
            rows = await conn.execute(
                sa.text(
                    "UPDATE shard_leases AS l SET owner = NULL, expires_at = NULL "
                    "FROM unnest(CAST(:shards AS integer[]), CAST(:epochs AS bigint[])) "
                    "AS h(shard, epoch) "
                    "WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = :me "
                    "RETURNING l.shard"
                ),
                {"me": self.replica_id, **_pairs(held)},
            )
            return sorted(int(shard) for (shard,) in rows)

    async def leave(self) -> None:
        """Remove this replica from ``cluster_replicas`` (clean stop, after ``release``)."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                sa.text("DELETE FROM cluster_replicas WHERE id = :me"), {"me": self.replica_id}
            )

    async def view(self) -> ClusterView:
        """Replicas and leases as the database sees them now."""
        return await read_cluster(self.engine, ttl_s=self.ttl_s)


async def read_cluster(engine: AsyncEngine, *, ttl_s: float) -> ClusterView:
    """Replicas (alive: seen within ``ttl_s``) and leases (live: owned and not expired), with
    the database's ``now()``; one read-only transaction."""
    async with reporting_unavailable(engine), engine.connect() as conn, conn.begin():
        now = (await conn.execute(sa.text("SELECT extract(epoch FROM now())"))).scalar()
        replicas = await conn.execute(
            sa.text(
                "SELECT id, extract(epoch FROM last_seen), "
                "last_seen > now() - CAST(:ttl AS interval) FROM cluster_replicas ORDER BY id"
            ),
            {"ttl": timedelta(seconds=ttl_s)},
        )
        replica_rows = [ReplicaRow(id=r, last_seen=float(s), alive=bool(a)) for r, s, a in replicas]
        leases = await conn.execute(
            sa.text(
                "SELECT shard, owner, epoch, extract(epoch FROM expires_at), "
                "coalesce(owner IS NOT NULL AND expires_at > now(), false) "
                "FROM shard_leases ORDER BY shard"
            )
        )
        lease_rows = [
            LeaseRow(
                shard=int(s),
                owner=o,
                epoch=int(e),
                expires_at=None if x is None else float(x),
                live=bool(live),
            )
            for s, o, e, x, live in leases
        ]
    return ClusterView(replicas=replica_rows, shards=lease_rows, now=float(now or 0.0))
