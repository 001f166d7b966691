"""The engine's writer: stores what the engine applied in memory, one transaction per write,
and keeps it until the store has it.

    writer = CycleWriter(store, build=rows_and_context, written=publish)
    writer.pending.add_accounts(changed)     # the engine loop stages what it applied
    await writer.write()                     # one transaction now, unless writes are failing
    await writer.retry()                     # a task beside the loop: backoff while failing

While the store answers, every engine cycle writes at once (``write``) and waits for it, as
before. A failed write puts its batch back into ``PendingWrites`` and hands over to
``retry``, which tries again with jittered exponential backoff (``RETRY_MIN_S`` doubling to
``RETRY_MAX_S``) while the engine keeps applying events and staging their effects without
waiting for the store. The first write that succeeds after an outage stores everything
pending: the current health of every account whose stored row is out of date, the latest
balances and the retained price rounds; the database derives transitions against what it
has stored, so each lands exactly once.

In cluster mode every write carries the ``fence`` of the shards the engine runs (their lease
epochs); a write the database refuses because a lease moved on (``LeaseLost``) is dropped —
its shard belongs to another replica now, which re-reads it — counted in ``stats.fenced`` and
reported to ``on_fenced``, never retried.

A database that stops answering without refusing (a black hole) costs the engine at most
``WRITE_WAIT_S`` once: the write goes on in the background, bounded by ``WRITE_TIMEOUT_S``,
and the engine stages new events meanwhile; the running write takes them along when it
finishes, or fails and hands everything to ``retry``.

A large write is expected to take long: the first one after start-up stores every account
and every balance (a million accounts × 2 tokens: 3,000,000 rows). Each write is given
``WRITE_ROW_ALLOWANCE_S`` per row on top of both bounds: it counts as unanswered (``/readyz``
503) only after ``WRITE_WAIT_S`` + its allowance, and times out after ``WRITE_TIMEOUT_S`` + its
allowance. A cycle's few hundred rows add milliseconds: a black hole is still seen in ~5 s.
(At a million accounts on a loaded 2-core machine the first write of 2,000,000 balances was
still running after 67 s: 20 µs per row was too little, and a timed-out start-up write is
retried bigger — 3,000,000 rows — forever.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from core.errors import RetryableError
from daemon.pending_writes import PendingBatch, PendingWrites
from daemon.store.cycle import LateBreakdowns
from daemon.store.engine import is_unavailable
from daemon.store.fencing import Fence, LeaseLost
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.writer import HealthStore
from margin.tiers import IndexArray

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 30.0  # one write attempt, whatever hangs (a 100k-account cycle takes ~1 s)
WRITE_WAIT_S = 5.0  # an engine cycle waits this long for its write; then it goes on
RETRY_MIN_S = 0.5  # first retry after a failed write
RETRY_MAX_S = 5.0  # cap of the doubling delay: a database back is used within this
WRITE_ROW_ALLOWANCE_S = 100e-6  # per row written: ~10× its unloaded cost (bench/RESULTS.md)
WRITE_CHUNK_ACCOUNTS = 500_000
"""Accounts' health rows per transaction: more pending (a start-up's first valuation of a
million accounts, a market-wide move) are written in several, one after the other, each
with its transitions. The rows of a million accounts built at once as Python lists were
the start-up's memory peak, and one step of the event loop. Not smaller: each chunk joins
against the rows the previous ones stored (at 1M accounts, chunks of 200,000 took 6, 8 and
10 s as the table grew, ~40 s in all against ~25 s for one write, on the loaded machine)."""


Build = Callable[[IndexArray], tuple[HealthRows | None, CycleContext | None]]
"""Health rows and cycle context for the given engine rows (``None, None`` when empty)."""
Written = Callable[[IndexArray, int], Awaitable[None]]
"""Called after a successful write with the rows written and how many transitions it stored."""
Committed = Callable[[int], None]
"""Called as soon as a write's transitions are committed, with how many (before a large
write's remaining rows are: ``HealthStore.write_engine_cycle``); cheap, never awaited."""


