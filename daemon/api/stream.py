"""The event stream's hub: one reader of the outbox and of the live status, many clients.

``StreamHub.run`` (a task of the API application) reads new transitions from the durable
outbox (``health_transitions``, whatever MQTT did with them) when the engine loop wakes it
after a stored cycle, and every ``OUTBOX_POLL_S`` as a safety net; it encodes their frames once
and offers each batch to every client, with the id it follows (``Batch.after``) so a client
that missed something (it connected late, or resumed from an older id) reads the gap from the
store itself (``daemon.api.stream_route``). It also samples every chain's and asset's status
each ``STATUS_SAMPLE_S`` and offers the ones whose document changed.

Each client has a queue bounded in frames (``api.stream_queue_events``, plus one page of
``OUTBOX_PAGE`` transitions a client with nothing waiting always takes): a client that does
not keep up is dropped — its queue is emptied, its connection cut — instead of growing
memory; it resumes with ``Last-Event-ID`` and reads what it missed from the store. At most
``api.stream_max_clients`` are served at once: one more gets 503 ``too_many_streams``.

Transition ids increase in commit order because one engine writer appends transitions per
cycle under the cycle lock (``daemon.store.cycle``): reading ``id > n`` never skips a row
that commits later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from core.lifecycle import wait_event, within
from daemon.api import sse
from daemon.api.errors import ApiError
from daemon.api.view import DaemonView
from daemon.metrics import Metrics
from daemon.mqtt.relay import STORE_FAULTS
from daemon.store.queries import StoreQueries
from daemon.store.records import OutboxEntry

log = logging.getLogger(__name__)
T = TypeVar("T")

TOO_MANY_STREAMS = "too_many_streams"
STREAM_RETRY_AFTER_S = 5
OUTBOX_PAGE = 500  # transitions per outbox read (hub and catch-up alike)
OUTBOX_POLL_S = 1.0  # read the outbox this often when no stored cycle woke the hub
STATUS_SAMPLE_S = 1.0  # chain and oracle status documents compared this often
STORE_READ_TIMEOUT_S = 10.0  # one outbox read; a database that hangs is retried later
STORE_LOG_EVERY_S = 30.0  # a failing outbox read is logged at most this often


@dataclass(frozen=True, slots=True)
class Batch:
    """New transitions' frames, in id order, following transition id ``after``."""

    after: int
    last: int
    frames: Sequence[sse.TransitionFrame]


@dataclass(frozen=True, slots=True)
class Status:
    """A chain's or an asset's changed status frame."""

    frame: bytes


class _Close:
    """The stream ends (shutdown, or the client was dropped)."""


CLOSE: Final = _Close()
StreamItem = Batch | Status | _Close


class StreamClient:
    """One connected stream: its bounded queue and how to cut it."""

    def __init__(self, *, limit: int, hang_up: Callable[[], None]) -> None:
        self.limit = limit
        self.queued = 0  # frames waiting in the queue
        self.peak = 0  # the most that ever waited (what a slow client costs)
        self.dropped: str | None = None
        self._hang_up = hang_up
        self._queue: asyncio.Queue[StreamItem] = asyncio.Queue()

    def offer(self, item: Batch | Status) -> bool:
        """Queue ``item``; a client over its limit is dropped instead (False)."""
        if self.dropped is not None:
            return False
        size = len(item.frames) if isinstance(item, Batch) else 1
        # A client with nothing waiting takes any one batch (a page may be larger than the
        # limit): it is keeping up. At most ``limit`` + one page ever waits.
        if self.queued and self.queued + size > self.limit:
            self.drop(f"more than {self.limit} events waiting")
            return False
        self._queue.put_nowait(item)
        self.queued += size
        self.peak = max(self.peak, self.queued)
        return True

    async def next(self, timeout_s: float) -> StreamItem | None:
        """The next item, or ``None`` after ``timeout_s`` of nothing (time for a heartbeat)."""
        try:
            item = await within(self._queue.get(), timeout_s)
        except TimeoutError:
            return None
        if isinstance(item, Batch):
            self.queued -= len(item.frames)
        elif isinstance(item, Status):
            self.queued -= 1
        return item

    def close(self) -> None:
        """End the stream after what is queued."""
        self._queue.put_nowait(CLOSE)

    def drop(self, reason: str) -> None:
        """Forget what is queued and cut the connection now (idempotent)."""
        if self.dropped is not None:
            return
        self.dropped = reason
        while not self._queue.empty():
            self._queue.get_nowait()
        self.queued = 0
        self._queue.put_nowait(CLOSE)
        self._hang_up()  # a write blocked on a full socket fails at once


