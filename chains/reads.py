"""Batched, block-pinned balance reads through Multicall3 ``aggregate3``.

Every read of a cycle is pinned to one block by hash (EIP-1898), so a reorg cannot mix two
chains' states into one snapshot; chunks adapt to what the node accepts
(``chains.pinned_calls``). A call that still fails alone is a failed read, never a zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from chains.blocks import BlockRef
from chains.multicall import (
    DECIMALS_SELECTOR,
    decode_aggregate3,
    decode_uint,
    encode_aggregate3,
    encode_balance_of_aggregate3,
    encode_call,
)
from chains.pinned_calls import PinnedAggregate
from core.requester import Requester

DEFAULT_BATCH_SIZE = 1000  # calls per aggregate3; ~224 KB of calldata, well under 2 MB bodies
DEFAULT_CONCURRENCY = 4  # aggregate3 requests in flight per chain
MAX_DECIMALS = 77  # 10**77 < 2**256 ≤ 10**78: a larger decimals() is absurd


Pair = tuple[str, str]
"""(account address, token address) of one chain, both lower-case 0x-hex: a holding's key in
the order used everywhere, (account, chain, token), with the chain implied."""


class BalanceReader(PinnedAggregate):
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
        super().__init__(
            kind="chain",
            name=chain,
            requester=requester,
            multicall_address=multicall_address,
            override_code=override_code,
            batch_size=batch_size,
            concurrency=concurrency,
            single_failure_is_none=True,
        )
        self.chain = chain

    async def balances(self, pairs: Sequence[Pair], block: BlockRef) -> list[int | None]:
        """``balanceOf`` for every pair at ``block``; ``None`` marks a failed read."""
        words = await self.run(pairs, encode_balance_of_aggregate3, decode_aggregate3, block)
        return [decode_uint(word) for word in words]

    async def call_words(
        self, calls: Sequence[tuple[str, str]], block: BlockRef
    ) -> list[bytes | None]:
        """Arbitrary single-word calls ``(target, calldata hex)`` at ``block``."""
        tuples = [encode_call(t, d) for t, d in calls]
        return await self.run(tuples, encode_aggregate3, decode_aggregate3, block)

    async def decimals(self, tokens: Sequence[str], block: BlockRef) -> list[int | None]:
        """``decimals()`` of each token (``None`` when it fails or is absurd)."""
        words = await self.call_words([(t, DECIMALS_SELECTOR) for t in tokens], block)
        values = [decode_uint(w) for w in words]
        return [v if v is not None and v <= MAX_DECIMALS else None for v in values]