@dataclass(slots=True)
class WriterStats:
    """What operators see of the writer (metrics, ``/readyz``)."""

    writes: int = 0
    failures: int = 0
    """Failed write attempts since start."""
    started_at: float = 0.0
    last_write_at: float | None = None
    """Unix time of the last successful write."""
    failing_since: float | None = None
    """Unix time of the first failure of the current outage (``None``: writes succeed)."""
    writing_since: float | None = None
    """Unix time the write in flight started (``None``: none in flight)."""
    writing_rows: int = 0
    """Rows (accounts' health and balances) of the write in flight: its time allowance."""
    last_error: str | None = None
    fenced: int = 0
    """Writes the database refused because a shard's lease had moved on (cluster mode)."""

    def seconds_since_write(self, now: float | None = None) -> float:
        """Since the last successful write (or the start, before any)."""
        now = time.time() if now is None else now
        return max(0.0, now - (self.last_write_at or self.started_at))


class _WriteFailed(RetryableError):
    """A write attempt failed; its batch is pending again."""


class CycleWriter:
    """Writes ``pending`` to ``store``; ``build`` turns engine rows into health rows."""

    def __init__(
        self,
        store: HealthStore,
        *,
        build: Build,
        written: Written,
        committed: Committed | None = None,
        breakdowns: LateBreakdowns | None = None,
        pending: PendingWrites | None = None,
        write_timeout_s: float = WRITE_TIMEOUT_S,
        write_wait_s: float = WRITE_WAIT_S,
        retry_min_s: float = RETRY_MIN_S,
        retry_max_s: float = RETRY_MAX_S,
        row_allowance_s: float = WRITE_ROW_ALLOWANCE_S,
        chunk_accounts: int = WRITE_CHUNK_ACCOUNTS,
        fence: Fence | None = None,
        on_fenced: Callable[[LeaseLost], None] | None = None,
    ) -> None:
        self.store = store
        self.pending = PendingWrites() if pending is None else pending
        self.stats = WriterStats(started_at=time.time())
        self._build = build
        self._written = written
        self._committed = committed
        self._breakdowns = breakdowns  # of the rows ``build`` returned last
        self._write_timeout_s = write_timeout_s
        self._write_wait_s = write_wait_s
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._row_allowance_s = row_allowance_s
        self._chunk_accounts = chunk_accounts
        self._lock = asyncio.Lock()  # one write at a time, batches taken in order
        self._failed = asyncio.Event()
        self._background: asyncio.Task[bool] | None = None
        self.fence = fence
        self._on_fenced = on_fenced
        self.in_flight: IndexArray = np.zeros(0, dtype=np.intp)
        """Engine rows of the write in flight (empty when none is)."""

    @property
    def failing(self) -> bool:
        """True from a failed write until the next successful one."""
        return self.stats.failing_since is not None

    def stalled_s(self, now: float | None = None) -> float:
        """How long the write in flight has gone unanswered, once that is beyond
        ``WRITE_WAIT_S`` plus its rows' allowance (0 when none is, or it is young)."""
        started = self.stats.writing_since
        if started is None:
            return 0.0
        waited = (time.time() if now is None else now) - started
        allowed = self._write_wait_s + self.stats.writing_rows * self._row_allowance_s
        return waited if waited > allowed else 0.0

    async def write(self) -> bool:
        """Store everything pending now and wait for it up to ``WRITE_WAIT_S``; True when
        nothing is left pending. Does nothing while writes are failing (``retry`` owns them,
        at its pace) or while a slow write is still running (it takes the new rows along)."""
        if self.failing or self._lock.locked():
            return False
        task = asyncio.ensure_future(self._write_all())
        done, _ = await asyncio.wait({task}, timeout=self._write_wait_s)
        if task in done:
            return task.result()
        log.warning("store_write_slow waited_s=%.1f", self._write_wait_s)
        self._background = task  # keep a reference; its outcome lands in stats and pending
        task.add_done_callback(_log_crash)
        return False

    async def flush(self) -> bool:
        """One more attempt even while failing (shutdown); True when nothing is left."""
        return await self._write_all()

    async def retry(self) -> None:
        """Forever: after a failed write, try again with backoff until one succeeds."""
        while True:
            await self._failed.wait()
            await asyncio.sleep(self._retry_min_s)
            retrying = AsyncRetrying(
                wait=wait_exponential_jitter(
                    multiplier=self._retry_min_s, max=self._retry_max_s, jitter=self._retry_min_s
                ),
                retry=retry_if_exception_type(_WriteFailed),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    if not await self._write_all():
                        raise _WriteFailed(self.stats.last_error or "write failed")

    async def _write_all(self) -> bool:
        async with self._lock:
            # Events staged while a write was in flight are written right after it.
            try:
                while self.pending:
                    self.stats.writing_since = time.time()
                    if not await self._attempt():
                        return False
                return True
            finally:
                self.stats.writing_since = None
                self.stats.writing_rows = 0

    def unstored(self) -> IndexArray:
        """Engine rows whose current health the store does not have yet: pending or in the
        write in flight (unsorted; a row may appear twice: a million accounts are not sorted
        on the event loop for a mask)."""
        return np.concatenate([self.pending.account_indices(), self.in_flight])

    async def _attempt(self) -> bool:
        batch = self.pending.take(self._chunk_accounts)
        self.in_flight = batch.accounts
        try:
            return await self._attempt_batch(batch)
        finally:
            self.in_flight = np.zeros(0, dtype=np.intp)

    async def _attempt_batch(self, batch: PendingBatch) -> bool:
        try:
            rows, context = self._build(batch.accounts)
        except BaseException:
            self.pending.put_back(batch)
            raise
        written_rows = len(batch.accounts) + sum(len(b.readings) for b in batch.balances)
        self.stats.writing_rows = written_rows
        started = time.perf_counter()
        try:
            async with asyncio.timeout(
                self._write_timeout_s + written_rows * self._row_allowance_s
            ):
                transitions = await self.store.write_engine_cycle(
                    balances=batch.balances,
                    prices=batch.rounds,
                    rows=rows,
                    context=context,
                    fence=self.fence,
                    on_committed=self._committed,
                    breakdowns=self._breakdowns,
                )
        except LeaseLost as exc:
            # Not this replica's to write any more: dropped, not retried (the new owner
            # re-reads the shard); the replica stops the shard's work (``on_fenced``).
            self.stats.fenced += 1
            log.warning("store_write_fenced shards=%s", ",".join(map(str, exc.shards)))
            if self._on_fenced is not None:
                self._on_fenced(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - whatever failed, the batch must survive
            self.pending.put_back(batch)
            self._failure(exc, time.perf_counter() - started)
            return False
        self._success()
        await self._written(batch.accounts, transitions)
        return True

    def _failure(self, exc: Exception, seconds: float) -> None:
        stats = self.stats
        stats.failures += 1
        stats.last_error = str(exc) if isinstance(exc, RetryableError) else repr(exc)
        if stats.failing_since is None:
            stats.failing_since = time.time()
        self._failed.set()
        pending = self.pending
        fields = (
            stats.failures,
            pending.accounts,
            pending.balances,
            pending.rounds,
            seconds,
            stats.last_error,
        )
        message = (
            "store_write_failed failures=%d pending_accounts=%d pending_balances=%d "
            "pending_rounds=%d seconds=%.3f error=%s"
        )
        if is_unavailable(exc):
            log.warning(message, *fields)
        else:  # not the database being away: keep the traceback, it may be a bug
            log.exception(message, *fields)

    def _success(self) -> None:
        stats = self.stats
        now = time.time()
        if stats.failing_since is not None:
            log.info(
                "store_write_recovered outage_s=%.1f failures=%d",
                now - stats.failing_since,
                stats.failures,
            )
        stats.writes += 1
        stats.last_write_at = now
        stats.failing_since = None
        self._failed.clear()


def _log_crash(task: asyncio.Task[bool]) -> None:
    """A background write that raised (not a failed write: those are caught and retried)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("store_write_crashed", exc_info=task.exception())
