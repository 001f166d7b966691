"""MQTT publisher: retained state, and QoS 1 events acknowledged by the broker.

The daemon never waits for the broker to publish retained state: ``set_*`` methods only record
what the broker should hold in an ``Outbox`` (``daemon.mqtt.outbox``: latest payload per
topic, never dropped) and wake one background task (the *carrier*), which publishes it over
the events' lean connection (below): on every (re)connect of that connection ALL retained
state again (a restarted broker may have lost it), then whatever changes, in pipelined
batches, until ``close()`` (which flushes what is due within its grace). The main connection
(aiomqtt, reconnecting with jittered exponential backoff) carries only ``{prefix}/status``:
``online`` on every connect, and a last will that sets it to ``offline`` when the daemon
dies; ``close()`` sets it itself once retained state is flushed.

Events are not queued here: ``deliver`` publishes a batch the caller holds (the event relay
reads them from the database) and returns only once the broker acknowledged every message
(PUBACK), waiting through outages and re-sending what was not acknowledged. Delivery is at
least once: a PUBACK lost with the connection means the message is sent again. Events travel
on a connection of their own (``daemon.mqtt.event_session``: client id ``<client_id>-events``,
a lean QoS 1 publisher ~10× cheaper per message than paho), so a burst of tens of thousands
does not pay paho's per-message cost. Retained state shares that connection and yields to
events: while events are relayed (``events_first``) the carrier waits, and it publishes in
small batches (``RETAINED_BATCH``, built ``RETAINED_BUILD_CHUNK`` at a time between turns of
the event loop), so a burst waits behind at most one small retained batch and the engine
behind at most one chunk of payloads built.

Topics and payloads are described in ``daemon.mqtt.topics``. URLs carry credentials, so only
``redact_url`` forms are ever logged or shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import aiomqtt

from core.lifecycle import AsyncResource, wait_event
from core.redaction import redact_url, scrub
from daemon.config.model import MqttConfig
from daemon.mqtt.acks import QOS_AT_LEAST_ONCE, LinkLost
from daemon.mqtt.event_link import EventLink
from daemon.mqtt.event_session import EventSession
from daemon.mqtt.outbox import Message, Outbox, PayloadRows
from daemon.mqtt.session import (
    BrokerAddress,
    consume_disconnect,
    default_client_id,
    reconnect_delay,
    watch_connection,
)
from daemon.mqtt.topics import STATUS_OFFLINE, STATUS_ONLINE, Topics, encode_json

BROKER_TIMEOUT_S = 10.0  # CONNACK and each PUBACK; beyond it the connection is restarted
CLOSE_GRACE_S = 5.0  # close(): flush retained state, publish offline, disconnect
OFFLINE_RESERVE_S = 1.0  # part of the close grace kept for publishing offline
CANCEL_WAIT_S = 1.0  # after the grace, how long close() waits for the cancelled task
IN_FLIGHT_WINDOW = 20_000  # QoS 1 messages published and not yet acknowledged, at most: the
# relay's whole batch (``mqtt.max_pending``, 10,000 by default) goes out in one write, and a
# burst needs a few turns of the shared event loop instead of one per half window (the
# engine's recompute holds each turn after a market-wide move: bench/RESULTS.md, issue 14)
RETAINED_BATCH = 500  # retained topics per pipelined publish: a burst of events waits behind
# at most this many (one write, then their PUBACKs: a few ms)
RETAINED_BUILD_CHUNK = 100  # retained payloads built between two turns of the event loop
# (a lazily built account document costs ~10-50 µs: ≤ ~5 ms per turn)
RETAINED_YIELD_S = 1.0  # while events are being relayed, retained batches wait up to this

log = logging.getLogger(__name__)
_CLIENT_LOG = logging.getLogger(f"{__name__}.client")  # aiomqtt/paho diagnostics


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters for metrics and the status API."""

    enabled: bool
    connected: bool
    published: int  # messages the broker acknowledged (status, retained state and events)
    events: int  # of which events (``deliver``)
    reconnects: int
    retained_topics: int
    last_error: str | None


