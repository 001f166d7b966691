"""Batched, block-pinned balance reads through Multicall3 ``aggregate3``.

Every read of a cycle is pinned to one block by hash (EIP-1898), so a reorg cannot mix two
chains' states into one snapshot. Chunks adapt: a chunk the node refuses as too large (body
size, gas cap) or that times out is halved, and the smaller size is kept for later reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from chains.blocks import BlockRef
from chains.multicall import (
    DECIMALS_SELECTOR,
    balance_of_call,
    decode_aggregate3,
    decode_uint,
    encode_aggregate3,
    encode_call,
)
from core.errors import CallTooLarge, RpcError, RpcTimeout
from core.requester import Requester

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000  # calls per aggregate3; ~224 KB of calldata, well under 2 MB bodies
DEFAULT_CONCURRENCY = 4  # aggregate3 requests in flight per chain
MIN_BATCH_SIZE = 1


Pair = tuple[str, str]
"""(account address, token address) of one chain, both lower-case 0x-hex: a holding's key in
the order used everywhere, (account, chain, token), with the chain implied."""


class BalanceReader:
    """Reads ``balanceOf`` for many (account, token) pairs at one block, in adaptive chunks."""

    def __init__(
        self,
        *,
        chain: str,
        requester: Requester,
        multicall_address: str,
        override_code: bytes | None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.chain = chain
        self._rpc = requester
        self._multicall = multicall_address
        # Serialised once: the params of every chunk are built by formatting (calldata is hex,
        # nothing to escape) instead of json.dumps scanning ~450 KB per chunk.
        self._override_json = (
            ""
            if override_code is None
            else "," + json.dumps({multicall_address: {"code": "0x" + override_code.hex()}})
        )
        self.batch_size = batch_size
        self._limit = asyncio.Semaphore(concurrency)
        self._tuples: dict[Pair, str] = {}

    async def balances(self, pairs: Sequence[Pair], block: BlockRef) -> list[int | None]:
        """``balanceOf`` for every pair at ``block``; ``None`` marks a failed read."""
        encoded = [self._tuple(pair) for pair in pairs]
        words = await self._aggregate(encoded, block)
        return [decode_uint(word) for word in words]

    async def call_words(
        self, calls: Sequence[tuple[str, str]], block: BlockRef
    ) -> list[bytes | None]:
        """Arbitrary single-word calls ``(target, calldata hex)`` at ``block``."""
        return await self._aggregate([encode_call(t, d) for t, d in calls], block)

    async def decimals(self, tokens: Sequence[str], block: BlockRef) -> list[int | None]:
        """``decimals()`` of each token (``None`` when it fails or is absurd)."""
        words = await self.call_words([(t, DECIMALS_SELECTOR) for t in tokens], block)
        values = [decode_uint(w) for w in words]
        return [v if v is not None and v <= 77 else None for v in values]

    def _tuple(self, pair: Pair) -> str:
        cached = self._tuples.get(pair)
        if cached is None:
            account, token = pair
            cached = self._tuples[pair] = balance_of_call(token, account)
        return cached

    async def _aggregate(self, tuples: list[str], block: BlockRef) -> list[bytes | None]:
        size = self.batch_size
        chunks = [tuples[i : i + size] for i in range(0, len(tuples), size)]
        results = await asyncio.gather(*(self._chunk(chunk, block) for chunk in chunks))
        return [word for chunk_result in results for word in chunk_result]

    async def _chunk(self, tuples: list[str], block: BlockRef) -> list[bytes | None]:
        try:
            async with self._limit:
                result = await self._rpc.request_raw("eth_call", self._params(tuples, block))
        except (CallTooLarge, RpcTimeout) as exc:
            if len(tuples) <= MIN_BATCH_SIZE:
                log.warning("read_failed chain=%s reason=%s", self.chain, type(exc).__name__)
                return [None] * len(tuples)
            half = len(tuples) // 2
            if half < self.batch_size:
                self.batch_size = half
                log.info("batch_size_reduced chain=%s size=%d", self.chain, half)
            first, second = await asyncio.gather(
                self._chunk(tuples[:half], block), self._chunk(tuples[half:], block)
            )
            return first + second
        if not isinstance(result, str):
            raise RpcError(self.chain, "eth_call returned a non-string result")
        return decode_aggregate3(result, len(tuples))

    def _params(self, tuples: list[str], block: BlockRef) -> str:
        data = encode_aggregate3(tuples)
        return (
            f'[{{"to":"{self._multicall}","data":"{data}"}},'
            f'{{"blockHash":"{block.hash}"}}{self._override_json}]'
        )
