"""Retained state the MQTT broker should hold, kept apart from any connection.

A dict keyed by topic: the latest payload wins and nothing is ever dropped; all of it is
republished on every reconnect, since a restarted broker may have lost it. A payload may also
be given as a row of a ``PayloadRows`` source shared by many topics (the engine's results:
one small tuple per account), built only when the topic is taken out to be published (a
market-wide move changes the state of tens of thousands of accounts at once: their JSON is
built as the connection carries it, not all at once by the engine). No I/O: the publisher
(``daemon.mqtt.publisher``) takes topics out, publishes them and hands back the ones that
failed. Events are not kept here: they live in the database until the broker acknowledged
them (``daemon.mqtt.relay``).

Keys are compact: an account's retained state (a million of them at scale) is kept under the
account's address itself — the string the engine already holds — and its topic
(``account_prefix`` + address) is formatted when it is taken out; every other retained topic is
its own key. A key with a ``/`` is a topic (every topic has one after its prefix); an address
never has one (``daemon.mqtt.topics``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

Message = tuple[str, bytes]
"""(topic, payload)"""


class PayloadRows(Protocol):
    """Builds the payloads of many retained topics by row, when they are taken out."""

    def payload(self, row: int) -> bytes:
        """The latest payload of ``row``."""
        ...


_Payload = bytes | tuple[PayloadRows, int]


class Outbox:
    """Retained topics and which of them the current connection has yet to carry.

    Every method takes a *key*: a full topic, or the lower-case address of an account whose
    topic is ``account_prefix`` + address (``Topics.accounts_prefix``)."""

    def __init__(self, account_prefix: str = "") -> None:
        self._account_prefix = account_prefix
        self._retained: dict[str, _Payload] = {}
        # Retained topics the connection has yet to carry, oldest first. An OrderedDict: taking
        # from the front of a plain dict rescans the deleted slots (quadratic at 100k topics).
        self._dirty: OrderedDict[str, None] = OrderedDict()

    @property
    def retained_topics(self) -> int:
        """Retained topics held (an empty payload counts until the broker has it)."""
        return len(self._retained)

    @property
    def due(self) -> int:
        """Retained topics the current connection has yet to carry."""
        return len(self._dirty)

    def retain(self, key: str, payload: bytes) -> bool:
        """Record the latest retained ``payload`` of ``key``; False if it is unchanged."""
        if self._retained.get(key) == payload:
            return False
        self._retained[key] = payload
        self._dirty[key] = None
        return True

    def retain_rows(self, keys: Sequence[str], rows: Sequence[int], source: PayloadRows) -> None:
        """Record that each ``keys[n]``'s latest payload is ``source.payload(rows[n])`` when
        the topic is taken out (replacing any earlier payload, built or not)."""
        retained, dirty = self._retained, self._dirty
        for key, row in zip(keys, rows, strict=True):
            retained[key] = (source, row)
            dirty[key] = None

    def connected(self) -> None:
        """A new connection: every retained topic must be published on it again."""
        self._dirty = OrderedDict.fromkeys(self._retained)

    def take_retained(self, limit: int) -> list[Message]:
        """Up to ``limit`` retained topics to publish next (empty when all are carried)."""
        taken: list[Message] = []
        while self._dirty and len(taken) < limit:
            key, _ = self._dirty.popitem(last=False)
            payload = self._retained[key]
            if isinstance(payload, tuple):
                source, row = payload
                payload = self._retained[key] = source.payload(row)
            taken.append((key if "/" in key else self._account_prefix + key, payload))
        return taken

    def retained_done(self, message: Message) -> None:
        """The broker has ``message``; a delete is then forgotten (nothing to republish)."""
        topic, payload = message
        key = self._key(topic)
        if payload == b"" and self._retained.get(key) == b"":
            del self._retained[key]

    def retained_failed(self, message: Message) -> None:
        """Publishing ``message`` failed: keep its topic due (its latest payload is kept)."""
        self._dirty.setdefault(self._key(message[0]), None)

    def _key(self, topic: str) -> str:
        prefix = self._account_prefix
        if prefix and topic.startswith(prefix) and "/" not in topic[len(prefix) :]:
            return topic[len(prefix) :]
        return topic
