"""``GET /v1/stream``: the events of the MQTT topics as Server-Sent Events (see README).

On connect the client gets ``retry:``, then the current status of every chain (``event:
chain``) and asset (``event: oracle``), then — with ``Last-Event-ID: n`` — every transition
event stored after ``n``, read from the outbox page by page at the pace the socket takes,
then live events as the hub offers them. Status events carry no id: they are state, sent
again in full on every connect, and never move the resume point. A comment line goes out
after ``api.stream_heartbeat_s`` of silence; it also finds a client that has gone away.

A stream is an answer that never ends: aiohttp's keep-alive timer (``api.idle_timeout_s``)
only closes connections that wait for a request, never one being answered, and the stream
holds one of ``api.max_connections`` like any request (config keeps
``stream_max_clients`` below it).
"""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.api import sse
from daemon.api.errors import BadRequest
from daemon.api.stream import OUTBOX_PAGE, STORE_READ_TIMEOUT_S, Batch, Status, StreamHub
from daemon.mqtt.relay import STORE_FAULTS

log = logging.getLogger(__name__)

RETRY_MS = 2000
"""Told to clients: reconnect this long after the stream ends (EventSource obeys it)."""
LAST_EVENT_ID = "Last-Event-ID"
MAX_EVENT_ID = 2**63 - 1
STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # a reverse proxy must pass frames on as they come
}


class StoreGap(Exception):
    """The store could not be read to fill a gap: the stream ends, the client resumes."""


def last_event_id(request: web.Request) -> int | None:
    """The ``Last-Event-ID`` header as a transition id (400 if it is not one)."""
    text = request.headers.get(LAST_EVENT_ID)
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not text.isdigit() or int(text) > MAX_EVENT_ID:
        raise BadRequest(LAST_EVENT_ID, "must be the id of an event this stream sent")
    return int(text)


async def event_stream(
    request: web.Request, hub: StreamHub, heartbeat_s: float
) -> web.StreamResponse:
    """Serve one client until it goes away, is dropped, or the server closes."""
    after = last_event_id(request)
    transport = request.transport

    def hang_up() -> None:
        if transport is not None:
            transport.abort()

    client = hub.open(hang_up)  # 503 at the cap, before any answer is under way
    response = web.StreamResponse(headers=STREAM_HEADERS)
    try:
        await response.prepare(request)
        await response.write(sse.retry(RETRY_MS) + hub.status_snapshot())
        sent = after
        if sent is not None:
            sent = await _catch_up(hub, response, sent, until=None)
        while True:
            item = await client.next(heartbeat_s)
            if item is None:
                await response.write(sse.comment("heartbeat"))
            elif isinstance(item, Status):
                await response.write(item.frame)
            elif isinstance(item, Batch):
                if sent is None:  # a live client starts with the first batch it is offered
                    sent = item.after
                if item.after > sent:  # offered after a gap: read it from the store first
                    sent = await _catch_up(hub, response, sent, until=item.after)
                fresh = [text for tid, text in item.frames if tid > sent]
                if fresh:
                    await response.write(b"".join(fresh))
                sent = max(sent, item.last)
            else:
                break
    except StoreGap:
        log.info("stream_ended reason=store_unavailable")
    except ConnectionError:
        pass  # the client went away (or was dropped: its connection was cut)
    except Exception:  # the answer is under way: no JSON error can follow, end the stream
        log.exception("stream_failed")
    finally:
        hub.release(client)
    return response


async def _catch_up(
    hub: StreamHub, response: web.StreamResponse, after: int, until: int | None
) -> int:
    """Write the events of every transition after ``after`` (up to ``until``, or to the
    newest stored); the last id written."""
    while until is None or after < until:
        try:
            entries = await hub.read_outbox(after, OUTBOX_PAGE, STORE_READ_TIMEOUT_S)
        except STORE_FAULTS as exc:
            await response.write(sse.comment("store unavailable; resume later"))
            raise StoreGap from exc
        if until is not None:
            entries = [e for e in entries if e.id <= until]
        if not entries:
            return after if until is None else until
        frames = sse.transition_frames(entries)
        if frames:
            await response.write(b"".join(text for _tid, text in frames))
        after = entries[-1].id
        if until is None and len(entries) < OUTBOX_PAGE:
            return after
    return after
