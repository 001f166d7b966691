"""Transfer-log scanning: discovers accounts and marks changed (account, token) pairs dirty.

``eth_getLogs`` ranges adapt: a node that refuses a range (too many results, range limit,
timeout) gets half of it next time; successes grow it back towards the configured span.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import CallTooLarge, JsonRpcError, RpcTimeout
from core.requester import Requester

log = logging.getLogger(__name__)

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ZERO_ADDRESS = "0x" + "0" * 40
MIN_LOG_RANGE = 1  # blocks
RANGE_GROWTH = 2  # factor applied to the span after a successful query


@dataclass(frozen=True, slots=True)
class TransferSeen:
    """One ERC-20 Transfer log: which token, from and to whom, where."""

    token: str
    sender: str
    recipient: str
    block_number: int


class TransferScanner:
    """Scans Transfer logs of the watched tokens, block range by block range."""

    def __init__(
        self,
        *,
        chain: str,
        requester: Requester,
        tokens: Sequence[str],
        from_block: int,
        max_range: int,
    ) -> None:
        self.chain = chain
        self._rpc = requester
        self._tokens = [t.lower() for t in tokens]
        self.cursor = from_block - 1  # last block scanned
        self._max_range = max(max_range, MIN_LOG_RANGE)
        self.span = self._max_range

    def rewind(self, to_block: int) -> None:
        """Forget what was scanned above ``to_block`` (after a reorg)."""
        self.cursor = min(self.cursor, to_block)

    async def scan_to(self, to_block: int) -> list[TransferSeen]:
        """Scan everything after the cursor up to ``to_block`` inclusive."""
        seen: list[TransferSeen] = []
        while self.cursor < to_block:
            start = self.cursor + 1
            end = min(to_block, start + self.span - 1)
            try:
                logs = await self._rpc.request(
                    "eth_getLogs",
                    [
                        {
                            "fromBlock": hex(start),
                            "toBlock": hex(end),
                            "address": self._tokens,
                            "topics": [TRANSFER_TOPIC],
                        }
                    ],
                )
            except (CallTooLarge, RpcTimeout, JsonRpcError) as exc:
                if self.span <= MIN_LOG_RANGE:
                    raise
                self.span = max(MIN_LOG_RANGE, self.span // 2)
                log.info(
                    "log_range_reduced chain=%s span=%d reason=%s",
                    self.chain,
                    self.span,
                    type(exc).__name__,
                )
                continue
            seen.extend(_parse(entry) for entry in logs if _is_transfer(entry))
            self.cursor = end
            self.span = min(self._max_range, self.span * RANGE_GROWTH)
        return seen


def _is_transfer(entry: dict[str, Any]) -> bool:
    topics = entry.get("topics", [])
    # ERC-721 Transfer shares the signature but indexes the id: 4 topics. Skip it.
    return len(topics) == 3 and topics[0] == TRANSFER_TOPIC and not entry.get("removed", False)


def _parse(entry: dict[str, Any]) -> TransferSeen:
    topics = entry["topics"]
    return TransferSeen(
        token=entry["address"].lower(),
        sender="0x" + topics[1][-40:].lower(),
        recipient="0x" + topics[2][-40:].lower(),
        block_number=int(entry["blockNumber"], 16),
    )
