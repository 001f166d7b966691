"""``GET /v1/stream`` against a real API over PostgreSQL, its outbox filled by real engine
cycles: the MQTT payloads byte for byte, resume by ``Last-Event-ID``, heartbeats that outlive
the idle timeout, the client cap, and a slow client dropped with its memory bounded."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from daemon.api.stream import OUTBOX_PAGE
from daemon.mqtt.event_payloads import event_messages
from daemon.mqtt.topics import Topics
from tests.api.apikit import CYCLE_AT, running_api
from tests.api.streamkit import SseReader, flood_outbox, price_cycle

CRASH_PRICE = 1_000.0  # every account that owes 1,000 or more is liquidatable at this price
WAIT_S = 30.0


@asynccontextmanager
async def stream(url: str, *, last_event_id: int | None = None) -> AsyncIterator[SseReader]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{url}/v1/stream", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        yield SseReader(response)


def mqtt_payloads(entries: list) -> dict[tuple[str, int], bytes]:
    """(kind, transition id) → the payload the MQTT relay publishes for it."""
    topics = Topics("p")
    out = {}
    for entry in entries:
        for topic, payload in event_messages(topics, entry):
            out[(topic.rsplit("/", 1)[1], entry.id)] = payload
    return out


async def eventually(check, what: str, timeout_s: float = WAIT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last seen {last!r}")


async def test_a_stream_sends_status_then_the_mqtt_events_of_new_transitions() -> None:
    async with running_api(live_prices=True) as api, stream(api.url) as sse:
        first, second = await sse.frame(), await sse.frame()  # the snapshot comes first
        assert (first.event, second.event) == ("chain", "chain")
        assert {json.loads(f.data)["name"] for f in (first, second)} == {"eth", "arb"}
        oracle = await sse.until(lambda f: f.event == "oracle", "oracle status")
        assert json.loads(oracle.data)["asset"] == "ETH"
        assert oracle.id is None  # status never moves the resume point

        before = await api.store.queries.last_transition_id()
        assert await price_cycle(api, CRASH_PRICE, CYCLE_AT + 60) > 0
        stored = await api.store.queries.outbox(limit=1000, after_id=before, unpublished_only=False)
        expected = mqtt_payloads(stored)
        assert expected, "the crash raised events"
        got: dict[tuple[str, int], bytes] = {}
        while len(got) < len(expected):
            frame = await sse.until(
                lambda f: f.event in ("liquidatable", "latency_risk", "recovered"), "an event"
            )
            tid = json.loads(frame.data)["id"]
            got[(frame.event, tid)] = frame.data  # type: ignore[index]
        assert got == expected  # the same events, byte for byte, as MQTT publishes
        ids = [int(f.id) for f in sse.seen if f.id is not None]
        assert ids == sorted(ids)
        assert set(ids) == {e.id for e in stored}


async def test_resume_by_last_event_id_replays_exactly_what_followed() -> None:
    async with running_api() as api:
        start = await api.store.queries.last_transition_id()
        await price_cycle(api, CRASH_PRICE, CYCLE_AT + 60)
        middle = await api.store.queries.last_transition_id()
        await price_cycle(api, 2_000.0, CYCLE_AT + 120)  # recovered
        await price_cycle(api, 900.0, CYCLE_AT + 180)
        stored = await api.store.queries.outbox(limit=1000, after_id=middle, unpublished_only=False)
        assert middle > start
        assert stored
        expected = mqtt_payloads(stored)
        async with stream(api.url, last_event_id=middle) as sse:
            got: dict[tuple[str, int], bytes] = {}
            while len(got) < len(expected):
                frame = await sse.until(lambda f: f.data.startswith(b'{"account"'), "an event")
                got[(frame.event, json.loads(frame.data)["id"])] = frame.data  # type: ignore[index]
            assert got == expected
            assert min(tid for _, tid in got) > middle


async def test_a_malformed_last_event_id_is_a_json_400() -> None:
    async with (
        running_api() as api,
        aiohttp.ClientSession() as session,
        session.get(f"{api.url}/v1/stream", headers={"Last-Event-ID": "12; drop"}) as response,
    ):
        assert response.status == 400
        body = await response.json()
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["field"] == "Last-Event-ID"


async def test_heartbeats_keep_a_quiet_stream_open_past_the_idle_timeout() -> None:
    async with (
        running_api(idle_timeout_s=0.5, stream_heartbeat_s=0.2) as api,
        stream(api.url) as sse,
    ):
        started = time.monotonic()
        beats = 0
        # Heartbeats keep arriving for well over the idle timeout: the connection is not cut.
        while time.monotonic() - started < 1.5:
            frame = await sse.frame(timeout_s=WAIT_S)
            beats += frame.comment == "heartbeat"
        assert beats >= 3
        await price_cycle(api, CRASH_PRICE, CYCLE_AT + 60)
        await sse.until(lambda f: f.event == "liquidatable", "an event after the idle timeout")


async def test_one_stream_beyond_the_cap_is_a_json_503_and_a_freed_slot_is_reused() -> None:
    async with (
        running_api(stream_max_clients=2, stream_heartbeat_s=0.2) as api,
        stream(api.url),
        aiohttp.ClientSession() as session,
    ):
        async with stream(api.url):
            async with session.get(f"{api.url}/v1/stream") as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "5"
                body = await refused.json()
            assert body["error"]["code"] == "too_many_streams"
            assert "at most 2 event streams" in body["error"]["message"]
            # Other requests are still served while the streams are open.
            async with session.get(f"{api.url}/healthz") as health:
                assert health.status == 200
        await eventually(lambda: len(api.hub.clients) == 1, "the closed stream's slot")
        async with stream(api.url) as again:
            await again.until(lambda f: f.event == "chain", "a chain status")
    text = api.metrics.render().decode()
    assert "crossmargin_stream_refused_total 1.0" in text


async def test_a_slow_client_is_dropped_with_bounded_memory_and_resumes_without_loss() -> None:
    limit = 50
    flood = 20_000
    async with running_api(stream_queue_events=limit, stream_heartbeat_s=0.5) as api:
        host, port = api.url.removeprefix("http://").split(":")
        start = await api.store.queries.last_transition_id()
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
        slow.connect((host, int(port)))
        try:
            slow.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            await eventually(lambda: len(api.hub.clients) == 1, "the slow client")
            client = next(iter(api.hub.clients))
            await flood_outbox(api, flood)
            await eventually(lambda: client.dropped, "the slow client to be dropped")
            await eventually(lambda: not api.hub.clients, "the slow client to be released")
            # What waited for it never exceeded its bound (plus the one page a client with
            # nothing waiting takes), however much more the outbox held.
            assert client.peak <= limit + OUTBOX_PAGE
            assert client.queued == 0
            text = api.metrics.render().decode()
            assert "crossmargin_stream_dropped_total 1.0" in text
            assert "crossmargin_stream_clients 0.0" in text
        finally:
            slow.close()
        # A client that keeps up gets the whole flood from the outbox, from where it asks.
        async with stream(api.url, last_event_id=start) as sse:
            ids: set[int] = set()
            while len(ids) < flood:
                frame = await sse.until(lambda f: f.event == "liquidatable", "flood events")
                ids.add(int(frame.id))  # type: ignore[arg-type]
        assert ids == set(range(start + 1, start + flood + 1))


@pytest.mark.parametrize("clients", [0])
async def test_stream_max_clients_zero_turns_the_stream_off(clients: int) -> None:
    async with (
        running_api(stream_max_clients=clients) as api,
        aiohttp.ClientSession() as session,
        session.get(f"{api.url}/v1/stream") as response,
    ):
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "too_many_streams"


async def test_streams_count_against_the_connection_cap() -> None:
    async with (
        running_api(max_connections=3, stream_max_clients=2) as api,
        stream(api.url),
        stream(api.url),
        aiohttp.ClientSession() as third,
        aiohttp.ClientSession() as fourth,
    ):
        async with third.get(f"{api.url}/healthz") as health:
            assert health.status == 200  # the third connection; it stays open (keep-alive)
        async with fourth.get(f"{api.url}/healthz") as refused:
            assert refused.status == 503
            assert (await refused.json())["error"]["code"] == "too_many_connections"


async def test_closing_the_server_ends_open_streams_cleanly() -> None:
    async with running_api() as api, stream(api.url) as sse:
        await sse.until(lambda f: f.event == "chain", "the status snapshot")
        closing = asyncio.create_task(api.server.close())
        # The stream is ended by the server (a complete chunked answer), not cut when the
        # shutdown grace runs out (that would be a ClientPayloadError here).
        with pytest.raises(EOFError):
            await sse.until(lambda f: False, "the end of the stream")
        await closing
