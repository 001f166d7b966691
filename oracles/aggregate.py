"""One asset's price, round after round: validity → agreement → anchor → jump breaker.

Each call of ``AssetAggregator.round`` takes every source's quote for the asset and returns an
``AssetPrice``. The steps, in order:

1. **Validity** (``oracles.validity``): each quote on its own; failures are dropped with
   their reason. ``UNISWAP_V3_TWAP`` quotes are anchors and never enter the median.
2. **Agreement**: with three or more valid sources, those further than ``max_deviation``
   from their median are dropped as ``OUTLIER``. A median of two is their mean and protects
   nothing, so two sources (whether two were valid or two survived the outlier step) must
   agree within ``max_deviation`` (``max/min − 1``) or both are dropped as ``DISAGREE``. The
   rest must number at least ``min_sources``. The round price is the exact median of them.
3. **Anchor**: if a valid anchor exists (median of anchors if several), a round price further
   than ``anchor_tolerance`` from it is vetoed. An anchor never sets a price.
4. **Jump breaker**: a round price more than ``max_jump`` away from the last accepted price
   starts (or continues) a *pending jump*. The jump is confirmed by the next quorum round
   whose price is also more than ``max_jump`` away **in the same direction** and that carries
   fresh data (a source timestamp newer than any counted before). On the ``confirm_rounds``-th
   confirmation the *latest* round price is accepted — so a crash that keeps falling while it
   is being confirmed still gets through, at its current level. A round that repeats old data
   neither counts nor resets; any round that is not a quorum for the move (no quorum, veto,
   a price back within ``max_jump`` — accepted directly — or the other direction) resets it.
   One manipulated source never gets here: it is an outlier (≥ 3 sources) or makes two
   sources disagree.

Status of the round (first match wins); whenever it is not ``OK`` the last good price (and
its confidence band and ``observed_at``) is held, or ``None`` if there never was one:

| condition                                           | status   | hold_reason      |
|-----------------------------------------------------|----------|------------------|
| no valid primary source                             | STALE    | NO_VALID_SOURCE  |
| exactly two agreeing candidates differ > max_dev    | DEGRADED | SOURCES_DISAGREE |
| fewer than ``min_sources`` agree                    | DEGRADED | NO_QUORUM        |
| the anchor vetoes the round price                   | DEGRADED | ANCHOR_VETO      |
| a jump is pending (< confirm_rounds confirmations)  | TRIPPED  | JUMP_PENDING     |
| otherwise (new price accepted)                      | OK       | —                |

Recovery needs no restart: the first round that meets the conditions again is ``OK`` (after
``confirm_rounds`` rounds if the price moved more than ``max_jump`` meanwhile). The very first
price has nothing to jump from and is accepted on quorum alone.

**Restart.** ``AssetAggregator.state`` (also carried on every ``AssetPrice`` as ``resume``)
is everything the rules above read from earlier rounds: the last good price, the pending jump
with its confirmations and the newest evidence counted, and the volatility estimator. An
aggregator built with ``state=`` that snapshot decides every later round exactly as the one
that took it: a restart during a trip stays tripped until the sources confirm the move.

Accepted prices feed the EWMA volatility (at the round time). The accepted price's
``observed_at`` is the *oldest* timestamp among the sources used, so its age is never
understated. With ``confidence_bands``, if any used source carries a confidence, the widest
relative one (``conf/price``) is applied to the median: ``price_low`` (collateral) rounded
down and ``price_high`` (debt) rounded up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import ROUND_CEILING, Context, Decimal

from core.domain import PriceStatus
from oracles.model import (
    EXACT,
    AcceptedPrice,
    AggregatorState,
    AssetPrice,
    DropReason,
    HoldReason,
    OracleParams,
    PendingJump,
    SourceQuote,
    exact_median,
    ratio,
)
from oracles.validity import validate
from oracles.volatility import EwmaVolatility

BAND_DIGITS = 40  # significant digits of a confidence half-width (rounded up)

_STATUS_OF_HOLD = {
    HoldReason.NO_VALID_SOURCE: PriceStatus.STALE,
    HoldReason.SOURCES_DISAGREE: PriceStatus.DEGRADED,
    HoldReason.NO_QUORUM: PriceStatus.DEGRADED,
    HoldReason.ANCHOR_VETO: PriceStatus.DEGRADED,
    HoldReason.JUMP_PENDING: PriceStatus.TRIPPED,
}
# What the agreeing sources of a held round are marked with in ``dropped``.
_DROP_OF_HOLD = {
    HoldReason.NO_QUORUM: DropReason.NO_QUORUM,
    HoldReason.ANCHOR_VETO: DropReason.ANCHOR_VETO,
    HoldReason.JUMP_PENDING: DropReason.JUMP_UNCONFIRMED,
}
_BAND_CONTEXT = Context(prec=BAND_DIGITS, rounding=ROUND_CEILING)


def _price(quote: SourceQuote) -> Decimal:
    assert quote.price is not None  # validity guarantees it for every quote used here
    return quote.price


def _seen_at(quote: SourceQuote) -> float:
    assert quote.observed_at is not None  # validity guarantees it for every quote used here
    return quote.observed_at


class AssetAggregator:
    """Aggregates one asset's sources round after round, holding the breaker state.

    ``state`` resumes what a previous process persisted (``AssetPrice.resume`` of its last
    stored round): last good price, pending jump and volatility, as if it had never stopped.
    """

    def __init__(
        self,
        *,
        symbol: str,
        params: OracleParams,
        state: AggregatorState | None = None,
    ) -> None:
        resumed = state or AggregatorState()
        self._symbol = symbol
        self._params = params
        self._max_deviation = ratio(params.max_deviation)
        self._max_jump = ratio(params.max_jump)
        self._anchor_tolerance = ratio(params.anchor_tolerance)
        self._last_good = resumed.last_good
        self._pending = resumed.pending
        self._status = resumed.status
        self._volatility = EwmaVolatility(
            lambda_=params.ewma_lambda,
            floor=params.volatility_floor,
            interval_s=params.ewma_interval_s,
            state=resumed.volatility,
        )

    @property
    def last_good(self) -> AcceptedPrice | None:
        """The last accepted price (persist it to resume after a restart)."""
        return self._last_good

    @property
    def pending(self) -> PendingJump | None:
        """The jump awaiting confirmation, if any."""
        return self._pending

    @property
    def state(self) -> AggregatorState:
        """Everything later rounds depend on (persist it; pass it back as ``state=``)."""
        return AggregatorState(
            last_good=self._last_good,
            pending=self._pending,
            volatility=self._volatility.state,
            status=self._status,
        )

    def round(self, quotes: Iterable[SourceQuote], now: float) -> AssetPrice:
        """Run one round over every source's quote for this asset at ``now`` (unix s)."""
        dropped: dict[str, DropReason] = {}
        primaries: list[SourceQuote] = []
        anchors: list[SourceQuote] = []
        seen: set[str] = set()
        for quote in quotes:
            if quote.source_id in seen:
                raise ValueError(f"source {quote.source_id!r} quoted twice in one round")
            seen.add(quote.source_id)
            reason = validate(quote, self._params, now)
            if reason is not None:
                dropped[quote.source_id] = reason
            else:
                (anchors if quote.kind.is_anchor else primaries).append(quote)
        agreeing, hold = self._agree(primaries, dropped)
        round_price = exact_median([_price(q) for q in agreeing]) if agreeing else None
        spread = self._spread(agreeing)
        if hold is None and round_price is not None:
            hold = self._veto(round_price, anchors) or self._jump(round_price, agreeing, now)
        shown: AcceptedPrice | None
        if hold is None:
            assert round_price is not None  # no hold only after a quorum
            shown = self._accept(round_price, agreeing, now)
            used = tuple(q.source_id for q in agreeing)
        else:
            if hold is not HoldReason.JUMP_PENDING:
                self._pending = None
            for quote in agreeing:
                dropped[quote.source_id] = _DROP_OF_HOLD[hold]
            shown, used = self._last_good, ()
        self._status = PriceStatus.OK if hold is None else _STATUS_OF_HOLD[hold]
        return AssetPrice(
            symbol=self._symbol,
            status=self._status,
            price=None if shown is None else shown.price,
            price_low=None if shown is None else shown.price_low,
            price_high=None if shown is None else shown.price_high,
            observed_at=None if shown is None else shown.observed_at,
            held=hold is not None and shown is not None,
            hold_reason=hold,
            used=used,
            anchors=tuple(q.source_id for q in anchors),
            dropped=dropped,
            round_price=round_price,
            spread=spread,
            volatility=self._volatility.annualized,
            pending=self._pending,
            round_at=now,
            resume=self.state,
        )

    def _agree(
        self, primaries: list[SourceQuote], dropped: dict[str, DropReason]
    ) -> tuple[list[SourceQuote], HoldReason | None]:
        """Drop outliers and disagreeing pairs; return the agreeing sources and any hold."""
        if not primaries:
            return [], HoldReason.NO_VALID_SOURCE
        agreeing = primaries
        if len(primaries) >= 3:  # with two, the "median" is their mean: the pair rule decides
            median = exact_median([_price(q) for q in primaries])
            limit = EXACT.multiply(self._max_deviation, median)
            agreeing = []
            for quote in primaries:
                if abs(EXACT.subtract(_price(quote), median)) > limit:
                    dropped[quote.source_id] = DropReason.OUTLIER
                else:
                    agreeing.append(quote)
        if len(agreeing) == 2:
            low, high = sorted(_price(q) for q in agreeing)
            if EXACT.subtract(high, low) > EXACT.multiply(self._max_deviation, low):
                for quote in agreeing:
                    dropped[quote.source_id] = DropReason.DISAGREE
                return [], HoldReason.SOURCES_DISAGREE
        if len(agreeing) < self._params.min_sources:
            return agreeing, HoldReason.NO_QUORUM
        return agreeing, None

    def _veto(self, price: Decimal, anchors: list[SourceQuote]) -> HoldReason | None:
        """ANCHOR_VETO when the round price is outside ``anchor_tolerance`` of the anchor."""
        if not anchors:
            return None
        anchor = exact_median([_price(q) for q in anchors])
        limit = EXACT.multiply(self._anchor_tolerance, anchor)
        if abs(EXACT.subtract(price, anchor)) > limit:
            return HoldReason.ANCHOR_VETO
        return None

    def _jump(self, price: Decimal, agreeing: list[SourceQuote], now: float) -> HoldReason | None:
        """Advance the jump breaker; JUMP_PENDING while a jump lacks confirmations."""
        last = self._last_good
        if last is None:
            return None
        move = EXACT.subtract(price, last.price)
        if abs(move) <= EXACT.multiply(self._max_jump, last.price):
            return None
        direction = 1 if move > 0 else -1
        newest = max(_seen_at(q) for q in agreeing)
        pending = self._pending
        if pending is None or pending.direction != direction:
            pending = PendingJump(
                direction=direction,
                price=price,
                confirmations=1,
                evidence_at=newest,
                first_seen_at=now,
            )
        elif newest > pending.evidence_at:
            pending = dataclasses.replace(
                pending, price=price, confirmations=pending.confirmations + 1, evidence_at=newest
            )
        else:  # the same data again: not a new confirmation, not a reset
            pending = dataclasses.replace(pending, price=price)
        if pending.confirmations >= self._params.confirm_rounds:
            self._pending = None
            return None
        self._pending = pending
        return HoldReason.JUMP_PENDING

    def _accept(self, price: Decimal, used: list[SourceQuote], now: float) -> AcceptedPrice:
        low, high = self._band(price, used)
        accepted = AcceptedPrice(
            price=price,
            price_low=low,
            price_high=high,
            observed_at=min(_seen_at(q) for q in used),
            accepted_at=now,
        )
        self._last_good = accepted
        self._pending = None
        self._volatility.update(price, now)
        return accepted

    def _band(self, price: Decimal, used: list[SourceQuote]) -> tuple[Decimal, Decimal]:
        """``price ∓ price·max(conf/price)`` over used sources, widened by rounding."""
        if not self._params.confidence_bands:
            return price, price
        widths = [
            _BAND_CONTEXT.divide(_BAND_CONTEXT.multiply(price, q.confidence), _price(q))
            for q in used
            if q.confidence is not None
        ]
        if not widths:
            return price, price
        width = max(widths)
        return EXACT.subtract(price, width), EXACT.add(price, width)

    @staticmethod
    def _spread(agreeing: list[SourceQuote]) -> float | None:
        if not agreeing:
            return None
        prices = [_price(q) for q in agreeing]
        return float(max(prices)) / float(min(prices)) - 1.0
