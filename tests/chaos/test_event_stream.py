"""The HTTP event stream of the real daemon survives a cut connection: a client that resumes
with ``Last-Event-ID`` gets every event stored meanwhile from the outbox, none lost, each the
MQTT payload byte for byte.

The world and book of ``tests.dashkit`` (Bob liquidatable at ETH 1,800; Carol and Dave go under
at 1,200, recover at 1,700 and go under again at 1,150). The client reaches the API through a
TCP proxy that is cut after the first event; the price keeps moving while it is away.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from daemon.mqtt.event_payloads import event_messages
from daemon.mqtt.topics import Topics
from daemon.store.queries import StoreQueries
from tests.api.streamkit import SseReader
from tests.api.test_stream import stream
from tests.daemonkit import World, get_json, world
from tests.dashkit import daemon_with_book, seed_book
from tests.mqttkit import Subscriber
from tests.storekit import postgres_database
from tests.tcpproxy import TcpProxy

WAIT_S = 45.0
EVENT_KINDS = ("liquidatable", "latency_risk", "recovered")


@pytest.fixture
async def e2e(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        w.set_eth("1800")
        await seed_book(w)
        yield w


def mqtt_events(sub: Subscriber, prefix: str) -> dict[tuple[str, int], bytes]:
    """(kind, id) → payload of every event the broker delivered (re-sends are equal)."""
    out: dict[tuple[str, int], bytes] = {}
    for kind in EVENT_KINDS:
        for payload in sub.payloads(f"{prefix}/events/{kind}"):
            out[(kind, json.loads(payload)["id"])] = payload
    return out


async def wait_for(check, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last seen {last!r}")


async def test_resume_after_a_cut_connection_loses_no_event(e2e: World) -> None:
    w = e2e
    async with (
        Subscriber(w.broker.port, f"{w.prefix}/events/#") as sub,
        daemon_with_book(w),
        TcpProxy("127.0.0.1", w.api_port) as proxy,
    ):
        url = f"http://127.0.0.1:{proxy.port}"
        async with stream(url) as sse:
            await sse.until(lambda f: f.event == "chain", "the status snapshot")
            w.set_eth("1200")  # Carol and Dave go under
            first = await sse.until(lambda f: f.id is not None, "the first event")
            resume_from = int(first.id)  # type: ignore[arg-type]
            proxy.cut()  # the connection is reset under the client
            with pytest.raises((EOFError, aiohttp.ClientError, ConnectionError)):
                await drain(sse)

        # While the client is away: Carol and Dave recover, then go under again.
        async def liquidatable_total() -> int:
            _, body = await get_json(w, "/v1/liquidatable")
            return int(body["total"])

        await wait_for(lambda: _is(liquidatable_total(), 3), "three liquidatable")
        w.set_eth("1700")
        await wait_for(lambda: _is(liquidatable_total(), 1), "Carol and Dave recovered")
        w.set_eth("1150")
        await wait_for(lambda: _is(liquidatable_total(), 3), "Carol and Dave under again")
        queries = StoreQueries.for_api(w.database_url)
        try:
            stored = await queries.outbox(limit=1000, after_id=resume_from, unpublished_only=False)
        finally:
            await queries.close()
        expected: dict[tuple[str, int], bytes] = {}
        for entry in stored:
            for topic, payload in event_messages(Topics(w.prefix), entry):
                expected[(topic.rsplit("/", 1)[1], entry.id)] = payload
        kinds = sorted(kind for kind, _ in expected)
        assert kinds.count("recovered") >= 2
        assert kinds.count("liquidatable") >= 3

        await proxy.restore()
        async with stream(url, last_event_id=resume_from) as sse:
            got: dict[tuple[str, int], bytes] = {}
            while not expected.keys() <= got.keys():
                frame = await sse.until(lambda f: f.event in EVENT_KINDS, "a resumed event")
                got[(frame.event, json.loads(frame.data)["id"])] = frame.data  # type: ignore[index]
            assert min(tid for _, tid in got) > resume_from
        assert got == expected  # every stored event after the resume point, none lost

        # MQTT delivered the same events, byte for byte.
        await wait_for(
            lambda: _true(expected.keys() <= mqtt_events(sub, w.prefix).keys()), "MQTT events"
        )
        published = mqtt_events(sub, w.prefix)
        assert {k: published[k] for k in expected} == expected


async def drain(sse: SseReader) -> None:
    """Read frames until the stream breaks."""
    while True:
        await sse.frame(timeout_s=WAIT_S)


async def _is(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def _true(value: bool) -> bool:
    return value
