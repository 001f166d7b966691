"""The events' own broker connection: QoS 1 PUBLISH packets written in bursts, PUBACKs read in
bulk, complete only on the broker's PUBACK.

A market-wide move raises tens of thousands of events at once. Through paho (under aiomqtt)
each QoS 1 message costs ~33 µs of CPU on an idle core: a ``send()`` per packet, and per
PUBACK a ``ReasonCode`` and a ``Properties`` object plus debug logging (bench/RESULTS.md,
issue 14). An ``EventLink`` speaks the few packets a publish-only client needs
(``daemon.mqtt.wire``: MQTT 3.1.1, as aiomqtt negotiates) on an asyncio protocol of its own:
the PUBLISH packets of up to a window are encoded into one buffer and written at once, every
PUBACK that arrived is matched in one pass, and the freed slots are refilled right there, in
the protocol callback that read the PUBACKs. The daemon's event loop is shared with the engine,
whose full recompute holds it for a while on every price round after a market-wide move: a
refill that waited for the publishing task to be scheduled would cost another turn of that
loop, and the number of turns a burst needs is what bounds its rate there.

Its contract is ``daemon.mqtt.acks.Link``'s: ``publish`` returns once the broker acknowledged
every message, and a lost connection (or one that stops acknowledging for ``ack_timeout_s``,
or answers with something a publish-only client never gets) fails every waiting publish with
``LinkLost`` carrying the messages not acknowledged, in their order, to send again on the next
connection (at least once). One link lives as long as one connection; ``publish`` calls on it
run one after the other, and cancelling one retires the link. Keepalive: a PINGREQ when
nothing was written for half of ``keepalive_s``; no answer within ``ack_timeout_s`` fails the
link.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence

from core.lifecycle import wait_event, within
from daemon.mqtt.acks import LinkLost
from daemon.mqtt.outbox import Message
from daemon.mqtt.session import BrokerAddress
from daemon.mqtt.wire import (
    DISCONNECT_PACKET,
    MAX_PACKET_ID,
    PINGREQ_PACKET,
    PacketReader,
    ProtocolViolation,
    PublishEncoder,
    connect_packet,
)


class EventLink(asyncio.Protocol):
    """One publish-only MQTT connection (from the event loop only); open with ``connect``."""

    def __init__(
        self,
        *,
        window: int,
        ack_timeout_s: float,
        keepalive_s: int,
        on_fail: Callable[[], None] | None = None,
    ) -> None:
        if not 1 <= window < MAX_PACKET_ID:
            raise ValueError(f"window must be 1 … {MAX_PACKET_ID - 1}, not {window}")
        self._window = window
        self._refill = max(1, window // 2)  # write again once this many slots are free
        self._ack_timeout_s = ack_timeout_s
        self._keepalive_s = keepalive_s
        self._transport: asyncio.Transport | None = None
        self._reader = PacketReader()
        self._encoder = PublishEncoder()
        self._outstanding: dict[int, int] = {}  # packet id → index in the publish under way
        self._job: _Publish | None = None  # the publish under way (refilled on PUBACKs)
        self._next_id = 1
        self._progress = asyncio.Event()  # set whenever something arrived or the link failed
        self._turn = asyncio.Lock()  # one publish at a time
        self._last_write = time.monotonic()
        self._keepalive: asyncio.Task[None] | None = None
        self._on_fail = on_fail
        self.failure: str | None = None
        self.acknowledged = 0  # messages of this link the broker acknowledged

    @classmethod
    async def connect(
        cls,
        broker: BrokerAddress,
        *,
        client_id: str,
        keepalive_s: int,
        tls_context: ssl.SSLContext | None,
        window: int,
        ack_timeout_s: float,
        on_fail: Callable[[], None] | None = None,
    ) -> EventLink:
        """Connect, send CONNECT (clean session, no will) and wait for the CONNACK, each
        within ``ack_timeout_s``. Raise ``LinkLost`` when the broker is unreachable, does
        not answer, or refuses the connection (the reason names why). ``on_fail`` is
        called once when the link fails, whatever the cause."""
        loop = asyncio.get_running_loop()
        link = cls(
            window=window, ack_timeout_s=ack_timeout_s, keepalive_s=keepalive_s, on_fail=on_fail
        )
        try:
            await within(
                loop.create_connection(
                    lambda: link,
                    broker.host,
                    broker.port,
                    ssl=tls_context,
                    server_hostname=broker.host if tls_context is not None else None,
                ),
                ack_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise LinkLost(f"cannot connect: {type(exc).__name__}: {exc}") from None
        link._write(
            connect_packet(
                client_id=client_id,
                keepalive_s=keepalive_s,
                username=broker.username,
                password=broker.password,
            )
        )
        try:
            await link._handshake()
        except BaseException:
            link.close()
            raise
        link._keepalive = asyncio.create_task(link._keep_alive(), name="mqtt-events-keepalive")
        return link

    async def _handshake(self) -> None:
        deadline = time.monotonic() + self._ack_timeout_s
        while self._reader.connack is None and self.failure is None:
            self._progress.clear()
            left = deadline - time.monotonic()
            if left <= 0 or not await wait_event(self._progress, left):
                self.fail(f"no CONNACK within {self._ack_timeout_s:g}s")
        if self.failure is not None:
            raise LinkLost(self.failure)
        assert self._reader.connack is not None
        refusal = self._reader.connack.refusal
        if refusal is not None:
            self.fail(f"broker refused the connection: {refusal}")
            raise LinkLost(f"broker refused the connection: {refusal}")

    @property
    def pings_answered(self) -> int:
        """PINGRESPs received on this link (keepalive)."""
        return self._reader.pingresps

    @property
    def alive(self) -> bool:
        """False once the link failed: nothing more is published on it."""
        return self.failure is None

    def fail(self, reason: str) -> None:
        """The connection is gone or unusable: drop it, every waiting publish raises
        ``LinkLost`` (idempotent)."""
        if self.failure is not None:
            return
        self.failure = reason
        self._progress.set()
        if self._transport is not None:
            self._transport.abort()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._on_fail is not None:
            self._on_fail()

    def close(self) -> None:
        """Say DISCONNECT (what is buffered is still sent) and close the connection."""
        if self.failure is None and self._transport is not None:
            self._transport.write(DISCONNECT_PACKET)
            self._transport.close()
        self.fail("closed")

    async def publish(self, messages: Sequence[Message], *, retain: bool) -> None:
        """Publish ``messages`` in order (QoS 1), at most ``window`` unacknowledged at once;
        return when the broker acknowledged every one. Raise ``LinkLost`` with the
        unacknowledged messages (in order) when the link fails first."""
        async with self._turn:
            job = _Publish(messages, retain)
            outstanding = self._outstanding
            try:
                self._job = job
                self._refill_window()  # nothing on a failed link: the wait below raises
                while job.sent < job.total or outstanding:
                    await self._await_progress()  # data_received refills the window
            except LinkLost as lost:
                left = sorted(outstanding.values())
                left.extend(range(job.sent, job.total))
                outstanding.clear()
                raise LinkLost(lost.reason, [messages[j] for j in left]) from None
            except BaseException:
                # Cancelled mid-batch: the messages in flight belong to nobody any more, and a
                # late PUBACK of one must never count for a later message reusing its id. A
                # fresh connection keeps ids and acknowledgements straight.
                self.fail("a publish was cancelled")
                outstanding.clear()
                raise
            finally:
                self._job = None

    def _refill_window(self) -> None:
        """Write the next messages of the publish under way while the window has room for
        at least ``_refill`` of them (or for all that are left)."""
        job = self._job
        if job is None or self.failure is not None:
            return
        room = self._window - len(self._outstanding)
        left = job.total - job.sent
        if left and room >= min(self._refill, left):
            job.sent += self._send(job.messages, job.sent, min(room, left), job.retain)

    def _send(self, messages: Sequence[Message], start: int, count: int, retain: bool) -> int:
        if self.failure is not None:
            raise LinkLost(self.failure)
        out = bytearray()
        outstanding = self._outstanding
        append = self._encoder.append
        packet_id = self._next_id
        for index in range(start, start + count):
            while packet_id in outstanding:  # ids are only reused once acknowledged
                packet_id = packet_id % MAX_PACKET_ID + 1
            topic, payload = messages[index]
            append(out, topic, payload, packet_id, retain=retain)
            outstanding[packet_id] = index
            packet_id = packet_id % MAX_PACKET_ID + 1
        self._next_id = packet_id
        self._write(out)
        return count

    async def _await_progress(self) -> None:
        # No packet can be handled between the caller's look at the state and clear():
        # data_received runs in this same event loop thread.
        self._progress.clear()
        if self.failure is None and not await wait_event(self._progress, self._ack_timeout_s):
            self.fail(f"no PUBACK within {self._ack_timeout_s:g}s")
        if self.failure is not None:
            raise LinkLost(self.failure)

    def _write(self, data: bytes | bytearray) -> None:
        assert self._transport is not None
        self._transport.write(data)
        self._last_write = time.monotonic()

    async def _keep_alive(self) -> None:
        """PINGREQ when the link was quiet for half the keepalive; fail it when the broker
        does not answer within ``ack_timeout_s``."""
        interval = max(0.05, self._keepalive_s / 2)
        while self.failure is None:
            await asyncio.sleep(max(0.05, self._last_write + interval - time.monotonic()))
            if self.failure is not None or time.monotonic() - self._last_write < interval:
                continue
            answered = self._reader.pingresps
            self._write(PINGREQ_PACKET)
            deadline = time.monotonic() + self._ack_timeout_s
            while self._reader.pingresps == answered and self.failure is None:
                if time.monotonic() >= deadline:
                    self.fail(f"no PINGRESP within {self._ack_timeout_s:g}s")
                    return
                await asyncio.sleep(min(0.1, self._ack_timeout_s / 10))

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio: the TCP (or TLS) connection is up."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """asyncio: match every PUBACK that arrived to its message."""
        try:
            acked = self._reader.feed(data)
        except ProtocolViolation as exc:
            self.fail(exc.problem)
            return
        outstanding = self._outstanding
        matched = 0
        for packet_id in acked:
            if outstanding.pop(packet_id, None) is not None:
                matched += 1
        self.acknowledged += matched
        if matched:
            self._refill_window()
        self._progress.set()

    def eof_received(self) -> bool | None:
        """asyncio: the broker closed its side."""
        self.fail("connection closed by the broker")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio: the connection is gone."""
        reason = "connection closed" if exc is None else f"{type(exc).__name__}: {exc}"
        self.fail(reason)


class _Publish:
    """One ``publish`` call under way: its messages and how many of them were written."""

    __slots__ = ("messages", "retain", "sent", "total")

    def __init__(self, messages: Sequence[Message], retain: bool) -> None:
        self.messages = messages
        self.retain = retain
        self.sent = 0
        self.total = len(messages)
