"""Per-source validity: each quote is judged on its own, before any source is compared.

The checks run in a fixed order and the first failure is the reason, so one cause has one
name: a reverted call is ``REVERTED`` (never "stale"), a zero answer ``ZERO_OR_NEGATIVE``
(never "out of bounds"), an ``updatedAt`` of 0 ``NO_TIMESTAMP`` (never "stale").

1. the poller reported a failure (``REVERTED``, ``FETCH_FAILED``, ``MALFORMED``);
2. no price, not a finite number, or absurd in size (magnitude beyond 10^±``MAX_PRICE_EXPONENT``
   or more than ``MAX_PRICE_DIGITS`` digits — exact arithmetic on such a number from a broken
   or hostile HTTP source would take unbounded time and memory) → ``MALFORMED``;
3. price ≤ 0 → ``ZERO_OR_NEGATIVE``;
4. no timestamp, or ≤ 0 → ``NO_TIMESTAMP``;
5. timestamp later than now + ``future_tolerance_s`` → ``FUTURE_TIMESTAMP``;
6. age > the source's ``max_age_s`` → ``STALE``;
7. outside the asset's ``[min_price, max_price]`` → ``OUT_OF_BOUNDS`` (inclusive bounds);
8. confidence < 0 or absurd in size (as in 2) → ``MALFORMED``;
   confidence / price > ``max_confidence_ratio`` → ``CONFIDENCE_TOO_WIDE``.

Sequencer-uptime feeds are not quotes and are never checked for staleness
(see ``oracles.sequencer``).
"""

from __future__ import annotations

from decimal import Decimal

from oracles.model import EXACT, DropReason, OracleParams, SourceQuote, ratio

MAX_PRICE_EXPONENT = 40  # |log10(price)| bound: no asset is worth 10^40 or 10^-40 of another
MAX_PRICE_DIGITS = 80  # significant digits (a uint256 has 78)


def validate(quote: SourceQuote, params: OracleParams, now: float) -> DropReason | None:
    """Return why ``quote`` is unusable at ``now`` (unix seconds), or ``None`` if it is valid."""
    if quote.failure is not None:
        return quote.failure
    price = quote.price
    if price is None or not _sane_number(price):
        return DropReason.MALFORMED
    if price <= 0:
        return DropReason.ZERO_OR_NEGATIVE
    observed_at = quote.observed_at
    if observed_at is None or not observed_at > 0:  # `not >` also rejects NaN
        return DropReason.NO_TIMESTAMP
    if observed_at > now + params.future_tolerance_s:
        return DropReason.FUTURE_TIMESTAMP
    if now - observed_at > quote.max_age_s:
        return DropReason.STALE
    if (params.min_price is not None and price < params.min_price) or (
        params.max_price is not None and price > params.max_price
    ):
        return DropReason.OUT_OF_BOUNDS
    return _confidence_reason(quote.confidence, price, params)


def _sane_number(value: Decimal) -> bool:
    """Finite, within 10^±MAX_PRICE_EXPONENT and at most MAX_PRICE_DIGITS digits long."""
    if not value.is_finite():
        return False
    if value.is_zero():
        return True  # reported as ZERO_OR_NEGATIVE, whatever its exponent
    digits = value.as_tuple().digits
    return abs(value.adjusted()) <= MAX_PRICE_EXPONENT and len(digits) <= MAX_PRICE_DIGITS


def _confidence_reason(
    confidence: Decimal | None, price: Decimal, params: OracleParams
) -> DropReason | None:
    if confidence is None:
        return None
    if not _sane_number(confidence) or confidence < 0:
        return DropReason.MALFORMED
    # conf/price > r  ⇔  conf > r·price; compared exactly, r taken as written in config.
    if confidence > EXACT.multiply(ratio(params.max_confidence_ratio), price):
        return DropReason.CONFIDENCE_TOO_WIDE
    return None
