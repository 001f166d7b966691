"""Adaptive, reorg-aware ``eth_getLogs`` scanning of a venue's events.

The generalisation of ``chains.discovery.TransferScanner`` to any contracts and event
signatures: a range the node refuses (too many results, a range cap, a timeout) is halved,
successes grow it back towards ``max_range``; ``rewind`` forgets what a reorg orphaned.
Logs flagged ``removed`` are skipped. The contract set may change between scans (Aave lists
new aTokens when reserves are added): ``watch`` replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from core.errors import CallTooLarge, JsonRpcError, RpcTimeout
from core.requester import Requester

log = logging.getLogger(__name__)

MIN_LOG_RANGE = 1  # blocks
RANGE_GROWTH = 2  # factor applied to the span after a successful query
DEFAULT_LOG_RANGE = 10_000  # blocks per eth_getLogs at most


class EventScanner:
    """Scans logs of ``addresses`` whose topic 0 is one of ``topics``, range by range."""

    def __init__(
        self,
        *,
        name: str,
        requester: Requester,
        from_block: int,
        max_range: int = DEFAULT_LOG_RANGE,
    ) -> None:
        self.name = name
        self._rpc = requester
        self._addresses: list[str] = []
        self._topics: list[str] = []
        self.cursor = from_block - 1  # last block scanned
        self._max_range = max(max_range, MIN_LOG_RANGE)
        self.span = self._max_range

    def watch(self, addresses: Sequence[str], topics: Sequence[str]) -> None:
        """Set the contracts and event signatures to scan from now on."""
        self._addresses = sorted({a.lower() for a in addresses})
        self._topics = sorted(set(topics))

    def rewind(self, to_block: int) -> None:
        """Forget what was scanned above ``to_block`` (after a reorg)."""
        self.cursor = min(self.cursor, to_block)

    async def scan_to(self, to_block: int) -> list[dict[str, Any]]:
        """Every matching log after the cursor up to ``to_block`` inclusive."""
        found: list[dict[str, Any]] = []
        while self.cursor < to_block and self._addresses:
            start = self.cursor + 1
            end = min(to_block, start + self.span - 1)
            query = {
                "fromBlock": hex(start),
                "toBlock": hex(end),
                "address": self._addresses,
                "topics": [self._topics],
            }
            try:
                logs = await self._rpc.request("eth_getLogs", [query])
            except (CallTooLarge, RpcTimeout, JsonRpcError) as exc:
                if self.span <= MIN_LOG_RANGE:
                    raise
                self.span = max(MIN_LOG_RANGE, self.span // 2)
                log.info(
                    "venue_log_range_reduced venue=%s span=%d reason=%s",
                    self.name,
                    self.span,
                    type(exc).__name__,
                )
                continue
            found.extend(entry for entry in logs if not entry.get("removed", False))
            self.cursor = end
            self.span = min(self._max_range, self.span * RANGE_GROWTH)
        if not self._addresses:
            self.cursor = max(self.cursor, to_block)
        return found


def topic_address(entry: dict[str, Any], index: int) -> str | None:
    """The address in indexed topic ``index`` of a log, lower-case (``None`` if absent)."""
    topics = entry.get("topics", [])
    if index >= len(topics):
        return None
    return "0x" + str(topics[index])[-40:].lower()
