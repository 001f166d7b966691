"""The MQTT session's parts that know nothing of what is published: where the broker is
(``BrokerAddress``), how long to wait before reconnecting, and how aiomqtt tells that a
connection dropped (``daemon.mqtt.publisher`` runs the session)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt

from daemon.config.model import MQTT_DEFAULT_PORTS

BACKOFF_FACTOR = 2.0  # reconnect delay cap grows by this per failed attempt in a row


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where and how to connect, parsed from ``mqtt.url`` (validated by the config)."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """Parse ``mqtt[s]://[user[:password]@]host[:port]`` (userinfo is percent-decoded)."""
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "",
            port=parts.port or MQTT_DEFAULT_PORTS[parts.scheme],
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
            tls=parts.scheme == "mqtts",
        )


def default_client_id() -> str:
    """``crossmargin-<hostname>-<pid>``: unique per process, recognisable on the broker."""
    return f"crossmargin-{socket.gethostname()}-{os.getpid()}"


def reconnect_delay(failures: int, min_s: float, max_s: float) -> float:
    """Jittered exponential backoff: uniform in [min_s, min(max_s, min_s·2^failures)]."""
    cap = min(max_s, min_s * BACKOFF_FACTOR ** min(failures, 64))
    return random.uniform(min_s, max(min_s, cap))


async def watch_connection(client: aiomqtt.Client) -> None:
    """Raise ``MqttError`` as soon as the connection drops (nothing is subscribed).

    aiomqtt's message iterator is its documented way to notice a disconnect; without it an
    idle publisher would not notice a restarted broker that lost the retained state.
    """
    async for _ in client.messages:
        pass
    raise aiomqtt.MqttError("connection watcher ended")


def consume_disconnect(client: aiomqtt.Client) -> None:
    """Read the reason aiomqtt keeps for a lost connection. Only its message iterator reads
    it; when a failed publish ends the session first, asyncio would otherwise report the
    exception as never retrieved."""
    lost = getattr(client, "_disconnected", None)
    if isinstance(lost, asyncio.Future) and lost.done() and not lost.cancelled():
        lost.exception()