class StreamHub:
    """Feeds every connected ``StreamClient``; see the module docstring."""

    def __init__(
        self,
        *,
        queries: StoreQueries,
        view: DaemonView,
        metrics: Metrics,
        max_clients: int,
        queue_events: int,
        poll_s: float = OUTBOX_POLL_S,
        status_s: float = STATUS_SAMPLE_S,
    ) -> None:
        self.queries = queries
        self.view = view
        self.metrics = metrics
        self.max_clients = max_clients
        self.queue_events = queue_events
        self._poll_s = poll_s
        self._status_s = status_s
        self.clients: set[StreamClient] = set()
        self.cursor: int | None = None  # the last transition id offered (None: not read yet)
        self._epoch = 0  # bumped whenever the last client leaves
        self._wake = asyncio.Event()
        self._status: dict[tuple[str, str], bytes] = {}
        self._status_at = 0.0
        self._failing_since: float | None = None
        self._logged_at = 0.0

    # ---- clients ---------------------------------------------------------------------------

    def open(self, hang_up: Callable[[], None]) -> StreamClient:
        """A new client, or ``ApiError`` 503 ``too_many_streams`` at the cap."""
        if len(self.clients) >= self.max_clients:
            self.metrics.observe_stream_refused()
            raise ApiError(
                503,
                TOO_MANY_STREAMS,
                f"the API serves at most {self.max_clients} event streams at once; retry later",
                headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
            )
        client = StreamClient(limit=self.queue_events, hang_up=hang_up)
        self.clients.add(client)
        self.metrics.observe_stream_clients(len(self.clients))
        self.wake()  # a first client starts the outbox reads
        return client

    def release(self, client: StreamClient) -> None:
        """``client`` is gone (idempotent)."""
        if client not in self.clients:
            return
        self.clients.discard(client)
        if client.dropped is not None:
            self.metrics.observe_stream_dropped()
            log.warning("stream_client_dropped reason=%s", client.dropped.replace(" ", "_"))
        self.metrics.observe_stream_clients(len(self.clients))
        if not self.clients:
            # With nobody listening the cursor would go stale: the next first client starts
            # from the newest id again (its own Last-Event-ID gap it reads itself). A read
            # under way belongs to the old epoch and is thrown away.
            self.cursor = None
            self._epoch += 1

    def status_snapshot(self) -> bytes:
        """Every chain's and asset's current status frame (what a new client gets first)."""
        return b"".join(self._current_status().values())

    async def read_outbox(self, after: int, limit: int, timeout_s: float) -> list[OutboxEntry]:
        """Up to ``limit`` stored transitions after ``after``, published or not (a client's
        catch-up); ``TimeoutError`` if the database takes longer than ``timeout_s``."""
        return await within(
            self.queries.outbox(limit=limit, after_id=after, unpublished_only=False), timeout_s
        )

    def wake(self) -> None:
        """New transitions were stored: read them now (cheap; call after every commit)."""
        self._wake.set()

    def shutdown(self) -> None:
        """End every stream (the server is closing)."""
        for client in list(self.clients):
            client.close()

    # ---- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the outbox and sample status for the connected clients, forever."""
        while True:
            self._wake.clear()
            try:
                if self.clients:
                    await self.pump()
                    if time.monotonic() - self._status_at >= self._status_s:
                        self._offer_status()
            except Exception:  # a bug here must not end every stream for good: log, go on
                log.exception("stream_hub_failed")
            await wait_event(self._wake, min(self._poll_s, self._status_s))

    async def pump(self) -> None:
        """Offer every transition stored after ``cursor`` (the first read only sets it)."""
        epoch = self._epoch
        try:
            if self.cursor is None:
                newest = await self._read(self.queries.last_transition_id())
                if epoch == self._epoch:
                    self.cursor = newest
                return
            while self.clients and self.cursor is not None:
                after = self.cursor
                entries = await self._read(
                    self.queries.outbox(limit=OUTBOX_PAGE, after_id=after, unpublished_only=False)
                )
                if not entries or epoch != self._epoch:
                    break
                batch = Batch(after, entries[-1].id, sse.transition_frames(entries))
                self.cursor = batch.last
                for client in list(self.clients):
                    client.offer(batch)
                if len(entries) < OUTBOX_PAGE:
                    break
                await asyncio.sleep(0)  # let the clients write between pages
        except STORE_FAULTS as exc:
            self._store_failed(exc)
            return
        if self._failing_since is not None:
            log.info("stream_store_back after_s=%.1f", time.monotonic() - self._failing_since)
            self._failing_since = None

    async def _read(self, read: Awaitable[T]) -> T:
        return await within(read, STORE_READ_TIMEOUT_S)

    def _store_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._logged_at >= STORE_LOG_EVERY_S:
            self._logged_at = now
            log.warning("stream_store_unavailable error=%s", type(exc).__name__)

    def _current_status(self) -> dict[tuple[str, str], bytes]:
        current: dict[tuple[str, str], bytes] = {}
        chains = sse.status_frames(sse.CHAIN_EVENT, self.view.chain_statuses(), "name")
        for name, text in chains.items():
            current[(sse.CHAIN_EVENT, name)] = text
        prices = self.view.price_statuses()
        if prices is not None:
            for asset, text in sse.status_frames(sse.ORACLE_EVENT, prices, "asset").items():
                current[(sse.ORACLE_EVENT, asset)] = text
        return current

    def _offer_status(self) -> None:
        """Offer every status frame that changed since the previous sample."""
        current = self._current_status()
        changed = [text for key, text in current.items() if self._status.get(key) != text]
        self._status = current
        self._status_at = time.monotonic()
        for text in changed:
            for client in list(self.clients):
                client.offer(Status(text))
