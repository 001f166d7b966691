"""``daemon.mqtt.acks.Link`` (acknowledged publishing through aiomqtt's paho client) against a
real Mosquitto behind a TCP proxy that stops the broker's answers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from pathlib import Path
from typing import Any

import aiomqtt

from daemon.mqtt.acks import Link
from tests.mqttkit import Mosquitto, wait_until
from tests.tcpproxy import TcpProxy

NEVER_RETRIEVED = "Future exception was never retrieved"
IN_FLIGHT = 50


async def fail_under_a_cancelled_publish(client: aiomqtt.Client, proxy: TcpProxy) -> None:
    """What a dropped connection does: its task group cancels the publish, then the link
    fails every message still in flight."""
    link = Link(client, window=100, ack_timeout_s=60)
    proxy.pause()  # the broker's PUBACKs never arrive
    messages = [("xm-test/acks", b"%d" % i) for i in range(IN_FLIGHT)]
    publishing = asyncio.create_task(link.publish(messages, retain=False))
    await wait_until(lambda: len(link._waiting) == IN_FLIGHT, what="messages in flight")
    publishing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await publishing
    link.fail("connection lost")


async def test_a_link_failed_under_a_cancelled_publish_logs_nothing(tmp_path: Path) -> None:
    """Nobody awaits the failed futures any more: they must not each log "Future exception
    was never retrieved" when collected (10,000 lines per disconnect at scale)."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with (
            Mosquitto(tmp_path) as broker,
            TcpProxy("127.0.0.1", broker.port) as proxy,
            aiomqtt.Client("127.0.0.1", proxy.port, max_inflight_messages=0) as client,
        ):
            await fail_under_a_cancelled_publish(client, proxy)
            gc.collect()
            await asyncio.sleep(0)
            proxy.resume()
    finally:
        loop.set_exception_handler(None)
    assert [c["message"] for c in reported if NEVER_RETRIEVED in str(c.get("message"))] == []
