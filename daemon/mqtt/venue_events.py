"""Venue events: a venue entry turning liquidatable, or recovering, published on the same
event topics as the unified account's (``{prefix}/events/liquidatable`` and ``…/recovered``)
with the venue's name, marked announced only once the broker acknowledged them.

The outbox is ``venue_accounts`` itself (``daemon.store.venues``): a row whose
``liquidatable`` differs from ``announced_liquidatable`` is an event to send. The announcer
runs when the engine loop stored venue entries and every ``VENUE_POLL_S`` as a safety net; a
crash before the PUBACK re-sends at the next start (at least once). With MQTT off the
transitions are marked at once, so turning MQTT on later replays no history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from daemon.mqtt.outbox import Message
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.topics import EventKind, encode_json
from daemon.store.errors import StoreUnavailable
from daemon.store.venues import VenueAnnouncement
from daemon.store.writer import HealthStore

log = logging.getLogger(__name__)

VENUE_POLL_S = 5.0  # read the venue outbox this often even when nothing woke the announcer
VENUE_BATCH = 500  # venue transitions per delivery


def venue_event_kind(liquidatable: bool) -> EventKind:
    """The event a venue entry's move to ``liquidatable`` raises."""
    return "liquidatable" if liquidatable else "recovered"


def venue_event_payload(announcement: VenueAnnouncement) -> dict[str, object]:
    """The event's JSON document: the venue, the account and the entry as it was stored."""
    entry: Mapping[str, Any] = announcement.document
    return {
        "event": venue_event_kind(announcement.liquidatable),
        "venue": announcement.venue,
        "account": announcement.account,
        "venue_kind": entry.get("kind"),
        "chain": entry.get("chain"),
        "block": entry.get("block"),
        "health": entry.get("health"),
        "health_raw": entry.get("health_raw"),
        "liquidatable": announcement.liquidatable,
        "plan": entry.get("plan"),
        "flags": entry.get("flags", []),
    }


class VenueAnnouncer:
    """Publishes venue transitions from the store."""

    def __init__(self, *, store: HealthStore, publisher: MqttPublisher) -> None:
        self.store = store
        self.publisher = publisher
        self._wake = asyncio.Event()
        self.announced = 0

    def wake(self) -> None:
        """Venue entries were stored: look for transitions now."""
        self._wake.set()

    async def run(self) -> None:
        """Announce forever; a store outage is retried at the next wake-up or poll."""
        while True:
            self._wake.clear()
            try:
                await self.announce_pending()
            except StoreUnavailable as exc:
                log.warning("venue_events_store_unavailable error=%s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), VENUE_POLL_S)

    async def announce_pending(self) -> int:
        """Deliver every pending venue transition (in batches); how many."""
        sent = 0
        topics = self.publisher.topics if self.publisher.enabled else None
        while batch := await self.store.venue_announcements(VENUE_BATCH):
            if topics is not None:
                messages: list[Message] = [
                    (
                        topics.event(venue_event_kind(a.liquidatable)),
                        encode_json(venue_event_payload(a)),
                    )
                    for a in batch
                ]
                await self.publisher.deliver(messages)
            await self.store.mark_venue_announced(batch)
            sent += len(batch)
            for a in batch:
                log.info(
                    "venue_event venue=%s account=%s event=%s",
                    a.venue,
                    a.account,
                    venue_event_kind(a.liquidatable),
                )
        self.announced += sent
        return sent
