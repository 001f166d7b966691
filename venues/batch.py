"""Block-pinned batches of arbitrary view calls through Multicall3 ``aggregate3``.

Like ``chains.reads.BalanceReader`` (which this reuses the encoders of), but returns carry any
number of words: structs (``getReserveData``), tuples (``position``), dynamic arrays. Every
call of one ``call_many`` is pinned to one block by hash (EIP-1898). Chunks adapt: a chunk the
node refuses as too large or that times out is halved, and the smaller size is kept.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Sequence

from chains.blocks import BlockRef
from chains.multicall import MalformedReturn, encode_aggregate3, encode_call
from core.errors import CallTooLarge, RpcError, RpcTimeout
from core.requester import Requester

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500  # calls per aggregate3 (venue calls cost more gas than balanceOf)
DEFAULT_CONCURRENCY = 4  # aggregate3 requests in flight per venue
CALL_GAS = 1_000_000_000  # explicit gas of one aggregate3 eth_call: bounded (see FIELD-NOTES)

Call = tuple[str, str]
"""(target address, calldata hex without 0x)."""


class PinnedCaller:
    """Runs many view calls at one block in adaptive ``aggregate3`` chunks."""

    def __init__(
        self,
        *,
        name: str,
        requester: Requester,
        multicall_address: str,
        override_code: bytes | None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.name = name
        self._rpc = requester
        self._multicall = multicall_address.lower()
        self._override_json = (
            ""
            if override_code is None
            else "," + json.dumps({self._multicall: {"code": "0x" + override_code.hex()}})
        )
        self.batch_size = batch_size
        self._limit = asyncio.Semaphore(concurrency)
        self.calls_made = 0

    async def call_many(self, calls: Sequence[Call], block: BlockRef) -> list[bytes | None]:
        """Return data of every call at ``block``; ``None`` marks a call that reverted."""
        return await self.call_encoded([encode_call(target, data) for target, data in calls], block)

    async def call_encoded(self, tuples: Sequence[str], block: BlockRef) -> list[bytes | None]:
        """Like ``call_many`` for ``Call3`` tuples already encoded (``account_call``)."""
        size = self.batch_size
        chunks = [list(tuples[i : i + size]) for i in range(0, len(tuples), size)]
        results = await asyncio.gather(*(self._chunk(chunk, block) for chunk in chunks))
        self.calls_made += len(tuples)
        return [item for chunk in results for item in chunk]

    async def _chunk(self, tuples: list[str], block: BlockRef) -> list[bytes | None]:
        try:
            async with self._limit:
                result = await self._rpc.request_raw("eth_call", self._params(tuples, block))
        except (CallTooLarge, RpcTimeout) as exc:
            if len(tuples) <= 1:
                raise
            half = len(tuples) // 2
            if half < self.batch_size:
                self.batch_size = half
                log.info(
                    "venue_batch_reduced venue=%s size=%d reason=%s",
                    self.name,
                    half,
                    type(exc).__name__,
                )
            first, second = await asyncio.gather(
                self._chunk(tuples[:half], block), self._chunk(tuples[half:], block)
            )
            return first + second
        if not isinstance(result, str):
            raise RpcError(self.name, "eth_call returned a non-string result")
        return decode_returns(result, len(tuples))

    def _params(self, tuples: list[str], block: BlockRef) -> str:
        data = encode_aggregate3(tuples)
        return (
            f'[{{"to":"{self._multicall}","data":"{data}","gas":"{hex(CALL_GAS)}"}},'
            f'{{"blockHash":"{block.hash}"}}{self._override_json}]'
        )


ACCOUNT_ARG_PAD = "0" * 56  # 4 + 32 calldata bytes padded to 64


def account_call_prefix(target: str, selector_hex: str) -> str:
    """Everything of the ``Call3`` tuple ``target.f(account)`` before the account word:
    ``prefix + address_word(account) + ACCOUNT_ARG_PAD`` is the whole tuple (one
    concatenation per call on the hot path instead of a generic encode)."""
    full = encode_call(target, selector_hex + "0" * 64)
    return full[: len(full) - 64 - len(ACCOUNT_ARG_PAD)]


def decode_returns(result_hex: str, expected: int) -> list[bytes | None]:
    """Decode ``(bool success, bytes returnData)[]``: the data of each success, ``None`` for
    each failure. Offsets are checked; a layout that does not fit raises ``MalformedReturn``."""
    raw = bytes.fromhex(result_hex.removeprefix("0x"))
    size = len(raw)
    words = _uniform_words(raw, expected)
    if words is not None:
        return words
    try:
        if int.from_bytes(raw[0:32], "big") != 0x20:
            raise MalformedReturn("unexpected array offset")
        n = int.from_bytes(raw[32:64], "big")
        if n != expected:
            raise MalformedReturn(f"{n} results for {expected} calls")
        out: list[bytes | None] = []
        for i in range(n):
            head = 64 + 32 * i
            start = 64 + int.from_bytes(raw[head : head + 32], "big")
            data_at = start + int.from_bytes(raw[start + 32 : start + 64], "big")
            length = int.from_bytes(raw[data_at : data_at + 32], "big")
            if data_at + 32 + length > size:
                raise MalformedReturn("return data shorter than its offsets")
            success = raw[start + 31] == 1
            out.append(raw[data_at + 32 : data_at + 32 + length] if success else None)
    except IndexError as exc:
        raise MalformedReturn("return data shorter than its offsets") from exc
    return out


_ONE_WORD_TUPLE = 128  # success | 0x40 | 32 | the word
_ONE_WORD_HEAD = (1).to_bytes(32, "big") + (0x40).to_bytes(32, "big") + (32).to_bytes(32, "big")


@functools.lru_cache(maxsize=64)
def _uniform_layout(n: int) -> tuple[bytes, tuple[bytes, ...]]:
    heads = b"".join((n * 32 + i * _ONE_WORD_TUPLE).to_bytes(32, "big") for i in range(n))
    prefix = (0x20).to_bytes(32, "big") + n.to_bytes(32, "big") + heads
    return prefix, tuple(bytes([b]) * n for b in _ONE_WORD_HEAD)


def _uniform_words(raw: bytes, n: int) -> list[bytes | None] | None:
    """Fast path of ``decode_returns`` when every call succeeded with exactly one word (all
    user reads do): the layout is fixed, so it is checked by comparing the heads and each
    tuple's first 96 bytes, then words are sliced at a fixed stride. ``None``: not that case.
    """
    base = 64 + 32 * n
    if n == 0 or len(raw) != base + n * _ONE_WORD_TUPLE:
        return None
    prefix, columns = _uniform_layout(n)
    if not raw.startswith(prefix):
        return None
    for k, column in enumerate(columns):
        if raw[base + k :: _ONE_WORD_TUPLE] != column:
            return None
    return [raw[i : i + 32] for i in range(base + 96, len(raw), _ONE_WORD_TUPLE)]
