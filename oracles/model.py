"""Plain data of the multi-source oracle: what sources report, how an asset is configured, and
what one aggregation round returns.

Prices are ``Decimal``. Every source answers in an exact form — Chainlink an ``int256`` with
``decimals``, Pyth an ``int64`` with an exponent, HTTP APIs a decimal string — and a
``Decimal`` holds each of those exactly, so a normalized feed price compares equal to the
value the chain returned and a median of two can be computed without rounding. Floats appear
only for ratios (thresholds, spread) and for volatility, where rounding does not matter.

Timestamps are unix seconds (``float``); ``observed_at`` is always the *source's* clock
(Chainlink ``updatedAt``, Pyth ``publish_time``, the exchange's server time), never the time
the daemon happened to fetch it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

from core.amounts import scaled
from core.domain import PriceStatus
from oracles.volatility import DEFAULT_INTERVAL_S, DEFAULT_LAMBDA, VolatilityState

DEFAULT_MIN_SOURCES = 2
DEFAULT_MAX_DEVIATION = 0.02  # fraction of the median
DEFAULT_MAX_JUMP = 0.2  # fraction of the last accepted price
DEFAULT_CONFIRM_ROUNDS = 3  # consecutive quorum rounds
DEFAULT_ANCHOR_TOLERANCE = 0.1  # fraction of the TWAP anchor price
DEFAULT_MAX_CONFIDENCE_RATIO = 0.02  # Pyth-style conf / price
DEFAULT_FUTURE_TOLERANCE_S = 5.0  # clock skew allowed between a source's clock and ours

#: Decimal arithmetic that never rounds: an inexact result raises ``Inexact`` instead. Use it
#: for +, −, × and halving only (a division that does not terminate would never finish).
EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
_HALF = Decimal("0.5")


def ratio(value: float) -> Decimal:
    """A configured ratio as the decimal it was written as (``0.02`` → ``Decimal("0.02")``)."""
    return Decimal(repr(value))


def exact_median(prices: list[Decimal]) -> Decimal:
    """The median of ``prices``, exactly (the mean of the middle two for an even count)."""
    if not prices:
        raise ValueError("median of no prices")
    ordered = sorted(prices)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return EXACT.multiply(EXACT.add(ordered[mid - 1], ordered[mid]), _HALF)


class SourceKind(enum.StrEnum):
    """Where a quote comes from; ``UNISWAP_V3_TWAP`` quotes are anchors, never primaries."""

    CHAINLINK = "chainlink"
    PYTH = "pyth"
    HTTP = "http"
    UNISWAP_V3_TWAP = "uniswap_v3_twap"

    @property
    def is_anchor(self) -> bool:
        """True for kinds that may veto a price but never set one."""
        return self is SourceKind.UNISWAP_V3_TWAP


class DropReason(enum.StrEnum):
    """Why a source did not contribute to this round's price (one per source and round)."""

    # reported by the I/O layer (a quote that carries no price)
    REVERTED = "reverted"  # the call reverted (a shut-down Chainlink feed does this)
    FETCH_FAILED = "fetch_failed"  # transport fault, timeout, HTTP error
    MALFORMED = "malformed"  # an answer that cannot be read as a price
    # per-source validity (oracles.validity)
    ZERO_OR_NEGATIVE = "zero_or_negative"
    NO_TIMESTAMP = "no_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE = "stale"
    OUT_OF_BOUNDS = "out_of_bounds"
    CONFIDENCE_TOO_WIDE = "confidence_too_wide"
    # agreement between sources (oracles.aggregate)
    OUTLIER = "outlier"  # further than max_deviation from the median
    DISAGREE = "disagree"  # one of exactly two sources that differ by more than max_deviation
    # valid and agreeing, but the round as a whole held the last good price
    NO_QUORUM = "no_quorum"
    ANCHOR_VETO = "anchor_veto"
    JUMP_UNCONFIRMED = "jump_unconfirmed"
    # the source's chain is not trusted (oracles.service): an L2 whose sequencer is down, in
    # its grace period, or not confirmed up since the quote was read
    SEQUENCER_DOWN = "sequencer_down"


