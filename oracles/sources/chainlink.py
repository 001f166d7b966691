"""Chainlink-shaped on-chain feeds, read as raw ``eth_call``s through the chain's RPC pool.

``ChainlinkFeed`` reads ``latestRoundData()`` and ``decimals()`` in one JSON-RPC batch on
every fetch: decimals are re-read each time, a change is logged and the answer normalized with
the new value. ``updatedAt`` is the quote's timestamp; ``answeredInRound`` is ignored (it
proves nothing on OCR feeds). Whether the answer is usable (> 0, fresh, not future-dated) is
decided by ``oracles.validity``, so a zero, a stale round and a revert keep distinct reasons.

``SequencerUptimeFeed`` reads an L2 sequencer-uptime feed (same ABI: answer 0 = up, 1 = down,
``startedAt`` = since when) and classifies it with ``oracles.sequencer``; it is never checked
for staleness (those feeds only update on a status change).

Calldata is built from fixed selectors and returns are decoded by slicing; no web3.py on the
poll path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from core.errors import CrossmarginError, ExecutionReverted
from core.requester import Requester
from oracles.model import DropReason, SourceKind, SourceQuote
from oracles.sequencer import SequencerStatus, sequencer_status
from oracles.sources.base import SourceFault, eth_call, sint, uint, words

log = logging.getLogger(__name__)

LATEST_ROUND_DATA = "0xfeaf968c"  # latestRoundData() -> (uint80, int256, uint256, uint256, uint80)
DECIMALS = "0x313ce567"  # decimals() -> uint8
ROUND_DATA_WORDS = 5
MAX_FEED_DECIMALS = 77  # a uint256 has 78 digits; anything above is not a price scale

DEFAULT_FEED_POLL_INTERVAL_S = 10.0
DEFAULT_SEQUENCER_POLL_INTERVAL_S = 2.0  # how late an outage may be noticed, at most
DEFAULT_FEED_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class RoundData:
    """The fields of ``latestRoundData()`` this code uses."""

    answer: int
    started_at: int
    updated_at: int


def rpc_fault(exc: BaseException, what: str) -> SourceFault:
    """A failed RPC call as a source fault: a revert is ``REVERTED``, anything else a fetch
    failure (the pool's messages already show redacted endpoint URLs only)."""
    if isinstance(exc, ExecutionReverted):
        return SourceFault(DropReason.REVERTED, f"{what}: {exc}")
    return SourceFault(DropReason.FETCH_FAILED, f"{what}: {exc}")


def decode_round_data(result: Any) -> RoundData:
    """Decode the five words of ``latestRoundData()``."""
    w = words(result, ROUND_DATA_WORDS, "latestRoundData()")
    return RoundData(answer=sint(w[1]), started_at=uint(w[2]), updated_at=uint(w[3]))


def decode_decimals(result: Any) -> int:
    """Decode ``decimals()``; values that cannot be a price scale are ``MALFORMED``."""
    value = uint(words(result, 1, "decimals()")[0])
    if value > MAX_FEED_DECIMALS:
        raise SourceFault(DropReason.MALFORMED, f"decimals() returned {value}")
    return value


async def read_round_data(rpc: Requester, address: str) -> RoundData:
    """``latestRoundData()`` of ``address`` at the latest block (raises ``SourceFault``)."""
    try:
        result = await rpc.request(*eth_call(address, LATEST_ROUND_DATA))
    except CrossmarginError as exc:
        raise rpc_fault(exc, "latestRoundData()") from None
    return decode_round_data(result)


@dataclass(slots=True, kw_only=True)
class ChainlinkFeed:
    """An AggregatorV3-compatible price feed on one chain."""

    source_id: str
    chain: str
    address: str
    rpc: Requester
    max_age_s: float
    poll_interval_s: float = DEFAULT_FEED_POLL_INTERVAL_S
    timeout_s: float = DEFAULT_FEED_TIMEOUT_S
    kind: SourceKind = SourceKind.CHAINLINK
    decimals: int | None = field(default=None, init=False)
    """The decimals read last time (a change is logged)."""

    async def fetch(self) -> SourceQuote:
        """One ``latestRoundData()`` + ``decimals()`` batch, as a quote."""
        try:
            data, decimals = await self._read()
        except SourceFault as fault:
            return fault.quote(self.source_id, self.kind)
        if self.decimals is not None and decimals != self.decimals:
            log.warning(
                "oracle.feed_decimals_changed source=%s chain=%s address=%s old=%d new=%d",
                self.source_id,
                self.chain,
                self.address,
                self.decimals,
                decimals,
            )
        self.decimals = decimals
        return SourceQuote.chainlink(
            self.source_id,
            answer=data.answer,
            decimals=decimals,
            updated_at=data.updated_at,
            max_age_s=self.max_age_s,
        )

    async def _read(self) -> tuple[RoundData, int]:
        calls = [eth_call(self.address, LATEST_ROUND_DATA), eth_call(self.address, DECIMALS)]
        try:
            round_result, decimals_result = await self.rpc.batch(calls)
        except CrossmarginError as exc:
            raise rpc_fault(exc, "latestRoundData()") from None
        if isinstance(round_result, BaseException):
            raise rpc_fault(round_result, "latestRoundData()")
        if isinstance(decimals_result, BaseException):
            raise rpc_fault(decimals_result, "decimals()")
        return decode_round_data(round_result), decode_decimals(decimals_result)


@dataclass(frozen=True, slots=True, kw_only=True)
class SequencerReading:
    """One reading of a chain's sequencer-uptime feed, classified at any time by ``status``.

    ``answer``/``started_at`` are ``None`` when the read failed (``detail`` says why); such a
    reading classifies as ``DOWN``: a chain whose sequencer cannot be confirmed up is not
    trusted. The grace period is measured from ``started_at``, so a reading taken during it
    turns ``UP`` by itself once the period is over.
    """

    chain: str
    answer: int | None
    started_at: int | None
    grace_period_s: float
    checked_at: float
    detail: str = ""

    def status(self, now: float) -> SequencerStatus:
        """``UP``, ``GRACE`` or ``DOWN`` at ``now`` (unix s)."""
        return sequencer_status(self.answer, self.started_at, now, self.grace_period_s)


@dataclass(slots=True, kw_only=True)
class SequencerUptimeFeed:
    """The Chainlink L2 sequencer-uptime feed of one chain."""

    chain: str
    address: str
    rpc: Requester
    grace_period_s: float
    poll_interval_s: float = DEFAULT_SEQUENCER_POLL_INTERVAL_S
    timeout_s: float = DEFAULT_FEED_TIMEOUT_S

    async def read(self, now: float) -> SequencerReading:
        """Read the feed; ``now`` (unix s) is recorded as the reading's time."""
        try:
            data = await read_round_data(self.rpc, self.address)
        except SourceFault as fault:
            return self.failed(now, fault.detail)
        return SequencerReading(
            chain=self.chain,
            answer=data.answer,
            started_at=data.started_at,
            grace_period_s=self.grace_period_s,
            checked_at=now,
        )

    def failed(self, now: float, detail: str) -> SequencerReading:
        """A reading for a read that failed or timed out (classifies as ``DOWN``)."""
        return SequencerReading(
            chain=self.chain,
            answer=None,
            started_at=None,
            grace_period_s=self.grace_period_s,
            checked_at=now,
            detail=detail,
        )
