"""Block-pinned batches of arbitrary view calls through Multicall3 ``aggregate3``.

The balance reader's chunking (``chains.pinned_calls``) with returns of any number of words:
structs (``getReserveData``), tuples (``position``), dynamic arrays. A call that still fails
alone raises: a venue read is whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from chains.blocks import BlockRef
from chains.multicall import decode_aggregate3_data, encode_aggregate3, encode_call
from chains.pinned_calls import PinnedAggregate
from core.requester import Requester

DEFAULT_BATCH_SIZE = 500  # calls per aggregate3 (venue calls cost more gas than balanceOf)
DEFAULT_CONCURRENCY = 4  # aggregate3 requests in flight per venue
CALL_GAS = 1_000_000_000  # explicit gas of one aggregate3 eth_call: bounded (see FIELD-NOTES)

Call = tuple[str, str]
"""(target address, calldata hex without 0x)."""


class PinnedCaller(PinnedAggregate):
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
        super().__init__(
            kind="venue",
            name=name,
            requester=requester,
            multicall_address=multicall_address,
            override_code=override_code,
            batch_size=batch_size,
            concurrency=concurrency,
            gas=CALL_GAS,
        )
        self.calls_made = 0

    async def call_many(self, calls: Sequence[Call], block: BlockRef) -> list[bytes | None]:
        """Return data of every call at ``block``; ``None`` marks a call that reverted."""
        return await self.call_encoded([encode_call(target, data) for target, data in calls], block)

    async def call_encoded(self, tuples: Sequence[str], block: BlockRef) -> list[bytes | None]:
        """Like ``call_many`` for ``Call3`` tuples already encoded (``account_call``)."""
        returned = await self.run(tuples, encode_aggregate3, decode_aggregate3_data, block)
        self.calls_made += len(tuples)
        return returned


ACCOUNT_ARG_PAD = "0" * 56  # 4 + 32 calldata bytes padded to 64


def account_call_prefix(target: str, selector_hex: str) -> str:
    """Everything of the ``Call3`` tuple ``target.f(account)`` before the account word:
    ``prefix + address_word(account) + ACCOUNT_ARG_PAD`` is the whole tuple (one
    concatenation per call on the hot path instead of a generic encode)."""
    full = encode_call(target, selector_hex + "0" * 64)
    return full[: len(full) - 64 - len(ACCOUNT_ARG_PAD)]
