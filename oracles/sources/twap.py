"""Uniswap v3 TWAP anchor: ``observe([window_s, 0])`` on a pool, over the chain's RPC pool.

The quote is an anchor (``SourceKind.UNISWAP_V3_TWAP``): the aggregator lets it veto a round
price further than ``anchor_tolerance`` from it, never set one. The tick cumulatives and the
latest block's timestamp (the quote's time: the TWAP ends there) are read in one JSON-RPC
batch; the price math is ``oracles.twap``. A pool whose history is shorter than the window
reverts (``OLD``) and is reported as ``REVERTED``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import CrossmarginError
from core.requester import Requester
from oracles.model import DropReason, SourceKind, SourceQuote
from oracles.sources.base import SourceFault, eth_call, sint, uint, words
from oracles.sources.chainlink import rpc_fault
from oracles.twap import twap_price_from_ticks

OBSERVE = "0x883bdbfd"  # observe(uint32[]) -> (int56[], uint160[])
MAX_WINDOW_S = 2**32 - 1  # secondsAgos are uint32
DEFAULT_TWAP_WINDOW_S = 1_800
DEFAULT_TWAP_POLL_INTERVAL_S = 30.0
DEFAULT_TWAP_TIMEOUT_S = 5.0


def observe_calldata(window_s: int) -> str:
    """``observe([window_s, 0])`` calldata."""
    if not 0 < window_s <= MAX_WINDOW_S:
        raise ValueError(f"window_s must be in (0, {MAX_WINDOW_S}]")
    return OBSERVE + "".join(f"{v:064x}" for v in (0x20, 2, window_s, 0))


def decode_tick_cumulatives(result: Any) -> tuple[int, int]:
    """The two tick cumulatives of an ``observe([window, 0])`` return."""
    w = words(result, 2, "observe()")
    start = uint(w[0]) // 32
    if uint(w[0]) % 32 or start + 2 >= len(w) or uint(w[start]) != 2:
        raise SourceFault(DropReason.MALFORMED, "observe() returned an unexpected layout")
    return sint(w[start + 1]), sint(w[start + 2])


@dataclass(slots=True, kw_only=True)
class UniswapV3TwapSource:
    """The TWAP of a Uniswap v3 pool over ``window_s``: price of token0 in token1 (in whole
    tokens), or of token1 in token0 when ``invert``."""

    source_id: str
    chain: str
    address: str
    rpc: Requester
    max_age_s: float
    window_s: int = DEFAULT_TWAP_WINDOW_S
    decimals0: int
    decimals1: int
    invert: bool = False
    poll_interval_s: float = DEFAULT_TWAP_POLL_INTERVAL_S
    timeout_s: float = DEFAULT_TWAP_TIMEOUT_S
    kind: SourceKind = SourceKind.UNISWAP_V3_TWAP

    async def fetch(self) -> SourceQuote:
        """Read the window's tick cumulatives and turn them into an anchor quote."""
        calls = [
            ("eth_getBlockByNumber", ["latest", False]),
            eth_call(self.address, observe_calldata(self.window_s)),
        ]
        try:
            try:
                block, observed = await self.rpc.batch(calls)
            except CrossmarginError as exc:
                raise rpc_fault(exc, "observe()") from None
            if isinstance(block, BaseException):
                raise rpc_fault(block, "eth_getBlockByNumber")
            if isinstance(observed, BaseException):
                raise rpc_fault(observed, "observe()")
            start, end = decode_tick_cumulatives(observed)
            try:
                price = twap_price_from_ticks(
                    start, end, self.window_s, self.decimals0, self.decimals1, invert=self.invert
                )
                block_time = int(block["timestamp"], 16)
            except (ValueError, TypeError, KeyError) as exc:
                raise SourceFault(DropReason.MALFORMED, f"observe(): {exc}") from None
        except SourceFault as fault:
            return fault.quote(self.source_id, self.kind)
        return SourceQuote(
            source_id=self.source_id,
            kind=self.kind,
            price=price,
            observed_at=float(block_time),
            max_age_s=self.max_age_s,
        )
