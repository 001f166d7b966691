"""``EwmaVolatility``'s defaults and edges (added for mutants that survived the mutation check;
see bench/RESULTS.md): without a floor the estimate starts at 0 and is seeded by the first
return, with one it starts from the floor; one-second steps count; half a resumed reference is
none; a bad time is refused by name."""

from __future__ import annotations

import math

import pytest

from oracles.volatility import SECONDS_PER_YEAR, EwmaVolatility, VolatilityState

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


def test_a_floor_seeds_the_variance_that_the_first_return_is_weighed_against() -> None:
    """With a floor the recursion starts from ``floor² / year``, so one large first return is
    damped by λ instead of becoming the whole estimate (DESIGN: the estimate starts from the
    floor)."""
    vol = EwmaVolatility(lambda_=0.94, floor=0.2)
    vol.update(100.0, T0)
    got = vol.update(105.0, T0 + 86_400)
    # a day at λ = 0.94: σ² = 0.94 · 0.2² + 0.06 · ln(1.05)² · 365 = 0.0376 + 0.0521… → 0.2996
    expected = math.sqrt(0.94 * 0.2**2 + 0.06 * math.log(1.05) ** 2 * 365)
    assert got == pytest.approx(expected, rel=1e-12)
    assert 0.29 < got < 0.31  # not ln(1.05) · √365 = 0.932 (the unseeded estimate)


def test_a_return_over_one_second_counts() -> None:
    """Only zero or negative steps are skipped: rounds a second apart still carry a return."""
    vol = EwmaVolatility()
    vol.update(100.0, T0)
    got = vol.update(101.0, T0 + 1.0)
    assert got == pytest.approx(math.log(1.01) * math.sqrt(SECONDS_PER_YEAR), rel=1e-12)


def test_a_state_without_a_last_time_starts_the_series_again() -> None:
    """A resumed state missing either the last price or its time has no usable reference:
    the next price becomes the reference, nothing is counted."""
    for last_price, last_at in ((100.0, None), (None, T0)):
        state = VolatilityState(variance_per_s=None, last_price=last_price, last_at=last_at)
        vol = EwmaVolatility(floor=0.1, state=state)
        assert vol.update(150.0, T0 + 60) == 0.1
        assert vol.state == VolatilityState(variance_per_s=None, last_price=150.0, last_at=T0 + 60)


def test_a_time_that_is_not_a_number_is_refused_by_name() -> None:
    vol = EwmaVolatility()
    with pytest.raises(ValueError, match=r"^at must be finite \(got nan\)$"):
        vol.update(100.0, math.nan)
