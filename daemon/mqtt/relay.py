"""The event relay: stored transitions become MQTT events, marked published only on PUBACK.

``health_transitions`` is the outbox (``published_at`` NULL until published). The relay reads
the oldest unpublished transitions in id order, ``batch`` at a time (a pass's first reads are
smaller, ``FIRST_READ`` growing ``READ_GROWTH``-fold, so that the first events go out while the
rest is read), builds every event from the stored row and the block numbers of the cycle that
stored it (``daemon.mqtt.event_payloads``: nothing from live memory, so a re-send after a
restart is the same message), publishes them QoS 1 and waits until the broker acknowledged
each one (``MqttPublisher.deliver``), and only then marks the batch published, in statements
of bounded size (``daemon.store.outbox``). On PostgreSQL outside cluster mode, reads and
marks go through connections of the relay's own (``OutboxConnection``: one statement, one round
trip each).

It runs when the engine loop wakes it after a committed cycle, and every ``poll_s`` as a
safety net; ``settled`` tells when what a wake-up announced is relayed (a large write's late
part waits for it: ``EngineLoop._build_breakdowns``). While the broker is away ``deliver``
waits and resumes; while the database is away reads and marks are retried with backoff. A
crash re-sends at most what was read and not yet marked: delivery is at least once, and a
re-sent event has the same id and payload.

Cluster mode: the relay publishes the transitions of its replica's shards only. Reading a batch
is the claim: it carries the shards' lease epochs (``fence``) and is refused in its own
transaction when a lease has moved on (``LeaseLost``: the relay stops, the replica gives up
that work). Before each delivery it also asks ``may_publish`` (the lease is still valid by the
replica's own monotonic clock, with a margin), so a replica woken from a pause past its TTL
does not deliver a batch it read before the pause. A successor reads everything of its shards
not marked yet: what its predecessor stored and did not publish goes out once, from it. The
mark itself is not fenced: it records a fact (the broker acknowledged those events), and
refusing it would only make the successor publish them a second time.

With MQTT off (``mqtt.url`` unset) there is nobody to deliver to: transitions are marked as
they come, so turning MQTT on later does not replay the history as fresh events.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from core.lifecycle import wait_event, within
from daemon.mqtt.event_payloads import batch_messages
from daemon.mqtt.outbox import Message
from daemon.mqtt.publisher import MqttPublisher
from daemon.store.errors import StoreUnavailable
from daemon.store.fencing import Fence, LeaseLost
from daemon.store.outbox import OutboxConnection
from daemon.store.records import OutboxEntry
from daemon.store.writer import HealthStore

OUTBOX_POLL_S = 5.0  # read the outbox this often even when no cycle woke the relay
STORE_RETRY_MIN_S = 0.5  # database unavailable: first retry after this long …
STORE_RETRY_MAX_S = 10.0  # … doubling up to this
STORE_FAULTS = (OSError, TimeoutError, DBAPIError, StoreUnavailable)
MARK_ON_STOP_S = 5.0  # cancelled: this long to mark what the broker already acknowledged
"""What a database outage looks like from here: retried, never fatal."""
FIRST_READ = 1_000  # transitions in a pass's first read: its events go out while the next,
# larger reads are made (a full batch of 10,000 took 0.3-0.5 s to read and encode on a busy
# loop after a market-wide move's commit, with nothing delivered meanwhile)
READ_GROWTH = 4  # each next read of a pass is this many times larger, up to the batch

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RelayStats:
    """Counters for metrics."""

    published: int  # events the broker acknowledged
    marked: int  # transitions marked published
    pending: int  # transitions read from the outbox and not marked yet
    oldest_pending_s: float  # age of the oldest of those (0 when none)
    last_error: str | None


@dataclass(frozen=True, slots=True)
class _Batch:
    """Transitions read from the outbox and the events they raise, encoded."""

    entries: list[OutboxEntry]
    messages: list[Message]
    encode_s: float  # time spent encoding them
    limit: int  # the most the read could return (fewer: the outbox had no more)


_NO_BATCH = _Batch([], [], 0.0, 0)


class EventRelay:
    """Publishes the store's outbox through ``publisher``; see the module docstring."""

    def __init__(
        self,
        *,
        store: HealthStore,
        publisher: MqttPublisher,
        batch: int,
        poll_s: float = OUTBOX_POLL_S,
        fence: Fence | None = None,
        may_publish: Callable[[], bool] | None = None,
        on_fenced: Callable[[LeaseLost], None] | None = None,
        connection: OutboxConnection | None = None,
    ) -> None:
        self._store = store
        # Unfenced reads and marks on PostgreSQL go through the relay's own connection (one
        # round trip each); a fenced claim needs its transaction (``StoreQueries.outbox``).
        self._connection = connection if fence is None else None
        self._fence = fence
        self._may_publish = may_publish
        self._on_fenced = on_fenced
        self.fenced = 0
        """Claims refused (or deliveries withheld) because a lease had moved on."""
        self._publisher = publisher
        self._batch = max(1, batch)
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()  # no pass under way or due (``settled``)
        self._published = 0
        self._marked = 0
        self._in_flight: deque[Sequence[OutboxEntry]] = deque()  # read, not marked yet
        self._last_error: str | None = None

    def wake(self) -> None:
        """New transitions were committed: relay them now (cheap; call after every commit)."""
        self._idle.clear()
        self._wake.set()

    async def settled(self, within_s: float) -> bool:
        """Wait until what was committed before the last ``wake`` is relayed (no pass under way
        or due), at most ``within_s``; False on timeout (also when the relay does not run), and
        at once while the broker is away (events then wait for it, the caller need not)."""
        if self._publisher.enabled and not self._publisher.connected:
            return self._idle.is_set()
        return await wait_event(self._idle, within_s)

    def stop(self) -> None:
        """End ``run`` gracefully: the batch under way is delivered and marked, no other is
        started. Cancelling instead would cut a batch mid-delivery, and whoever relays next
        (this replica's flush, the next start, a shard's next owner) would send it again."""
        self._stop.set()
        self._wake.set()
        self._idle.set()  # nobody waits for a stopped relay

    def stats(self) -> RelayStats:
        """A snapshot of the counters."""
        oldest = self._in_flight[0][0].at if self._in_flight else None
        return RelayStats(
            published=self._published,
            marked=self._marked,
            pending=sum(len(batch) for batch in self._in_flight),
            oldest_pending_s=0.0 if oldest is None else max(0.0, time.time() - oldest),
            last_error=self._last_error,
        )

    async def run(self) -> None:
        """Relay forever: empty the outbox, then wait for a wake-up or ``poll_s``. Once a
        lease is lost (cluster mode) the relay stops publishing and idles until cancelled."""
        try:
            while not self._stop.is_set():
                self._wake.clear()  # a wake-up from now on means another pass
                try:
                    await self.drain(stoppable=True)
                except LeaseLost as exc:
                    self._fenced(exc)
                    self._idle.set()  # nothing more is relayed by this one
                    await self._stop.wait()  # the replica rebuilds its pipeline
                if not self._wake.is_set():
                    self._idle.set()
                await wait_event(self._wake, self._poll_s)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the relay's own database connection, if any (idempotent; a later ``drain``
        opens a new one)."""
        if self._connection is not None:
            self._connection.close()

    def _fenced(self, exc: LeaseLost) -> None:
        self.fenced += 1
        log.warning("events_fenced shards=%s", ",".join(map(str, exc.shards)))
        if self._on_fenced is not None:
            self._on_fenced(exc)

    async def drain(self, *, stoppable: bool = False) -> None:
        """Relay until the outbox is empty; return once everything relayed is marked.

        Batches are read in id order after the last one read: the next batch is read while
        this one is delivered, and marked while the next one is delivered (one read and one
        mark in flight at most). Every pass starts from the lowest unpublished id, so nothing
        a pass skipped is left behind. ``stoppable``: after ``stop()``, end with the batch
        under way.
        """
        # Retained state waits from the first read on: right after a market-wide move the
        # engine has just marked the state of most accounts for publishing, and building and
        # sending it would otherwise hold the event loop before the first event goes out.
        async with self._publisher.events_first():
            batch = await self._read(0, min(self._batch, FIRST_READ))
            if batch.entries:
                await self._pass(batch, stoppable=stoppable)

    async def _pass(self, batch: _Batch, *, stoppable: bool) -> None:
        marking: asyncio.Task[None] | None = None
        reading: asyncio.Task[_Batch] | None = None
        acknowledged: Sequence[OutboxEntry] | None = None  # delivered, its mark not started
        try:
            while entries := batch.entries:
                self._in_flight.append(entries)
                if len(entries) == batch.limit:  # more may be waiting: read them meanwhile
                    limit = min(self._batch, batch.limit * READ_GROWTH)
                    reading = asyncio.create_task(
                        self._read(entries[-1].id, limit), name="events-read"
                    )
                await self._deliver(batch)
                acknowledged = entries
                if marking is not None:
                    await marking
                marking = asyncio.create_task(self._mark(entries), name="events-mark")
                acknowledged = None
                batch = _NO_BATCH if reading is None else await reading
                reading = None
                if stoppable and self._stop.is_set():
                    break  # stopped: what was read next is left for the next pass
        except BaseException:
            if reading is not None:
                reading.cancel()
            await self._mark_on_stop(marking, acknowledged)
            self._in_flight.clear()
            raise
        if marking is not None:
            await marking

    async def _mark_on_stop(
        self, marking: asyncio.Task[None] | None, acknowledged: Sequence[OutboxEntry] | None
    ) -> None:
        """Cancelled (a stop, or a cluster replica handing shards over): what the broker
        already acknowledged is still marked, within ``MARK_ON_STOP_S``, so that neither the
        next start nor a shard's next owner sends it again. Only a batch cut mid-delivery
        (or a mark the database does not take in time) is re-sent (same ids: at least once)."""

        async def finish() -> None:
            if marking is not None:
                await marking
            if acknowledged is not None:
                await self._mark(acknowledged)

        try:
            await asyncio.shield(within(finish(), MARK_ON_STOP_S))
        except (asyncio.CancelledError, Exception) as exc:  # noqa: BLE001 - stopping anyway
            log.warning("events_unmarked_on_stop error=%s", type(exc).__name__)
            if marking is not None:
                marking.cancel()

    async def _read(self, after_id: int, limit: int) -> _Batch:
        """The next batch (at most ``limit``), its events already encoded: the read runs
        while the previous batch is delivered, so the encoding is not between one batch's last
        PUBACK and the next batch's first PUBLISH."""
        queries, connection = self._store.queries, self._connection
        entries = await self._retrying(
            "read",
            lambda: (
                queries.outbox(limit=limit, after_id=after_id, fence=self._fence)
                if connection is None
                else connection.read(limit=limit, after_id=after_id)
            ),
        )
        if not entries or not self._publisher.enabled:
            return _Batch(entries, [], 0.0, limit)
        started = time.perf_counter()
        messages = batch_messages(self._publisher.topics, entries)
        return _Batch(entries, messages, time.perf_counter() - started, limit)

    async def _deliver(self, batch: _Batch) -> None:
        if not self._publisher.enabled:
            return
        if self._may_publish is not None and not self._may_publish():
            assert self._fence is not None
            raise LeaseLost(self._fence.owner, sorted(self._fence.epochs))
        started = time.perf_counter()
        await self._publisher.deliver(batch.messages)
        self._published += len(batch.messages)
        log.info(
            "events_relayed transitions=%d events=%d first_id=%d encode_s=%.3f deliver_s=%.3f",
            len(batch.entries),
            len(batch.messages),
            batch.entries[0].id,
            batch.encode_s,
            time.perf_counter() - started,
        )

    async def _mark(self, entries: Sequence[OutboxEntry]) -> None:
        ids = [e.id for e in entries]
        connection = self._connection
        self._marked += await self._retrying(
            "mark",
            lambda: (
                self._store.mark_published(ids)
                if connection is None
                else connection.mark(ids, time.time())
            ),
        )
        if entries in self._in_flight:  # a mark finished after a stop has cleared them
            self._in_flight.remove(entries)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` until the database answers, backing off in between."""
        failures = 0
        while True:
            try:
                result = await attempt()
            except STORE_FAULTS as exc:
                failures += 1
                self._last_error = f"{type(exc).__name__}: {_first_line(exc)}"
                delay = _backoff(failures)
                log.warning(
                    "event_relay_store_unavailable step=%s error=%s attempt=%d retry_in_s=%.2f",
                    what,
                    self._last_error,
                    failures,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("event_relay_store_back step=%s after_attempts=%d", what, failures)
                self._last_error = None
            return result


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _backoff(failures: int) -> float:
    cap = min(STORE_RETRY_MAX_S, STORE_RETRY_MIN_S * 2 ** min(failures, 16))
    return random.uniform(STORE_RETRY_MIN_S, max(STORE_RETRY_MIN_S, cap))


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy appends the SQL and its parameters: never log those.
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__
