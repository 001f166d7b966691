"""Batched, block-pinned balance reads through Multicall3 ``aggregate3``.

Every read of a cycle is pinned to one block by hash (EIP-1898), so a reorg cannot mix two
chains' states into one snapshot. Chunks adapt: a chunk the node refuses as too large (body
size, gas cap) or that times out is halved, and the smaller size is kept for later reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from chains.blocks import BlockRef
from chains.multicall import (
    DECIMALS_SELECTOR,
    decode_aggregate3,
    decode_uint,
    encode_aggregate3,
    encode_balance_of_aggregate3,
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

_Call = TypeVar("_Call")


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

    async def balances(self, pairs: Sequence[Pair], block: BlockRef) -> list[int | None]:
        """``balanceOf`` for every pair at ``block``; ``None`` marks a failed read."""
        words = await self._aggregate(list(pairs), encode_balance_of_aggregate3, block)
        return [decode_uint(word) for word in words]

    async def call_words(
        self, calls: Sequence[tuple[str, str]], block: BlockRef
    ) -> list[bytes | None]:
        """Arbitrary single-word calls ``(target, calldata hex)`` at ``block``."""
        tuples = [encode_call(t, d) for t, d in calls]
        return await self._aggregate(tuples, encode_aggregate3, block)

    async def decimals(self, tokens: Sequence[str], block: BlockRef) -> list[int | None]:
        """``decimals()`` of each token (``None`` when it fails or is absurd)."""
        words = await self.call_words([(t, DECIMALS_SELECTOR) for t in tokens], block)
        values = [decode_uint(w) for w in words]
        return [v if v is not None and v <= 77 else None for v in values]

    async def _aggregate(
        self,
        calls: list[_Call],
        encode: Callable[[Sequence[_Call]], str],
        block: BlockRef,
    ) -> list[bytes | None]:
        """One word per call, in chunks of ``batch_size`` calls encoded by ``encode`` (the
        calldata is built per chunk as it is sent, nothing is kept per call)."""
        size = self.batch_size
        chunks = [calls[i : i + size] for i in range(0, len(calls), size)]
        results = await asyncio.gather(*(self._chunk(chunk, encode, block) for chunk in chunks))
        return [word for chunk_result in results for word in chunk_result]

    async def _chunk(
        self, calls: list[_Call], encode: Callable[[Sequence[_Call]], str], block: BlockRef
    ) -> list[bytes | None]:
        try:
            async with self._limit:
                params = self._params(encode(calls), block)
                result = await self._rpc.request_raw("eth_call", params)
        except (CallTooLarge, RpcTimeout) as exc:
            if len(calls) <= MIN_BATCH_SIZE:
                log.warning("read_failed chain=%s reason=%s", self.chain, type(exc).__name__)
                return [None] * len(calls)
            half = len(calls) // 2
            if half < self.batch_size:
                self.batch_size = half
                log.info("batch_size_reduced chain=%s size=%d", self.chain, half)
            first, second = await asyncio.gather(
                self._chunk(calls[:half], encode, block),
                self._chunk(calls[half:], encode, block),
            )
            return first + second
        if not isinstance(result, str):
            raise RpcError(self.chain, "eth_call returned a non-string result")
        return decode_aggregate3(result, len(calls))

    def _params(self, data: str, block: BlockRef) -> str:
        return (
            f'[{{"to":"{self._multicall}","data":"{data}"}},'
            f'{{"blockHash":"{block.hash}"}}{self._override_json}]'
        )
