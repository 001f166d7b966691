"""Fencing tokens: a write of a shard's data carries the epoch of the shard's lease and is
rejected, inside the write's own transaction, when the lease has moved on.

    fence = Fence(owner="replica-a", epochs={3: 7, 9: 2})   # shard -> epoch held
    async with write_transaction(engine) as conn:
        await check_fence(conn, fence)      # LeaseLost: rolled back, nothing written
        ...                                  # the writes

``check_fence`` reads the lease rows ``FOR SHARE``: an acquisition by another replica (an
``UPDATE`` of those rows) waits until this transaction ends, so a successor never starts from
state a zombie is still changing. A replica stopped mid-transaction (SIGSTOP) cannot hold the
rows for longer than ``idle_in_transaction_session_timeout`` (a quarter of the lease TTL, at
least 0.5 s): PostgreSQL ends that session and rolls its transaction back, and the owners'
renewals of those rows wait no longer than that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import NonRetryableError
from daemon.store.schema import shard_leases

MS_PER_S = 1000
IDLE_SHARE_OF_TTL = 0.25  # a fenced transaction idle this long (of the TTL) is ended
MIN_IDLE_TIMEOUT_MS = 500  # ... but never sooner: a busy writer pauses between statements


@dataclass(frozen=True, slots=True)
class Fence:
    """The leases a write is made under: ``owner`` (replica id) and shard → epoch."""

    owner: str
    epochs: Mapping[int, int]
    ttl_s: float
    """The lease TTL (bounds how long a fenced transaction may sit idle on the server)."""


class LeaseLost(NonRetryableError):
    """A fenced write was refused: these shards' leases are no longer ``owner``'s at the
    epoch it holds (taken over, released or never held)."""

    def __init__(self, owner: str, shards: list[int]) -> None:
        self.owner = owner
        self.shards = shards
        super().__init__(
            f"replica {owner} no longer holds the lease of shard(s) "
            f"{','.join(map(str, shards))}: write rejected"
        )


async def check_fence(conn: AsyncConnection, fence: Fence) -> None:
    """Raise ``LeaseLost`` unless every shard of ``fence`` is still leased to its owner at its
    epoch; lock those lease rows against acquisition until the transaction ends."""
    if conn.dialect.name != "postgresql":
        raise NonRetryableError("fenced writes need PostgreSQL (cluster mode)")
    timeout_ms = max(MIN_IDLE_TIMEOUT_MS, round(fence.ttl_s * IDLE_SHARE_OF_TTL * MS_PER_S))
    await conn.execute(sa.text(f"SET LOCAL idle_in_transaction_session_timeout = {timeout_ms}"))
    shards = sorted(fence.epochs)
    if not shards:
        return
    lease = shard_leases.c
    array = sa.bindparam("shards", shards, type_=postgresql.ARRAY(sa.Integer()))
    rows = await conn.execute(
        sa.select(lease.shard, lease.owner, lease.epoch)
        .where(lease.shard == sa.any_(array))
        .order_by(lease.shard)  # one lock order for every writer: no deadlock
        .with_for_update(read=True)
    )
    found = {row.shard: (row.owner, row.epoch) for row in rows}
    moved = [s for s in shards if found.get(s) != (fence.owner, fence.epochs[s])]
    if moved:
        raise LeaseLost(fence.owner, moved)


def held_shards(fence: Fence | None) -> list[int] | None:
    """The shards a fence covers (``None``: no fence, every shard)."""
    return None if fence is None else sorted(fence.epochs)


def fence_of(owner: str, epochs: Mapping[int, int], ttl_s: float) -> Fence:
    """A ``Fence`` with a private copy of ``epochs``."""
    return Fence(owner=owner, epochs=dict(epochs), ttl_s=ttl_s)
