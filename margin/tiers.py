"""Tier slicing: the weighted value of a size, each slice at its own rate.

A schedule ``[(rate_0, up_to_0), (rate_1, up_to_1), …, (rate_k, ∞)]`` maps a value ``x`` to
``Σ_k clip(x − lo_k, 0, up_to_k − lo_k) · rate_k``: piecewise linear, continuous at every
boundary, non-decreasing in ``x`` when rates are ≥ 0. Collateral tiers (weights) and
maintenance-margin tiers (rates by notional) use the same slicing.

Boundaries are compiled to integer value units (``10**-value_decimals`` USD) so slices are
exact; the scalar ``tiered_value`` and the vectorized ``TierTable.values`` run the same
float operations in the same order and agree bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import numpy.typing as npt

from margin.model import Tier

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class TierSchedule:
    """A schedule in value units: slice ``k`` covers ``[lows[k], lows[k] + widths[k])``."""

    lows: tuple[float, ...]
    widths: tuple[float, ...]
    rates: tuple[float, ...]


def usd_to_units(usd: float, value_decimals: int) -> int:
    """Whole value units in ``usd`` (rounded down; tier bounds are configured in USD)."""
    scaled = Decimal(str(usd)).scaleb(value_decimals)
    return int(scaled.to_integral_value(rounding=ROUND_FLOOR))


@functools.lru_cache(maxsize=1024)
def compile_tiers(tiers: tuple[Tier, ...], value_decimals: int) -> TierSchedule:
    """Compile validated tiers (see ``margin.model.validate_tiers``) to value units (cached:
    books share a few schedules)."""
    return compile_schedule(tiers, value_decimals)


def compile_schedule(tiers: tuple[Tier, ...], value_decimals: int) -> TierSchedule:
    """``compile_tiers`` without the cache (undecorated, so that mutation testing reaches it:
    mutmut skips decorated functions)."""
    lows: list[float] = []
    widths: list[float] = []
    previous = 0
    for tier in tiers:
        lows.append(float(previous))
        if tier.up_to is None:
            widths.append(math.inf)
        else:
            bound = usd_to_units(tier.up_to, value_decimals)
            widths.append(float(bound - previous))
            previous = bound
    return TierSchedule(tuple(lows), tuple(widths), tuple(float(t.rate) for t in tiers))


def tiered_value(x: float, schedule: TierSchedule) -> float:
    """Weighted value of ``x`` value units under ``schedule`` (the reference, scalar)."""
    acc = 0.0
    for low, width, rate in zip(schedule.lows, schedule.widths, schedule.rates, strict=True):
        acc = acc + min(max(x - low, 0.0), width) * rate
    return acc


class TierTable:
    """Several schedules stacked for numpy: ``values(x, which)`` = ``tiered_value`` per row.

    Shorter schedules are padded with empty slices (low = ∞, width = 0, rate = 0), which add
    an exact ``0.0`` and so leave the running sum bit-identical to the scalar version.
    """

    def __init__(self, schedules: Sequence[TierSchedule]) -> None:
        depth = max((len(s.rates) for s in schedules), default=0)
        shape = (len(schedules), depth)
        self._lows = np.full(shape, np.inf)
        self._widths = np.zeros(shape)
        self._rates = np.zeros(shape)
        for i, schedule in enumerate(schedules):
            n = len(schedule.rates)
            self._lows[i, :n] = schedule.lows
            self._widths[i, :n] = schedule.widths
            self._rates[i, :n] = schedule.rates
        self.schedules = tuple(schedules)

    @property
    def count(self) -> int:
        """Number of schedules."""
        return len(self.schedules)

    def values(self, x: FloatArray, which: IndexArray) -> FloatArray:
        """Weighted values of ``x[i]`` under schedule ``which[i]``."""
        acc = np.zeros(x.shape, dtype=np.float64)
        single = self._lows.shape[0] == 1
        for k in range(self._lows.shape[1]):
            if single:  # the common deployment: one schedule, no per-row gathers
                low, width, rate = self._lows[0, k], self._widths[0, k], self._rates[0, k]
                acc = acc + np.minimum(np.maximum(x - low, 0.0), width) * rate
            else:
                lows, widths = self._lows[which, k], self._widths[which, k]
                acc = acc + np.minimum(np.maximum(x - lows, 0.0), widths) * self._rates[which, k]
        return acc
