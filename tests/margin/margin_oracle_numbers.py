"""Exact numbers for the margin oracle (``tests/margin_oracle.py``): intervals of value units,
the engine's conservative roundings as float64 may perform them (relative error, and underflow
near zero), the latency shock and tiers.

Where float64 cannot decide. The engine computes in float64 and rounds money to whole *value
units* (``10**-value_decimals`` USD). When the exact argument of a rounding lies within the
engine's float error of a unit boundary, float64 cannot decide the side: every rounded
quantity here is an interval ``Units(lo, hi)``, with ``lo == hi`` when the rounding is decided
(every hand-written case, nearly every generated one) and ``hi = lo + 1`` only when the exact
argument lies within ``NOISE`` of a boundary. Imports nothing from ``margin``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

YEAR_S = 31_536_000
"""DESIGN §3: volatilities are annualized over a 365-day year of seconds."""
FORGIVE = Fraction(1, 2**44)
"""C2: relative distance below a whole unit (in the account's favour) counted as that unit."""
NOISE = Fraction(1, 2**48)
"""Relative float64 error the engine may carry into one rounding: 32 ulps (2**-53 each), four
to eight times the handful of IEEE operations between two roundings (scaled amount, weight,
1 ∓ shock, a sum of a few tier slices, a ratio). Measured against the result, and against
the operands where a difference cancels them (``round_down``'s ``extra``)."""
UNDERFLOW = Fraction(1, 2**1000)
"""Value units within which a non-zero exact argument may come out of float64 as zero: a
product of subnormal size (a position of 5e-324 units of an asset, say) underflows before it
is scaled and rounded. Far below any amount worth a unit (2**-1074 per operation, times a value
scale of at most 2**74), and far above it nothing underflows."""
ROW_CAP = 2**43
"""C3: saturation of one line's |value| in value units."""
SQRT_BITS = 128
"""Precision of the bracket around the square root of the latency horizon."""

Schedule = tuple[tuple[float, float | None], ...]
"""Tiers as ``((rate, up_to_usd), …, (rate, None))``; one ``(weight, None)`` is flat."""


@dataclass(frozen=True)
class Units:
    """Whole value units the engine may report: exactly ``lo`` when ``lo == hi``."""

    lo: int
    hi: int

    def __add__(self, other: Units) -> Units:
        return Units(self.lo + other.lo, self.hi + other.hi)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.lo <= value <= self.hi

    @property
    def exact(self) -> bool:
        """Whether float64 can decide every rounding behind this number."""
        return self.lo == self.hi


ZERO = Units(0, 0)
Span = tuple[Fraction, Fraction]
"""An exact rational known to lie in ``[lo, hi]`` (an irrational shock, or rounded inputs)."""


def _down(x: Fraction) -> int:
    return math.floor(x + abs(x) * FORGIVE)  # C2


def _up(x: Fraction) -> int:
    return math.ceil(x - abs(x) * FORGIVE)  # C2


def _clip(x: Fraction) -> Fraction:
    return min(max(x, Fraction(-ROW_CAP)), Fraction(ROW_CAP))  # C3


def _noisy(x: Span, extra: Fraction, capped: bool) -> Span:
    noise = (max(abs(x[0]), abs(x[1])) + extra) * NOISE
    lo, hi = x[0] - noise, x[1] + noise
    # underflow: a non-zero argument within UNDERFLOW of zero may come out as zero, never
    # with the other sign (an exact zero stays exactly zero)
    if 0 < x[0] <= UNDERFLOW:
        lo = Fraction(0)
    if -UNDERFLOW <= x[1] < 0:
        hi = Fraction(0)
    return (_clip(lo), _clip(hi)) if capped else (lo, hi)


def round_down(x: Span, extra: Fraction = Fraction(0), *, capped: bool = False) -> Units:
    """``x`` rounded down (C1, C2), as float64 may round it.

    The engine's float error is taken as ``NOISE`` relative to the result, plus ``NOISE ·
    extra`` where operands of size ``extra`` lose their error to no cancellation.
    """
    lo, hi = _noisy(x, extra, capped)
    return Units(_down(lo), _down(hi))


def round_up(x: Span, extra: Fraction = Fraction(0), *, capped: bool = False) -> Units:
    """``x`` rounded up (C1, C2), as float64 may round it (see ``round_down``)."""
    lo, hi = _noisy(x, extra, capped)
    return Units(_up(lo), _up(hi))


def sqrt_span(x: Fraction) -> Span:
    """Rationals bracketing ``sqrt(x)`` for ``x ≥ 0``, ``2**-SQRT_BITS`` apart at most."""
    # sqrt(p / q) = sqrt(p · q) / q
    num, den = x.numerator * x.denominator, x.denominator
    root = math.isqrt(num << (2 * SQRT_BITS))
    lo = Fraction(root, den << SQRT_BITS)
    exact = root * root == num << (2 * SQRT_BITS)
    return lo, lo if exact else Fraction(root + 1, den << SQRT_BITS)


def shock_span(z: float, volatility: float, latency_s: float) -> Span:
    """DESIGN §3: ``shock = z · σ · sqrt(T / 31,536,000)``, bracketed, and widened by the
    float64 error of computing it (``NOISE``, relative)."""
    k = Fraction(z) * Fraction(volatility)
    lo, hi = sqrt_span(Fraction(latency_s) / YEAR_S)
    return k * lo * (1 - NOISE), k * hi * (1 + NOISE)


def shocked_factors(shock: Span) -> tuple[Span, Span]:
    """``(1 − shock, 1 + shock)`` as spans: what is left of collateral and of a long's mark,
    never below zero (C6), and what debt and a short's mark grow to."""
    return (max(Fraction(0), 1 - shock[1]), max(Fraction(0), 1 - shock[0])), (
        1 + shock[0],
        1 + shock[1],
    )


def tier_bounds(tiers: Schedule, value_decimals: int) -> list[tuple[Fraction, int, int | None]]:
    """``(rate, low, high)`` of each slice in value units (C4; ``high`` None = unbounded)."""
    slices: list[tuple[Fraction, int, int | None]] = []
    low = 0
    for rate, up_to in tiers:
        if up_to is None:
            slices.append((Fraction(rate), low, None))
        else:
            high = math.floor(Fraction(repr(float(up_to))) * 10**value_decimals)
            slices.append((Fraction(rate), low, high))
            low = high
    return slices


def tiered(x: Fraction, tiers: Schedule, value_decimals: int) -> Fraction:
    """Weighted value of ``x`` value units: each slice of it at its tier's rate (exact)."""
    total = Fraction(0)
    for rate, low, high in tier_bounds(tiers, value_decimals):
        top = x if high is None else min(x, Fraction(high))
        total += max(Fraction(0), top - low) * rate
    return total
