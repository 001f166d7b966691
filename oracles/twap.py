"""Uniswap v3 TWAP from ``observe()`` tick cumulatives — the anchor price, computed purely.

``observe([window_s, 0])`` returns two tick cumulatives; their difference over the window is
the arithmetic-mean tick, rounded toward negative infinity exactly as Uniswap's
``OracleLibrary.consult`` does. The raw price of token0 in token1 is ``1.0001 ** tick``; in
whole tokens it is scaled by ``10 ** (decimals0 − decimals1)``. ``1.0001 ** tick`` is
irrational, so the result is rounded to ``TWAP_DIGITS`` significant digits — far finer than
an anchor tolerance, and finer than the pool's own Q64.96 math.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

MIN_TICK = -887_272  # TickMath.MIN_TICK
MAX_TICK = 887_272  # TickMath.MAX_TICK
TWAP_DIGITS = 40  # significant digits of the returned price
TICK_BASE = Decimal("1.0001")

_CONTEXT = Context(prec=TWAP_DIGITS + 10, rounding=ROUND_HALF_EVEN)


def mean_tick(tick_cum_start: int, tick_cum_end: int, window_s: int) -> int:
    """Arithmetic-mean tick over ``window_s`` seconds, floored like ``OracleLibrary.consult``."""
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0 (got {window_s!r})")
    tick = (tick_cum_end - tick_cum_start) // window_s  # floor division = round toward −∞
    if not MIN_TICK <= tick <= MAX_TICK:
        raise ValueError(f"mean tick {tick} outside [{MIN_TICK}, {MAX_TICK}]: bad cumulatives")
    return tick


def twap_price_from_ticks(
    tick_cum_start: int,
    tick_cum_end: int,
    window_s: int,
    decimals0: int,
    decimals1: int,
    *,
    invert: bool = False,
) -> Decimal:
    """Price of one whole token0 in token1 over the window (of token1 in token0 if ``invert``).

    Raises ``ValueError`` for cumulatives that give a tick outside Uniswap's range (a poller
    reports that source as ``MALFORMED``).
    """
    if decimals0 < 0 or decimals1 < 0:
        raise ValueError("decimals must be >= 0")
    tick = mean_tick(tick_cum_start, tick_cum_end, window_s)
    exponent = -tick if invert else tick
    scale_digits = (decimals1 - decimals0) if invert else (decimals0 - decimals1)
    raw = _CONTEXT.power(TICK_BASE, exponent)
    price = _CONTEXT.multiply(raw, Decimal(1).scaleb(scale_digits))
    return Context(prec=TWAP_DIGITS, rounding=ROUND_HALF_EVEN).plus(price)
