"""Many view calls at one block through Multicall3 ``aggregate3``, in adaptive chunks.

Every call of one ``run`` is pinned to one block by hash (EIP-1898), so a reorg cannot mix two
states into one snapshot. Chunks adapt: a chunk the node refuses as too large (body size, gas
cap) or that times out is halved, and the smaller size is kept for later reads. The balance
reader (``chains.reads``) and the venues' reads (``venues.batch``) are both this, with their
own encoders and decoders.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from chains.blocks import BlockRef
from core.errors import CallTooLarge, RpcError, RpcTimeout
from core.requester import Requester

log = logging.getLogger(__name__)

MIN_BATCH_SIZE = 1  # a chunk of one call that still fails is not split further

Call = TypeVar("Call")
Encode = Callable[[Sequence[Call]], str]
"""Calls of one chunk → ``aggregate3`` calldata (0x-prefixed hex)."""
Decode = Callable[[str, int], list[bytes | None]]
"""The ``eth_call`` result and the number of calls → one entry per call, ``None`` if failed."""


class PinnedAggregate:
    """Sends ``aggregate3`` eth_calls pinned to one block, at most ``concurrency`` at a time.

    ``kind`` and ``name`` say whose reads these are in logs and errors (``chain=arbitrum``,
    ``venue=aave-main``). A single call that is still too large or times out is a failed read
    (``None``) when ``single_failure_is_none``, else its error propagates.
    """

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        requester: Requester,
        multicall_address: str,
        override_code: bytes | None,
        batch_size: int,
        concurrency: int,
        gas: int | None = None,
        single_failure_is_none: bool = False,
    ) -> None:
        self.name = name
        self._kind = kind
        self._rpc = requester
        self._multicall = multicall_address.lower()
        # Serialised once: the params of every chunk are built by formatting (calldata is hex,
        # nothing to escape) instead of json.dumps scanning ~450 KB per chunk.
        self._override_json = (
            ""
            if override_code is None
            else "," + json.dumps({self._multicall: {"code": "0x" + override_code.hex()}})
        )
        self._gas_json = "" if gas is None else f',"gas":"{hex(gas)}"'
        self._single_failure_is_none = single_failure_is_none
        self.batch_size = batch_size
        self._limit = asyncio.Semaphore(concurrency)

    async def run(
        self,
        calls: Sequence[Call],
        encode: Encode[Call],
        decode: Decode,
        block: BlockRef,
    ) -> list[bytes | None]:
        """One entry per call, in chunks of ``batch_size`` calls encoded by ``encode`` as each
        is sent (nothing is kept per call)."""
        size = self.batch_size
        chunks = [calls[i : i + size] for i in range(0, len(calls), size)]
        results = await asyncio.gather(
            *(self._chunk(chunk, encode, decode, block) for chunk in chunks)
        )
        return [entry for chunk_result in results for entry in chunk_result]

    async def _chunk(
        self, calls: Sequence[Call], encode: Encode[Call], decode: Decode, block: BlockRef
    ) -> list[bytes | None]:
        try:
            async with self._limit:
                params = self._params(encode(calls), block)
                result = await self._rpc.request_raw("eth_call", params)
        except (CallTooLarge, RpcTimeout) as exc:
            reason = type(exc).__name__
            if len(calls) <= MIN_BATCH_SIZE:
                if not self._single_failure_is_none:
                    raise
                log.warning("read_failed %s=%s reason=%s", self._kind, self.name, reason)
                return [None] * len(calls)
            half = len(calls) // 2
            if half < self.batch_size:
                self.batch_size = half
                log.info(
                    "batch_size_reduced %s=%s size=%d reason=%s",
                    self._kind,
                    self.name,
                    half,
                    reason,
                )
            first, second = await asyncio.gather(
                self._chunk(calls[:half], encode, decode, block),
                self._chunk(calls[half:], encode, decode, block),
            )
            return first + second
        if not isinstance(result, str):
            raise RpcError(self.name, "eth_call returned a non-string result")
        return decode(result, len(calls))

    def _params(self, data: str, block: BlockRef) -> str:
        return (
            f'[{{"to":"{self._multicall}","data":"{data}"{self._gas_json}}},'
            f'{{"blockHash":"{block.hash}"}}{self._override_json}]'
        )
