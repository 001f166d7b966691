"""The events' dedicated broker connection, kept up: connect, reconnect with backoff, hand the
current ``EventLink`` to whoever publishes on it (``MqttPublisher``: events, then retained
state).

Events (QoS 1, not retained) and the retained account, oracle and chain state go over this
connection; ``status`` and the last will stay on aiomqtt's connection
(``daemon.mqtt.publisher``). Its client id is the daemon's with ``-events`` appended, so the
broker sees two clients per daemon.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from core.lifecycle import wait_event
from core.redaction import scrub
from daemon.mqtt.acks import LinkLost
from daemon.mqtt.event_link import EventLink
from daemon.mqtt.session import BrokerAddress, reconnect_delay

EVENTS_CLIENT_SUFFIX = "-events"  # the events connection's client id: the daemon's + this
CLOSE_WAIT_S = 1.0  # close(): how long a connection attempt under way may take to end

log = logging.getLogger(__name__)


class EventSession:
    """Keeps one ``EventLink`` connected until ``close()`` (from the event loop only)."""

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        client_id: str,
        keepalive_s: int,
        tls_context: ssl.SSLContext | None,
        window: int,
        ack_timeout_s: float,
        reconnect_min_s: float,
        reconnect_max_s: float,
        shown_url: str,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self._broker = broker
        self._on_connected = on_connected  # called on every new link, before it is handed out
        self._client_id = client_id + EVENTS_CLIENT_SUFFIX
        self._keepalive_s = keepalive_s
        self._tls_context = tls_context
        self._window = window
        self._ack_timeout_s = ack_timeout_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._shown_url = shown_url
        self._link: EventLink | None = None
        self._link_up = asyncio.Event()  # a link came up, or the session ended
        self._link_down = asyncio.Event()  # the current link failed
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._ever_connected = False
        self._acknowledged = 0  # by links that are gone
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        """True while the events connection is up."""
        return self._link is not None and self._link.alive

    @property
    def acknowledged(self) -> int:
        """Events the broker acknowledged, over every connection so far."""
        live = 0 if self._link is None else self._link.acknowledged
        return self._acknowledged + live

    def start(self) -> None:
        """Start keeping the connection up."""
        if self._task is not None:
            raise RuntimeError("EventSession is not reusable")
        self._task = asyncio.create_task(self._run(), name="mqtt-events")

    async def current_link(self) -> EventLink:
        """The connected link, waiting for one; ``LinkLost`` once the session has ended."""
        while (link := self._link) is None or not link.alive:
            if self._task is None or self._stopped:
                raise LinkLost("the publisher is not running")
            self._link_up.clear()
            await self._link_up.wait()
        return link

    async def close(self) -> None:
        """Disconnect and stop reconnecting (idempotent)."""
        self._closing.set()
        self._link_down.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=CLOSE_WAIT_S)
            if not done:  # a connection attempt to a silent broker: do not wait it out
                task.cancel()
                await asyncio.wait({task})

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._closing.is_set():
                connected = await self._connection()
                if self._closing.is_set():
                    return
                failures = 0 if connected else failures + 1
                delay = reconnect_delay(failures, self._reconnect_min_s, self._reconnect_max_s)
                log.warning(
                    "mqtt_events_unavailable broker=%s error=%s attempt=%d retry_in_s=%.2f",
                    self._shown_url,
                    self.last_error,
                    failures,
                    delay,
                )
                await wait_event(self._closing, delay)
        finally:
            self._stopped = True
            self._link_up.set()  # wake current_link() calls: they find the session ended

    async def _connection(self) -> bool:
        """One connection, until it fails or ``close()``; True if it got connected."""
        self._link_down.clear()
        try:
            link = await EventLink.connect(
                self._broker,
                client_id=self._client_id,
                keepalive_s=self._keepalive_s,
                tls_context=self._tls_context,
                window=self._window,
                ack_timeout_s=self._ack_timeout_s,
                on_fail=self._link_down.set,
            )
        except LinkLost as lost:
            self.last_error = self._describe(lost.reason)
            return False
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        log.info(
            "mqtt_events_connected broker=%s client_id=%s reconnects=%d",
            self._shown_url,
            self._client_id,
            self.reconnects,
        )
        if self._on_connected is not None:
            self._on_connected()
        self._link = link
        self._link_up.set()
        try:
            await self._link_down.wait()  # the link failed, or close()
        finally:
            if link.alive:
                link.close()
            else:
                self.last_error = self._describe(link.failure or "connection closed")
            self._link = None
            self._acknowledged += link.acknowledged
        return True

    def _describe(self, reason: str) -> str:
        broker = self._broker
        for secret in (broker.password, broker.username):
            if secret:
                reason = reason.replace(secret, "***")
        return scrub(reason)
