"""What the MQTT broker should hold and still has to receive, kept apart from any connection.

Retained state is a dict keyed by topic (the latest payload wins and nothing is ever dropped:
it is all republished on every reconnect, since a restarted broker may have lost it). Events
wait in a bounded FIFO; when it is full the oldest is dropped, counted and logged. No I/O: the
publisher (``daemon.mqtt``) takes items out, publishes them, and hands back the ones that fail.
"""

from __future__ import annotations

import logging
from collections import deque

DROP_LOG_EVERY = 1000  # after the first dropped event, log every this many drops

log = logging.getLogger(__name__)

Message = tuple[str, bytes]
"""(topic, payload)"""


class Outbox:
    """Retained topics still to (re)publish on this connection, and waiting QoS 1 events."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.dropped = 0
        self._retained: dict[str, bytes] = {}
        self._dirty: dict[str, None] = {}  # retained topics the connection has yet to carry
        self._events: deque[Message] = deque()

    @property
    def retained_topics(self) -> int:
        """Retained topics held (an empty payload counts until the broker has it)."""
        return len(self._retained)

    @property
    def pending_events(self) -> int:
        """Events waiting for the broker."""
        return len(self._events)

    def retain(self, topic: str, payload: bytes) -> bool:
        """Record the latest retained ``payload`` of ``topic``; False if it is unchanged."""
        if self._retained.get(topic) == payload:
            return False
        self._retained[topic] = payload
        self._dirty[topic] = None
        return True

    def push_event(self, message: Message) -> None:
        """Queue an event after all others, dropping the oldest beyond ``max_pending``."""
        self._events.append(message)
        self._trim()

    def connected(self) -> None:
        """A new connection: every retained topic must be published on it again."""
        self._dirty = dict.fromkeys(self._retained)

    def take_retained(self) -> Message | None:
        """The next retained topic to publish, or None when the connection carries them all."""
        if not self._dirty:
            return None
        topic = next(iter(self._dirty))
        del self._dirty[topic]
        return topic, self._retained[topic]

    def retained_done(self, message: Message) -> None:
        """The broker has ``message``; a delete is then forgotten (nothing to republish)."""
        topic, payload = message
        if payload == b"" and self._retained.get(topic) == b"":
            del self._retained[topic]

    def retained_failed(self, message: Message) -> None:
        """Publishing ``message`` failed: keep its topic due (its latest payload is kept)."""
        self._dirty.setdefault(message[0], None)

    def take_event(self) -> Message | None:
        """The oldest waiting event, or None."""
        return self._events.popleft() if self._events else None

    def event_failed(self, message: Message) -> None:
        """Publishing ``message`` failed: it goes back first, in order, before anything newer."""
        self._events.appendleft(message)
        self._trim()

    def _trim(self) -> None:
        while len(self._events) > self.max_pending:
            self._events.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % DROP_LOG_EVERY == 0:
                log.warning(
                    "mqtt_events_dropped dropped_total=%d max_pending=%d",
                    self.dropped,
                    self.max_pending,
                )
