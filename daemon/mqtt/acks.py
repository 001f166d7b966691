"""QoS 1 publishing pipelined over one broker connection, complete only on the broker's PUBACK.

aiomqtt's ``Client.publish(qos=1)`` does complete on PUBACK (its ``on_publish`` callback runs
when paho handles the PUBACK, not when the message is handed to paho), but every call scans all
of the client's pending calls and runs a ``wait_for`` task: publishing 40,000 events with 1,000
in flight took 3.6 s that way and 1.3 s through paho directly (bench/RESULTS.md). A ``Link``
therefore publishes through the paho client inside aiomqtt's connection and keeps its own
message id → future map, chaining paho's ``on_publish`` to aiomqtt's for aiomqtt's own calls.
paho's in-flight limit is switched off by the caller (``max_inflight_messages=0``): past that
limit paho scans every queued message on each PUBACK. The bound is ``window`` here.

A ``Link`` lives as long as one connection. When the connection is lost every waiting publish
fails with ``LinkLost`` carrying the messages not acknowledged, so a caller can send exactly
those again on the next connection (at least once: a PUBACK lost with the connection means the
message is sent twice).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from core.errors import RetryableError
from daemon.mqtt.outbox import Message

QOS_AT_LEAST_ONCE = 1


class LinkLost(RetryableError):
    """The connection went away (or stopped acknowledging) before every message was
    acknowledged; ``unacknowledged`` are the ones to send again, in their order."""

    def __init__(self, reason: str, unacknowledged: Sequence[Message] = ()) -> None:
        self.reason = reason
        self.unacknowledged = list(unacknowledged)
        super().__init__(f"broker connection lost: {reason}")


class Link:
    """Acknowledged publishing on one connected ``aiomqtt.Client`` (from the event loop only)."""

    def __init__(self, client: aiomqtt.Client, *, window: int, ack_timeout_s: float) -> None:
        inner = getattr(client, "_client", None)
        if not isinstance(inner, paho.Client):  # pinned aiomqtt 2.x keeps paho here
            raise TypeError("aiomqtt.Client no longer exposes its paho client as _client")
        self._paho = inner
        self._window = window
        self._ack_timeout_s = ack_timeout_s
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._aiomqtt_on_publish: Any = inner.on_publish
        inner.on_publish = self._on_publish
        self._loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self.failure: str | None = None
        self.acknowledged = 0  # messages of this link the broker acknowledged

    @property
    def alive(self) -> bool:
        """False once the link failed (``fail``): nothing more is published on it."""
        return self.failure is None

    def fail(self, reason: str) -> None:
        """The connection is gone: every waiting publish raises ``LinkLost`` (idempotent)."""
        if self.failure is not None:
            return
        self.failure = reason
        self._lost.set_result(None)
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(LinkLost(reason))
                # The publish awaiting it may be gone (cancelled with the connection): mark
                # the exception seen, or each future logs "never retrieved" when collected.
                future.exception()

    async def publish(self, messages: Sequence[Message], *, retain: bool) -> None:
        """Publish ``messages`` in order (QoS 1), at most ``window`` unacknowledged at once;
        return when the broker acknowledged every one.

        Raise ``LinkLost`` with the unacknowledged messages if the connection is lost, or
        if no acknowledgement came for ``ack_timeout_s`` (the link is then failed too: a
        broker that stops acknowledging is treated as gone).
        """
        futures: list[asyncio.Future[None] | None] = [None] * len(messages)
        in_flight: deque[asyncio.Future[None]] = deque()
        try:
            for i, (topic, payload) in enumerate(messages):
                while len(in_flight) >= self._window:
                    await self._settle(in_flight.popleft())
                futures[i] = future = self._send(topic, payload, retain)
                in_flight.append(future)
            while in_flight:
                await self._settle(in_flight.popleft())
        except LinkLost as lost:
            left = [m for m, f in zip(messages, futures, strict=True) if not _acknowledged(f)]
            raise LinkLost(lost.reason, left) from None

    def _send(self, topic: str, payload: bytes, retain: bool) -> asyncio.Future[None]:
        if self.failure is not None:
            raise LinkLost(self.failure)
        info = self._paho.publish(topic, payload, QOS_AT_LEAST_ONCE, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            reason = paho.error_string(info.rc)
            self.fail(reason)
            raise LinkLost(reason)
        future: asyncio.Future[None] = self._loop.create_future()
        # No PUBACK can be handled between publish() and here: paho reads the socket in a
        # callback of this same event loop thread.
        self._waiting[info.mid] = future
        return future

    async def _settle(self, future: asyncio.Future[None]) -> None:
        if not future.done():
            await asyncio.wait(
                (future, self._lost),
                timeout=self._ack_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        if not future.done():
            self.fail(f"no PUBACK within {self._ack_timeout_s:g}s")
        future.result()  # raises LinkLost if the link failed

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        future = self._waiting.pop(mid, None)
        if future is None:  # one of aiomqtt's own publishes (status, offline)
            self._aiomqtt_on_publish(client, userdata, mid, reason, properties)
            return
        if future.done():
            return
        if getattr(reason, "is_failure", False):
            # An MQTT 5 broker refused the message: start over on a new connection rather
            # than count it as delivered.
            future.set_exception(LinkLost(f"broker refused a message: {reason}"))
            self.fail(f"broker refused a message: {reason}")
        else:
            self.acknowledged += 1
            future.set_result(None)


def _acknowledged(future: asyncio.Future[None] | None) -> bool:
    return future is not None and future.done() and future.exception() is None