#: The reasons a poller may put on a failed quote; the others are decided by the pure code.
FETCH_FAILURES = frozenset(
    {
        DropReason.REVERTED,
        DropReason.FETCH_FAILED,
        DropReason.MALFORMED,
        DropReason.SEQUENCER_DOWN,
    }
)


class HoldReason(enum.StrEnum):
    """Why a round held the last good price instead of accepting a new one."""

    NO_VALID_SOURCE = "no_valid_source"
    NO_QUORUM = "no_quorum"
    SOURCES_DISAGREE = "sources_disagree"
    ANCHOR_VETO = "anchor_veto"
    JUMP_PENDING = "jump_pending"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceQuote:
    """One source's answer for one asset in one round, as the I/O layer read it.

    A failed read is a quote too, with ``failure`` set and no price, so every configured
    source shows up in the round's output with a reason. ``max_age_s`` is the source's own
    freshness budget (Chainlink heartbeats differ per feed and per chain).
    """

    source_id: str
    kind: SourceKind
    price: Decimal | None
    observed_at: float | None
    max_age_s: float
    confidence: Decimal | None = None
    failure: DropReason | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.failure is not None and self.failure not in FETCH_FAILURES:
            raise ValueError(f"a poller may only report {sorted(FETCH_FAILURES)} as failure")
        if self.max_age_s < 0:
            raise ValueError("max_age_s must be >= 0")

    @classmethod
    def chainlink(
        cls, source_id: str, *, answer: int, decimals: int, updated_at: int, max_age_s: float
    ) -> SourceQuote:
        """From ``latestRoundData()`` (``answer``, ``updatedAt``) and the feed's ``decimals()``."""
        return cls(
            source_id=source_id,
            kind=SourceKind.CHAINLINK,
            price=scaled(answer, decimals),
            observed_at=float(updated_at),
            max_age_s=max_age_s,
        )

    @classmethod
    def pyth(
        cls,
        source_id: str,
        *,
        price: int,
        conf: int,
        expo: int,
        publish_time: int,
        max_age_s: float,
    ) -> SourceQuote:
        """From a Pyth price (``price`` and ``conf`` are integers scaled by ``10**expo``)."""
        return cls(
            source_id=source_id,
            kind=SourceKind.PYTH,
            price=Decimal(f"{price}E{expo}"),
            observed_at=float(publish_time),
            max_age_s=max_age_s,
            confidence=Decimal(f"{conf}E{expo}"),
        )

    @classmethod
    def failed(
        cls, source_id: str, kind: SourceKind, reason: DropReason, detail: str = ""
    ) -> SourceQuote:
        """A read that produced no price (``reason`` is one of ``FETCH_FAILURES``)."""
        return cls(
            source_id=source_id,
            kind=kind,
            price=None,
            observed_at=None,
            max_age_s=0.0,
            failure=reason,
            detail=detail,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleParams:
    """Per-asset oracle settings (the ``oracle:`` block of an asset, plus its volatility floor).

    Ratios are fractions (``0.02`` = 2 %); they are compared exactly, as the decimal they are
    written as, so a source exactly ``max_deviation`` away is still accepted.
    """

    min_sources: int = DEFAULT_MIN_SOURCES
    max_deviation: float = DEFAULT_MAX_DEVIATION
    max_jump: float = DEFAULT_MAX_JUMP
    confirm_rounds: int = DEFAULT_CONFIRM_ROUNDS
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    volatility_floor: float = 0.0  # annualized
    anchor_tolerance: float = DEFAULT_ANCHOR_TOLERANCE
    max_confidence_ratio: float = DEFAULT_MAX_CONFIDENCE_RATIO
    confidence_bands: bool = True  # value collateral at price − conf, debt at price + conf
    future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S
    ewma_lambda: float = DEFAULT_LAMBDA  # decay per ewma_interval_s (oracles.volatility)
    ewma_interval_s: float = DEFAULT_INTERVAL_S

    def __post_init__(self) -> None:
        problems = [
            ("min_sources", self.min_sources >= 1, "must be >= 1"),
            ("max_deviation", 0 <= self.max_deviation < 1, "must be in [0, 1)"),
            ("max_jump", self.max_jump > 0, "must be > 0"),
            ("confirm_rounds", self.confirm_rounds >= 1, "must be >= 1"),
            ("volatility_floor", self.volatility_floor >= 0, "must be >= 0"),
            ("anchor_tolerance", self.anchor_tolerance >= 0, "must be >= 0"),
            ("max_confidence_ratio", 0 <= self.max_confidence_ratio < 1, "must be in [0, 1)"),
            ("future_tolerance_s", self.future_tolerance_s >= 0, "must be >= 0"),
            ("ewma_lambda", 0 < self.ewma_lambda < 1, "must be in (0, 1)"),
            ("ewma_interval_s", self.ewma_interval_s > 0, "must be > 0"),
            (
                "max_price",
                self.min_price is None or self.max_price is None or self.min_price < self.max_price,
                "must be greater than min_price",
            ),
        ]
        for name, ok, problem in problems:
            if not ok:
                raise ValueError(f"{name} {problem} (got {getattr(self, name)!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedPrice:
    """The last good price of an asset: what is held when a round cannot accept a new one.

    ``price_low``/``price_high`` are the confidence band (equal to ``price`` without one);
    ``observed_at`` is the oldest source timestamp behind the price, ``accepted_at`` the
    round time it was accepted. Persist it to resume after a restart.
    """

    price: Decimal
    price_low: Decimal
    price_high: Decimal
    observed_at: float
    accepted_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingJump:
    """A move beyond ``max_jump`` that a quorum reports and that awaits confirmation."""

    direction: int  # +1 up, −1 down, relative to the last accepted price
    price: Decimal  # the latest quorum median of the move
    confirmations: int  # consecutive quorum rounds (with fresh data) that reported it
    evidence_at: float  # newest source timestamp counted so far
    first_seen_at: float  # round time the move first appeared


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorState:
    """Everything an ``AssetAggregator`` carries from one round to the next.

    Persisted after every round (``oracles.resume`` turns it into JSON) and passed back as
    ``state=`` on restart, so a restarted aggregator decides exactly as one that never
    stopped: a jump pending before the restart keeps its confirmations, a tripped breaker
    stays tripped. ``status`` is the last round's status (for logs and operators; the rules
    never read it).
    """

    last_good: AcceptedPrice | None = None
    pending: PendingJump | None = None
    volatility: VolatilityState | None = None
    status: PriceStatus | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetPrice:
    """The outcome of one round for one asset.

    Every quote of the round appears exactly once: in ``used`` (its price went into the
    median), in ``anchors`` (a valid anchor that was consulted) or in ``dropped`` with the
    reason. ``price`` is the new median when ``status`` is ``OK``, else the held last good
    price (``held`` is then true), or ``None`` when there never was one.
    """

    symbol: str
    status: PriceStatus
    price: Decimal | None
    price_low: Decimal | None  # value collateral at this
    price_high: Decimal | None  # value debt at this
    observed_at: float | None
    held: bool
    hold_reason: HoldReason | None
    used: tuple[str, ...]
    anchors: tuple[str, ...]
    dropped: Mapping[str, DropReason]
    round_price: Decimal | None  # this round's quorum median, accepted or not
    spread: float | None  # max/min − 1 of the agreeing sources this round
    volatility: float  # annualized, never below the floor
    pending: PendingJump | None
    round_at: float
    resume: AggregatorState | None = None  # the aggregator's state after this round (persist it)
