"""The event relay: stored transitions become MQTT events, marked published only on PUBACK.

``health_transitions`` is the outbox (``published_at`` NULL until published). The relay reads
the oldest unpublished transitions in id order, ``batch`` at a time, builds every event from
the stored row and the block numbers of the cycle that stored it (nothing from live memory, so
a re-send after a restart is the same message), publishes them QoS 1 and waits until the
broker acknowledged each one (``MqttPublisher.deliver``), and only then marks the batch
published, in statements of bounded size (``daemon.store.outbox``).

It runs when the engine loop wakes it after a committed cycle, and every ``poll_s`` as a
safety net. While the broker is away ``deliver`` waits and resumes; while the database is away
reads and marks are retried with backoff. A crash re-sends at most what was read and not yet
marked: delivery is at least once, and a re-sent event has the same id and payload.

With MQTT off (``mqtt.url`` unset) there is nobody to deliver to: transitions are marked as
they come, so turning MQTT on later does not replay the history as fresh events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from core.lifecycle import wait_event
from daemon.documents import cached_flag_names
from daemon.mqtt.outbox import Message
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.topics import Topics, flag_events
from daemon.store.errors import StoreUnavailable
from daemon.store.records import OutboxEntry
from daemon.store.writer import HealthStore
from margin.model import Flag, flag_names

OUTBOX_POLL_S = 5.0  # read the outbox this often even when no cycle woke the relay
STORE_RETRY_MIN_S = 0.5  # database unavailable: first retry after this long …
STORE_RETRY_MAX_S = 10.0  # … doubling up to this
STORE_FAULTS = (OSError, TimeoutError, DBAPIError, StoreUnavailable)
"""What a database outage looks like from here: retried, never fatal."""

log = logging.getLogger(__name__)
T = TypeVar("T")
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # encode_json's format


@dataclass(frozen=True, slots=True)
class RelayStats:
    """Counters for metrics."""

    published: int  # events the broker acknowledged
    marked: int  # transitions marked published
    pending: int  # transitions read from the outbox and not marked yet
    oldest_pending_s: float  # age of the oldest of those (0 when none)
    last_error: str | None


def event_payload(entry: OutboxEntry) -> dict[str, object]:
    """The JSON document of every event a stored transition raises (README, MQTT): built
    from the store alone, so each delivery of one id carries the same payload."""
    return {
        "id": entry.id,
        "account": entry.account,
        "from_flags": flag_names(Flag(entry.from_flags)),
        "to_flags": flag_names(Flag(entry.to_flags)),
        "health": entry.health,  # encode_json turns ∞ (no debt) into null
        "health_latency": entry.health_latency,
        "shortfall": str(entry.shortfall),
        "actionable": entry.actionable,
        "blocks": dict(entry.blocks),
        "at": entry.at,
    }


def event_messages(topics: Topics, entry: OutboxEntry) -> list[Message]:
    """The events (topic, payload) one stored transition raises, in order; often none (a
    change of held reasons alone raises no event).

    The payload is ``encode_json(event_payload(...))``, spelt out for speed (a market-wide
    move encodes tens of thousands): keys inserted in sorted order, ∞ as null; a test holds
    the two equal.
    """
    kinds = flag_events(entry.from_flags, entry.to_flags)
    if not kinds:
        return []
    document = {
        "account": entry.account,
        "actionable": entry.actionable,
        "at": entry.at,
        "blocks": dict(sorted(entry.blocks.items())),
        "from_flags": cached_flag_names(entry.from_flags),
        "health": _finite(entry.health),
        "health_latency": _finite(entry.health_latency),
        "id": entry.id,
        "shortfall": str(entry.shortfall),
        "to_flags": cached_flag_names(entry.to_flags),
    }
    payload = _ENCODER.encode(document).encode()
    return [(topics.event(kind), payload) for kind in kinds]


class EventRelay:
    """Publishes the store's outbox through ``publisher``; see the module docstring."""

    def __init__(
        self,
        *,
        store: HealthStore,
        publisher: MqttPublisher,
        batch: int,
        poll_s: float = OUTBOX_POLL_S,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._batch = max(1, batch)
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._published = 0
        self._marked = 0
        self._in_flight: deque[Sequence[OutboxEntry]] = deque()  # read, not marked yet
        self._last_error: str | None = None

    def wake(self) -> None:
        """New transitions were committed: relay them now (cheap; call after every commit)."""
        self._wake.set()

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
        """Relay forever: empty the outbox, then wait for a wake-up or ``poll_s``."""
        while True:
            self._wake.clear()  # a wake-up from now on means another pass
            await self.drain()
            await wait_event(self._wake, self._poll_s)

    async def drain(self) -> None:
        """Relay until the outbox is empty; return once everything relayed is marked.

        Batches are read in id order after the last one read: the next batch is read while
        this one is delivered, and marked while the next one is delivered (one read and one
        mark in flight at most). Every pass starts from the lowest unpublished id, so nothing
        a pass skipped is left behind.
        """
        entries = await self._read(0)
        if entries:
            async with self._publisher.events_first():  # retained state waits meanwhile
                await self._pass(entries)

    async def _pass(self, entries: list[OutboxEntry]) -> None:
        marking: asyncio.Task[None] | None = None
        reading: asyncio.Task[list[OutboxEntry]] | None = None
        try:
            while entries:
                self._in_flight.append(entries)
                if len(entries) == self._batch:  # more may be waiting: read them meanwhile
                    reading = asyncio.create_task(self._read(entries[-1].id), name="events-read")
                await self._deliver(entries)
                if marking is not None:
                    await marking
                marking = asyncio.create_task(self._mark(entries), name="events-mark")
                entries = [] if reading is None else await reading
                reading = None
        except BaseException:
            for task in (reading, marking):
                if task is not None:
                    task.cancel()  # an unmarked batch is re-sent next time (same ids)
            self._in_flight.clear()
            raise
        if marking is not None:
            await marking

    async def _read(self, after_id: int) -> list[OutboxEntry]:
        queries = self._store.queries
        return await self._retrying(
            "read", lambda: queries.outbox(limit=self._batch, after_id=after_id)
        )

    async def _deliver(self, entries: Sequence[OutboxEntry]) -> None:
        if not self._publisher.enabled:
            return
        started = time.perf_counter()
        topics = self._publisher.topics
        messages = [m for entry in entries for m in event_messages(topics, entry)]
        encoded = time.perf_counter()
        await self._publisher.deliver(messages)
        self._published += len(messages)
        log.info(
            "events_relayed transitions=%d events=%d first_id=%d encode_s=%.3f deliver_s=%.3f",
            len(entries),
            len(messages),
            entries[0].id,
            encoded - started,
            time.perf_counter() - encoded,
        )

    async def _mark(self, entries: Sequence[OutboxEntry]) -> None:
        ids = [e.id for e in entries]
        self._marked += await self._retrying("mark", lambda: self._store.mark_published(ids))
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
