"""``EwmaVolatility``'s defaults (added for a mutant that survived the mutation check; see
bench/RESULTS.md): without a floor the estimate starts at 0 and is seeded by the first return."""

from __future__ import annotations

import math

import pytest

from oracles.volatility import SECONDS_PER_YEAR, EwmaVolatility

T0 = 1_700_000_000.0


def test_without_a_floor_the_estimate_is_zero_until_the_first_return() -> None:
    vol = EwmaVolatility()
    assert (vol.floor, vol.annualized) == (0.0, 0.0)
    assert vol.update(100.0, T0) == 0.0
    # one return of ln(1.01) over a day seeds the variance: σ = |r| · √(year / day)
    got = vol.update(101.0, T0 + 86_400)
    assert got == pytest.approx(abs(math.log(1.01)) * math.sqrt(SECONDS_PER_YEAR / 86_400))


@pytest.mark.parametrize("interval_s", [0.5, 1.0, 1e-3])
def test_any_positive_interval_is_accepted(interval_s: float) -> None:
    """λ may be quoted per second or less (only ``interval_s <= 0`` is refused)."""
    vol = EwmaVolatility(lambda_=0.9, interval_s=interval_s)
    vol.update(100.0, T0)
    assert vol.update(100.0, T0 + 1) == 0.0
