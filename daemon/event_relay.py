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
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from daemon.mqtt import MqttPublisher
from daemon.mqtt_outbox import Message
from daemon.mqtt_topics import AccountSignal, HealthBucket, Topics, encode_json, transition_events
from daemon.store.errors import StoreUnavailable
from daemon.store.records import OutboxEntry, StoredTransition
from daemon.store.writer import HealthStore
from margin.model import flag_names

OUTBOX_POLL_S = 5.0  # read the outbox this often even when no cycle woke the relay
STORE_RETRY_MIN_S = 0.5  # database unavailable: first retry after this long …
STORE_RETRY_MAX_S = 10.0  # … doubling up to this
STORE_FAULTS = (OSError, TimeoutError, DBAPIError, StoreUnavailable)
"""What a database outage looks like from here: retried, never fatal."""

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


def event_payload(t: StoredTransition, blocks: Mapping[str, int]) -> dict[str, object]:
    """The JSON document of every event ``t`` raises (README, MQTT): built from the store
    alone, so each delivery of one id carries the same payload."""
    return {
        "id": t.id,
        "account": t.account,
        "from_flags": flag_names(t.from_flags),
        "to_flags": flag_names(t.to_flags),
        "health": t.health,  # encode_json turns ∞ (no debt) into null
        "health_latency": t.health_latency,
        "shortfall": str(t.shortfall),
        "actionable": t.actionable,
        "blocks": dict(blocks),
        "at": t.at,
    }


def event_messages(topics: Topics, entry: OutboxEntry) -> list[Message]:
    """The events (topic, payload) one stored transition raises, in order; often none (a
    change of held reasons alone raises no event)."""
    t = entry.transition
    kinds = transition_events(
        AccountSignal(t.from_flags, HealthBucket.NO_DEBT),
        AccountSignal(t.to_flags, HealthBucket.NO_DEBT),
    )
    if not kinds:
        return []
    payload = encode_json(event_payload(t, entry.blocks))
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
        self._pending: Sequence[OutboxEntry] = ()
        self._last_error: str | None = None

    def wake(self) -> None:
        """New transitions were committed: relay them now (cheap; call after every commit)."""
        self._wake.set()

    def stats(self) -> RelayStats:
        """A snapshot of the counters."""
        oldest = min((e.transition.at for e in self._pending), default=None)
        return RelayStats(
            published=self._published,
            marked=self._marked,
            pending=len(self._pending),
            oldest_pending_s=0.0 if oldest is None else max(0.0, time.time() - oldest),
            last_error=self._last_error,
        )

    async def run(self) -> None:
        """Relay forever: a batch at a time, then wait for a wake-up or ``poll_s``."""
        while True:
            self._wake.clear()  # a wake-up from now on means another read
            if await self.relay_once() >= self._batch:
                continue  # a full batch: more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def drain(self) -> None:
        """Relay until the outbox is empty (shutdown; the caller bounds the time)."""
        while await self.relay_once() >= self._batch:
            pass

    async def relay_once(self) -> int:
        """Read one batch, publish it and wait for every PUBACK, mark it; how many
        transitions it held (0: the outbox is empty)."""
        queries = self._store.queries
        entries = await self._retrying("read", lambda: queries.outbox(limit=self._batch))
        if not entries:
            return 0
        self._pending = entries
        try:
            if self._publisher.enabled:
                messages = [m for entry in entries for m in event_messages(self._topics, entry)]
                await self._publisher.deliver(messages)
                self._published += len(messages)
            ids = [e.transition.id for e in entries]
            self._marked += await self._retrying("mark", lambda: self._store.mark_published(ids))
        finally:
            self._pending = ()
        log.debug("events_relayed transitions=%d", len(entries))
        return len(entries)

    @property
    def _topics(self) -> Topics:
        return self._publisher.topics

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


def _backoff(failures: int) -> float:
    cap = min(STORE_RETRY_MAX_S, STORE_RETRY_MIN_S * 2 ** min(failures, 16))
    return random.uniform(STORE_RETRY_MIN_S, max(STORE_RETRY_MIN_S, cap))


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy appends the SQL and its parameters: never log those.
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__
