"""Head tracking: a ring of recent blocks; parent mismatches and backward heads are reorgs.

New heads arrive from polling ``eth_getBlockByNumber("latest")``; with a WebSocket URL a
``newHeads`` subscription wakes the poller at once (lower latency), but the poll stays the
single source of truth because ``anvil_rollback`` and some nodes emit no notification when the
head goes backwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from chains.blocks import BlockRef, HeadEvent, NewBlock, Reorg
from core.errors import RetryableError
from core.lifecycle import wait_event
from core.redaction import redact_url
from core.requester import Requester

log = logging.getLogger(__name__)

MIN_RING_DEPTH = 64  # blocks kept for reorg detection, at least; more with deep confirmations
MAX_GAP_FILL = 256  # blocks fetched one by one to link a jump in head numbers; beyond: resync
WS_RECONNECT_DELAY_S = 2.0
WS_HEARTBEAT_S = 15.0


BlockFetcher = Callable[[str], Awaitable[BlockRef | None]]


class HeadRing:
    """Recent canonical blocks by number, and the pure logic that links a new head to them.

    ``advance`` needs to fetch parents of unknown blocks; it takes the fetch function so the
    linking rules stay testable without a node.
    """

    def __init__(self, depth: int = MIN_RING_DEPTH) -> None:
        self.depth = max(depth, 2)
        self._blocks: deque[BlockRef] = deque(maxlen=self.depth)

    @property
    def tip(self) -> BlockRef | None:
        """The newest canonical block, if any."""
        return self._blocks[-1] if self._blocks else None

    def at(self, number: int) -> BlockRef | None:
        """The canonical block at ``number`` if it is still in the ring."""
        if not self._blocks:
            return None
        index = number - self._blocks[0].number
        if 0 <= index < len(self._blocks):
            return self._blocks[index]
        return None

    def reset(self, block: BlockRef) -> None:
        """Forget everything and start again from ``block``."""
        self._blocks.clear()
        self._blocks.append(block)

    async def advance(self, head: BlockRef, fetch_by_hash: BlockFetcher) -> list[HeadEvent]:
        """Link ``head`` to the ring; return the events it implies (possibly none)."""
        tip = self.tip
        if tip is None:
            self.reset(head)
            return [NewBlock(head)]
        if head.hash == tip.hash:
            return []
        if head.number == tip.number + 1 and head.parent_hash == tip.hash:
            self._blocks.append(head)
            return [NewBlock(head)]
        if head.number > tip.number + 1 and head.number - tip.number <= MAX_GAP_FILL:
            chain = await self._walk_back(head, tip.number + 1, fetch_by_hash)
            if chain is not None and chain[0].parent_hash == tip.hash:
                for block in chain:
                    self._blocks.append(block)
                return [NewBlock(block) for block in chain]
        return await self._reorg(head, fetch_by_hash)

    async def _walk_back(
        self, head: BlockRef, down_to: int, fetch_by_hash: BlockFetcher
    ) -> list[BlockRef] | None:
        """Blocks from number ``down_to`` up to ``head`` following parent hashes."""
        chain = [head]
        while chain[-1].number > down_to:
            parent = await fetch_by_hash(chain[-1].parent_hash)
            if parent is None:
                return None
            chain.append(parent)
        chain.reverse()
        return chain

    async def _reorg(self, head: BlockRef, fetch_by_hash: BlockFetcher) -> list[HeadEvent]:
        tip = self.tip
        assert tip is not None
        # Walk the new chain back until a block the ring agrees with.
        cursor: BlockRef | None = head
        new_branch: list[BlockRef] = []
        while cursor is not None:
            known = self.at(cursor.number)
            if known is not None and known.hash == cursor.hash:
                break
            if self._blocks and cursor.number < self._blocks[0].number:
                cursor = None
                break
            new_branch.append(cursor)
            cursor = await fetch_by_hash(cursor.parent_hash)
        ancestor = cursor
        if ancestor is None:
            orphaned = tuple(self._blocks)
            self.reset(head)
            log.warning("reorg_deeper_than_ring depth>=%d head=%d", len(orphaned), head.number)
            return [Reorg(ancestor=None, orphaned=orphaned, head=head)]
        orphaned = tuple(b for b in self._blocks if b.number > ancestor.number)
        while self._blocks and self._blocks[-1].number > ancestor.number:
            self._blocks.pop()
        for block in reversed(new_branch):
            self._blocks.append(block)
        return [Reorg(ancestor=ancestor, orphaned=orphaned, head=head)]


class HeadTracker:
    """Follows one chain's head and yields ``NewBlock``/``Reorg`` events."""

    def __init__(
        self,
        *,
        chain: str,
        requester: Requester,
        poll_interval_s: float,
        ring_depth: int = MIN_RING_DEPTH,
        ws_url: str | None = None,
    ) -> None:
        self.chain = chain
        self._rpc = requester
        self._poll_interval_s = poll_interval_s
        self._ws_url = ws_url
        self.ring = HeadRing(max(ring_depth, MIN_RING_DEPTH))
        self.reorg_count = 0
        self.last_head_at: float | None = None  # monotonic time the head was last fetched
        self.last_error: str | None = None
        self._wake = asyncio.Event()

    async def latest(self) -> BlockRef:
        """Fetch the current head block."""
        block = await self._rpc.request("eth_getBlockByNumber", ["latest", False])
        return BlockRef.from_rpc(block)

    async def fetch_by_hash(self, block_hash: str) -> BlockRef | None:
        """Fetch a block by hash; ``None`` when the node no longer knows it."""
        block = await self._rpc.request("eth_getBlockByHash", [block_hash, False])
        return None if block is None else BlockRef.from_rpc(block)

    async def poll_once(self) -> list[HeadEvent]:
        """Fetch the head once and link it to the ring."""
        head = await self.latest()
        self.last_head_at = time.monotonic()
        events = await self.ring.advance(head, self.fetch_by_hash)
        self.reorg_count += sum(isinstance(e, Reorg) for e in events)
        return events

    async def events(self) -> AsyncIterator[HeadEvent]:
        """Yield head events forever; transient RPC faults are logged and retried."""
        ws_task = None
        if self._ws_url is not None:
            ws_task = asyncio.create_task(self._listen_ws(), name=f"heads-ws:{self.chain}")
        try:
            while True:
                # Cleared before the poll: a notification that arrives while it runs (or while
                # its events are consumed) makes the next poll follow at once.
                self._wake.clear()
                try:
                    for event in await self.poll_once():
                        yield event
                    self.last_error = None
                except RetryableError as exc:
                    self.last_error = str(exc)
                    log.warning("head_poll_failed chain=%s error=%s", self.chain, exc)
                await wait_event(self._wake, self._poll_interval_s)
        finally:
            if ws_task is not None:
                ws_task.cancel()
                await asyncio.gather(ws_task, return_exceptions=True)

    async def _listen_ws(self) -> None:
        """Subscribe to ``newHeads`` and wake the poller on every notification."""
        assert self._ws_url is not None
        shown = redact_url(self._ws_url)
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.ws_connect(self._ws_url, heartbeat=WS_HEARTBEAT_S) as ws:
                        await ws.send_str(
                            json.dumps(
                                {
                                    "jsonrpc": "2.0",
                                    "id": 1,
                                    "method": "eth_subscribe",
                                    "params": ["newHeads"],
                                }
                            )
                        )
                        log.info("heads_ws_connected chain=%s url=%s", self.chain, shown)
                        async for message in ws:
                            if message.type is aiohttp.WSMsgType.TEXT:
                                self._wake.set()
                            elif message.type in (
                                aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR,
                            ):
                                break
                except (aiohttp.ClientError, OSError) as exc:
                    log.warning(
                        "heads_ws_failed chain=%s url=%s error=%s",
                        self.chain,
                        shown,
                        type(exc).__name__,
                    )
                await asyncio.sleep(WS_RECONNECT_DELAY_S)
