"""``ClusterMember``: this replica's shard leases — heartbeats, renewals, its fair share.

    member = ClusterMember(LeaseStore(engine, replica_id=..., ttl_s=...), shards=16, ...)
    await member.join()             # lease rows exist; peers starting with us are seen
    await member.rebalance()        # give back extras (state written!), take up to the share
    tasks.create_task(member.run()) # renew every ttl/3; set ``changed`` when the set must move
    ...
    await member.leave()            # clean stop: every lease back, at once

The member never changes its set of shards while a pipeline runs on it, except by losing
leases: ``run`` only renews and *asks* for a change (``changed``); the daemon stops the
pipeline, writes what it holds, then calls ``rebalance``. So a shard is given back only after
its state is stored (no gap), and a lost lease stops that shard's work at once.

Fair share: at most ``ceil(shards / alive)`` leases while ``alive`` replicas heartbeat (the
database counts them); a replica above it gives the extra back, one below it takes free or
expired leases. A lease is valid locally until ``LOCAL_VALIDITY`` × TTL after the renewal
was *sent* (monotonic clock): the database extends it from a later instant, so the replica
stops trusting its lease before the database lets anyone else take it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from core.errors import RetryableError
from daemon.cluster.shards import fair_share
from daemon.metrics import Metrics
from daemon.store.engine import is_unavailable
from daemon.store.fencing import Fence, LeaseLost, fence_of
from daemon.store.leases import LeaseStore

log = logging.getLogger(__name__)

RENEWALS_PER_TTL = 3  # renew every ttl/3: two renewals may fail before the lease runs out
LOCAL_VALIDITY = 0.8  # of the TTL after a renewal was sent: this replica's own deadline


class ClusterMember:
    """One replica's view of the lease table (see the module docstring)."""

    def __init__(self, leases: LeaseStore, *, shards: int, metrics: Metrics | None) -> None:
        self.leases = leases
        self.shards = shards
        self.ttl_s = leases.ttl_s
        self.metrics = metrics
        self.held: dict[int, int] = {}
        """shard → epoch of every lease held."""
        self.alive = 1
        self.takeovers = 0
        self.changed = asyncio.Event()
        """Set when the held set must change: a lease lost, extras to give, shards to take."""
        self._valid_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def replica_id(self) -> str:
        """This replica's id in the lease table."""
        return self.leases.replica_id

    def fence(self) -> Fence:
        """The fencing token of every lease held now (fixed for a pipeline's life)."""
        return fence_of(self.replica_id, self.held, self.ttl_s)

    def valid(self) -> bool:
        """True while the leases are valid by this replica's own (conservative) deadline."""
        return time.monotonic() < self._valid_until

    def lost(self, exc: LeaseLost) -> None:
        """A fenced write or claim was refused: those shards are gone; stop their work."""
        for shard in exc.shards:
            self.held.pop(shard, None)
        self._observe()
        self.changed.set()

    async def join(self) -> None:
        """Create the lease rows, announce this replica and give replicas started at the same
        moment one renewal period to announce themselves (fewer hand-overs at start-up)."""
        await self.leases.ensure_shards(self.shards)
        await self.leases.heartbeat()
        await asyncio.sleep(self.ttl_s / RENEWALS_PER_TTL)
        log.info("cluster_joined replica=%s shards=%d", self.replica_id, self.shards)

    async def tick(self) -> None:
        """One heartbeat and renewal; ask for a change when leases were lost or the fair
        share moved (replicas came or went, or leases are free)."""
        async with self._lock:
            sent = time.monotonic()
            self.alive = await self.leases.heartbeat()
            renewed = await self.leases.renew(self.held)
            gone = sorted(set(self.held) - set(renewed))
            if gone:
                log.warning("cluster_leases_lost replica=%s shards=%s", self.replica_id, gone)
                for shard in gone:
                    del self.held[shard]
                self.changed.set()
            self._valid_until = sent + LOCAL_VALIDITY * self.ttl_s
            share = fair_share(self.shards, self.alive)
            if len(self.held) > share or (len(self.held) < share and await self.leases.free() > 0):
                self.changed.set()
            self._observe()

    async def run(self) -> None:
        """Renew every ``ttl/RENEWALS_PER_TTL`` forever. While the database does not answer,
        the leases are given up locally once their local deadline passes."""
        while True:
            await asyncio.sleep(self.ttl_s / RENEWALS_PER_TTL)
            try:
                # A database that does not answer must not hold the renewals: past the
                # local deadline the leases are given up, answered or not.
                async with asyncio.timeout(self.ttl_s / RENEWALS_PER_TTL):
                    await self.tick()
            except Exception as exc:
                if not (isinstance(exc, (RetryableError, TimeoutError)) or is_unavailable(exc)):
                    raise
                log.warning("cluster_renew_failed replica=%s error=%s", self.replica_id, exc)
                if self.held and not self.valid():
                    log.warning(
                        "cluster_leases_expired_locally replica=%s shards=%s",
                        self.replica_id,
                        sorted(self.held),
                    )
                    self.held.clear()
                    self._observe()
                    self.changed.set()

    async def rebalance(self) -> None:
        """Between two pipelines (everything of the held shards is written): give back what
        exceeds the fair share, renew the rest, take free or expired leases up to it.
        ``TimeoutError`` when the database does not answer within a TTL."""
        async with self._lock, asyncio.timeout(self.ttl_s):
            sent = time.monotonic()
            self.alive = await self.leases.heartbeat()
            share = fair_share(self.shards, self.alive)
            extra = sorted(self.held)[share:]
            if extra:
                given = await self.leases.release({s: self.held[s] for s in extra})
                log.info("cluster_leases_released replica=%s shards=%s", self.replica_id, given)
                for shard in extra:
                    del self.held[shard]
            renewed = await self.leases.renew(self.held)
            self.held = {s: e for s, e in self.held.items() if s in renewed}
            if len(self.held) < share:
                for lease in await self.leases.acquire(share - len(self.held)):
                    self.held[lease.shard] = lease.epoch
                    if lease.previous_owner not in (None, self.replica_id):
                        self.takeovers += 1
                        if self.metrics is not None:
                            self.metrics.cluster_takeovers.inc()
                        log.info(
                            "cluster_takeover replica=%s shard=%d from=%s epoch=%d",
                            self.replica_id,
                            lease.shard,
                            lease.previous_owner,
                            lease.epoch,
                        )
            self._valid_until = sent + LOCAL_VALIDITY * self.ttl_s
            self.changed.clear()
            self._observe()
            log.info(
                "cluster_shards replica=%s alive=%d share=%d held=%s",
                self.replica_id,
                self.alive,
                share,
                sorted(self.held),
            )

    async def leave(self) -> None:
        """Clean stop (the pipeline's state is written): every lease back, replica gone."""
        async with self._lock:
            await self.leases.release(self.held)
            self.held = {}
            await self.leases.leave()
            self._observe()
            log.info("cluster_left replica=%s", self.replica_id)

    def _observe(self) -> None:
        if self.metrics is not None:
            self.metrics.cluster_leases_held.set(len(self.held))