class MqttPublisher(AsyncResource):
    """Async context manager owning the broker connection (a no-op while ``url`` is unset).

    The ``set_*``/``clear_*`` methods never block and never raise because of the broker;
    ``deliver`` waits for acknowledgements. Call them from the event loop thread.
    ``in_flight_window``: QoS 1 messages unacknowledged at once on the events' connection
    (also the most a lost connection can make it send twice).
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        close_grace_s: float = CLOSE_GRACE_S,
        replica: str | None = None,
        in_flight_window: int = IN_FLIGHT_WINDOW,
    ) -> None:
        self._config = config
        self._close_grace_s = close_grace_s
        self._broker = None if config.url is None else BrokerAddress.from_url(config.url)
        self._shown_url = "" if config.url is None else redact_url(config.url)
        self._client_id = config.client_id or default_client_id()
        tls = self._broker is not None and self._broker.tls
        self._tls_context = ssl.create_default_context() if tls else None
        self._topics = Topics(config.topic_prefix, replica=replica)
        self._event_session = (
            None
            if self._broker is None
            else EventSession(
                self._broker,
                client_id=self._client_id,
                keepalive_s=config.keepalive_s,
                tls_context=self._tls_context,
                window=in_flight_window,
                ack_timeout_s=BROKER_TIMEOUT_S,
                reconnect_min_s=config.reconnect_min_s,
                reconnect_max_s=config.reconnect_max_s,
                shown_url=self._shown_url,
                on_connected=self._events_connected,
            )
        )
        self._outbox = Outbox(account_prefix=self._topics.accounts_prefix)
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._flush_deadline = float("inf")
        self._task: asyncio.Task[None] | None = None
        self._carrier: asyncio.Task[None] | None = None  # retained state, on the events' link
        self._status_up = False  # the main connection is up and said ``online``
        self._event_passes = 0  # events being relayed (``events_first``) right now
        self._no_events = asyncio.Event()
        self._no_events.set()
        self._ever_connected = False
        self._published = 0
        self._events = 0
        self._reconnects = 0
        self._last_error: str | None = None

    def __repr__(self) -> str:
        return f"MqttPublisher(url={self._shown_url!r}, prefix={self._topics.prefix!r})"

    @property
    def enabled(self) -> bool:
        """False when ``mqtt.url`` is unset: every method is then a no-op."""
        return self._broker is not None

    @property
    def connected(self) -> bool:
        """True while both broker connections (status; events and retained state) are up."""
        events = self._event_session
        return self._status_up and events is not None and events.connected

    @property
    def topics(self) -> Topics:
        """The topic names this publisher uses."""
        return self._topics

    def stats(self) -> MqttStats:
        """A snapshot of the counters."""
        events = self._event_session
        return MqttStats(
            enabled=self.enabled,
            connected=self.connected,
            published=self._published + (0 if events is None else events.acknowledged),
            events=self._events,
            reconnects=self._reconnects + (0 if events is None else events.reconnects),
            retained_topics=self._outbox.retained_topics,
            last_error=self._last_error or (None if events is None else events.last_error),
        )

    async def start(self) -> None:
        """Start the background publisher task (nothing when MQTT is off)."""
        if self._task is not None:
            raise RuntimeError("MqttPublisher is not reusable")
        if self._broker is not None:
            self._task = asyncio.create_task(self._connect_until_closed(), name="mqtt-publisher")
            self._task.add_done_callback(_log_crash)
        if self._event_session is not None:
            self._event_session.start()
            self._carrier = asyncio.create_task(self._carry_retained(), name="mqtt-retained")
            self._carrier.add_done_callback(_log_crash)

    def set_account_state(self, address: str, payload: Mapping[str, object]) -> None:
        """Retain ``payload`` as the state of ``address`` (topic uses the lower-case address)."""
        self._retain(self._topics.account_key(address), encode_json(payload))

    def set_account_states_later(
        self, addresses: Sequence[str], rows: Sequence[int], source: PayloadRows
    ) -> None:
        """Retain ``source.payload(rows[n])`` as the state of ``addresses[n]``, built only
        when it is published (after events in flight): the engine stays free during a
        market-wide move, and a state replaced before it went out is never built."""
        if self.enabled and not self._closing.is_set() and addresses:
            key = self._topics.account_key
            self._outbox.retain_rows([key(a) for a in addresses], rows, source)
            self._wake.set()

    def clear_account(self, address: str) -> None:
        """Delete the retained state of ``address`` (an empty retained message)."""
        self._retain(self._topics.account_key(address), b"")

    def set_oracle_status(self, asset: str, payload: Mapping[str, object]) -> None:
        """Retain ``payload`` as the oracle status of ``asset``."""
        self._retain(self._topics.oracle(asset), encode_json(payload))

    def set_chain_status(self, name: str, payload: Mapping[str, object]) -> None:
        """Retain ``payload`` as the status of chain ``name``."""
        self._retain(self._topics.chain(name), encode_json(payload))

    async def deliver(self, messages: Sequence[Message]) -> None:
        """Publish events (QoS 1, not retained) in order and return once the broker has
        acknowledged every one (PUBACK).

        While the broker is away this waits for the next connection and then sends what was
        not acknowledged yet, so a message may reach subscribers twice (at least once).
        Cancel it to give up. Raise ``RuntimeError`` when MQTT is off.
        """
        session = self._event_session
        if session is None:
            raise RuntimeError("MQTT is off (mqtt.url unset): nothing to deliver to")
        pending = list(messages)
        while pending:
            link = await session.current_link()
            try:
                async with self.events_first():
                    await link.publish(pending, retain=False)
            except LinkLost as lost:
                self._events += len(pending) - len(lost.unacknowledged)
                pending = lost.unacknowledged
                log.info(
                    "mqtt_delivery_interrupted unacknowledged=%d reason=%s",
                    len(pending),
                    lost.reason,
                )
                continue
            self._events += len(pending)
            pending = []

    async def close(self) -> None:
        """Flush, publish ``offline`` and disconnect within the grace period (idempotent)."""
        task = self._task
        if task is None or self._closing.is_set():
            return
        loop = asyncio.get_running_loop()
        self._flush_deadline = loop.time() + max(0.0, self._close_grace_s - OFFLINE_RESERVE_S)
        self._closing.set()
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=self._close_grace_s)
        if not done:
            log.warning("mqtt_close_timeout grace_s=%s", self._close_grace_s)
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
        # The main connection was down (nothing waited for the flush): give it what is left.
        await self._end_carrier(self._flush_deadline - loop.time())
        if self._event_session is not None:
            await self._event_session.close()
        log.info(
            "mqtt_closed published=%d events=%d retained_due=%d",
            self._published,
            self._events,
            self._outbox.due,
        )

    @contextlib.asynccontextmanager
    async def events_first(self) -> AsyncIterator[None]:
        """While inside (reading, encoding and delivering events), retained state waits:
        keepers act on events, retained state is latest-wins and may trail a burst by a
        moment (never starved: a batch goes out at least every ``RETAINED_YIELD_S``)."""
        self._event_passes += 1
        self._no_events.clear()
        try:
            yield
        finally:
            self._event_passes -= 1
            if not self._event_passes:
                self._no_events.set()

    def _retain(self, topic: str, payload: bytes) -> None:
        if self.enabled and not self._closing.is_set() and self._outbox.retain(topic, payload):
            self._wake.set()

    async def _connect_until_closed(self) -> None:
        failures = 0
        while not self._closing.is_set():
            connected = await self._session()
            if self._closing.is_set():
                return
            failures = 0 if connected else failures + 1
            delay = reconnect_delay(
                failures, self._config.reconnect_min_s, self._config.reconnect_max_s
            )
            log.warning(
                "mqtt_unavailable broker=%s error=%s attempt=%d retry_in_s=%.2f",
                self._shown_url,
                self._last_error,
                failures,
                delay,
            )
            await wait_event(self._closing, delay)

    async def _session(self) -> bool:
        """One connection, until it fails or close() completes; True if it got connected."""
        connected = False
        client = self._client()
        try:
            async with client:
                connected = True
                self._on_connected()
                async with asyncio.TaskGroup() as group:
                    watch = group.create_task(watch_connection(client), name="mqtt-watch")
                    await self._hold_status(client)
                    watch.cancel()
        except* aiomqtt.MqttError as failure:
            self._last_error = self._describe(failure.exceptions[0])
        finally:
            self._status_up = False
            consume_disconnect(client)
        return connected

    def _client(self) -> aiomqtt.Client:
        broker = self._broker
        assert broker is not None  # only _run calls this, and only when enabled
        return aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=self._client_id,
            will=aiomqtt.Will(
                self._topics.status, STATUS_OFFLINE, qos=QOS_AT_LEAST_ONCE, retain=True
            ),
            keepalive=self._config.keepalive_s,
            timeout=BROKER_TIMEOUT_S,
            tls_context=self._tls_context,
            logger=_CLIENT_LOG,
            # Off in paho (0): ``Link`` bounds what is in flight; paho's own limit rescans
            # every queued message on each PUBACK.
            max_inflight_messages=0,
        )

    def _on_connected(self) -> None:
        if self._ever_connected:
            self._reconnects += 1
        self._ever_connected = True
        log.info(
            "mqtt_connected broker=%s client_id=%s retained=%d reconnects=%d",
            self._shown_url,
            self._client_id,
            self._outbox.retained_topics,
            self._reconnects,
        )

    async def _hold_status(self, client: aiomqtt.Client) -> None:
        """Publish ``online``; on close, once retained state is flushed (or the grace is
        spent), ``offline``, and return."""
        await client.publish(self._topics.status, STATUS_ONLINE, qos=QOS_AT_LEAST_ONCE, retain=True)
        self._published += 1
        self._status_up = True
        await self._closing.wait()
        await self._end_carrier(self._flush_deadline - asyncio.get_running_loop().time())
        await client.publish(
            self._topics.status, STATUS_OFFLINE, qos=QOS_AT_LEAST_ONCE, retain=True
        )
        self._published += 1

    async def _end_carrier(self, within_s: float) -> None:
        """Let the carrier finish flushing for up to ``within_s``, then stop it."""
        carrier = self._carrier
        if carrier is None or carrier.done():
            return
        done, _ = await asyncio.wait({carrier}, timeout=max(0.0, within_s))
        if not done:
            carrier.cancel()
            await asyncio.wait({carrier}, timeout=CANCEL_WAIT_S)

    def _events_connected(self) -> None:
        """A new events connection (the broker may have lost any retained state): all of it
        is due again."""
        self._outbox.connected()
        self._wake.set()

    async def _carry_retained(self) -> None:
        """Publish due retained state over the events' connection, events first, until
        ``close()`` and the flush are done (or the grace is spent: ``_end_carrier``)."""
        session = self._event_session
        assert session is not None  # started only when enabled
        outbox = self._outbox
        while True:
            if not outbox.due:
                if self._closing.is_set():
                    return
                self._wake.clear()
                await self._wake.wait()  # a setter, a new events connection, or close()
                continue
            if self._event_passes and not self._closing.is_set():
                await wait_event(self._no_events, RETAINED_YIELD_S)  # events first
            try:
                link = await session.current_link()
            except LinkLost:
                return  # the events' session has ended (close)
            batch: list[Message] = []
            while len(batch) < RETAINED_BATCH and outbox.due:
                if batch:
                    await asyncio.sleep(0)  # building payloads must not hold the loop long
                batch += outbox.take_retained(
                    min(RETAINED_BUILD_CHUNK, RETAINED_BATCH - len(batch))
                )
            with contextlib.suppress(LinkLost):  # the session reconnects; all is due again
                await self._publish_retained(link, batch)

    async def _publish_retained(self, link: EventLink, batch: list[Message]) -> None:
        try:
            await link.publish(batch, retain=True)
        except LinkLost as lost:
            failed = set(lost.unacknowledged)
            for message in batch:
                if message in failed:
                    self._outbox.retained_failed(message)
                else:
                    self._outbox.retained_done(message)
            raise
        except BaseException:
            for message in batch:
                self._outbox.retained_failed(message)
            raise
        for message in batch:
            self._outbox.retained_done(message)

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if exc.__cause__ is not None:  # aiomqtt chains the reason for a lost connection
            text += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
        broker = self._broker
        for secret in (broker.password, broker.username) if broker else ():
            if secret:
                text = text.replace(secret, "***")
        return scrub(text)


def _log_crash(task: asyncio.Task[None]) -> None:
    # A bug in the publisher must not pass silently: MQTT would just stop.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("mqtt_publisher_crashed error=%s", type(exc).__name__, exc_info=exc)
