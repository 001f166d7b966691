"""EWMA volatility: the floor, the first observation, zero time steps, and sampling rates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from oracles.volatility import SECONDS_PER_YEAR, EwmaVolatility

T0 = 1_700_000_000.0
DAY_S = 86_400.0


def test_first_observation_reports_the_floor() -> None:
    vol = EwmaVolatility(floor=0.5)
    assert vol.annualized == 0.5
    assert vol.update(3000, T0) == 0.5


def test_zero_floor_is_seeded_by_the_first_return() -> None:
    vol = EwmaVolatility(floor=0.0)
    vol.update(100.0, T0)
    sigma = vol.update(101.0, T0 + DAY_S)
    assert sigma == pytest.approx(abs(math.log(1.01)) * math.sqrt(SECONDS_PER_YEAR / DAY_S))


def test_daily_samples_follow_the_riskmetrics_recursion() -> None:
    vol = EwmaVolatility(lambda_=0.94, floor=0.0)
    prices = [100.0, 102.0, 99.0, 101.0, 97.0]
    for day, price in enumerate(prices):
        vol.update(price, T0 + day * DAY_S)
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    daily_var = returns[0] ** 2
    for r in returns[1:]:
        daily_var = 0.94 * daily_var + 0.06 * r * r
    assert vol.annualized == pytest.approx(math.sqrt(daily_var * 365))


def test_zero_and_negative_time_steps_are_ignored_but_not_lost() -> None:
    vol = EwmaVolatility(floor=0.0)
    vol.update(100.0, T0)
    vol.update(150.0, T0)  # same timestamp: nothing to annualize over
    vol.update(150.0, T0 - 5)
    assert vol.annualized == 0.0
    stepped = vol.update(110.0, T0 + DAY_S)  # measured from the last usable price, 100
    assert stepped == pytest.approx(math.log(1.1) * math.sqrt(365))


def test_calm_prices_decay_to_the_floor_and_a_crash_lifts_the_estimate() -> None:
    vol = EwmaVolatility(floor=0.3)
    for i in range(500):
        vol.update(100.0, T0 + 10 * i)
    assert vol.annualized == 0.3
    crashed = vol.update(70.0, T0 + 5_010)
    assert crashed > 1.0


def test_state_round_trips_through_a_restart() -> None:
    vol = EwmaVolatility(floor=0.1)
    for i, price in enumerate([100.0, 105.0, 95.0, 99.0]):
        vol.update(price, T0 + 60 * i)
    resumed = EwmaVolatility(floor=0.1, state=vol.state)
    assert resumed.annualized == vol.annualized
    assert resumed.update(120.0, T0 + 600) == vol.update(120.0, T0 + 600)


@pytest.mark.parametrize("step_s", [60.0, 300.0, 3_600.0])
def test_estimate_of_a_random_walk_does_not_depend_on_the_sampling_step(step_s: float) -> None:
    true_sigma = 0.8
    days = 90
    steps = int(days * DAY_S / step_s)
    rng = np.random.default_rng(7)
    log_returns = rng.normal(0.0, true_sigma * math.sqrt(step_s / SECONDS_PER_YEAR), steps)
    prices = 2_000.0 * np.exp(np.cumsum(log_returns))
    vol = EwmaVolatility(floor=0.05)
    for i, price in enumerate(prices):
        vol.update(float(price), T0 + i * step_s)
    assert vol.annualized == pytest.approx(true_sigma, rel=0.1)


# no shrinking: a failing example is reported as drawn (its inputs are named), and a
# mutant (`make mutate`) must not keep a run shrinking for minutes
@settings(deadline=None, max_examples=200, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    floor=st.floats(min_value=0.0, max_value=5.0),
    lambda_=st.floats(min_value=0.01, max_value=0.99),
    moves=st.lists(
        st.tuples(
            st.floats(min_value=1e-9, max_value=1e12),  # price
            st.floats(min_value=-100.0, max_value=1e6),  # seconds since the previous update
        ),
        max_size=40,
    ),
)
def test_volatility_is_never_below_the_floor(
    floor: float, lambda_: float, moves: list[tuple[float, float]]
) -> None:
    vol = EwmaVolatility(lambda_=lambda_, floor=floor)
    at = T0
    for price, dt in moves:
        at += dt
        sigma = vol.update(price, at)
        assert math.isfinite(sigma)
        assert sigma >= floor


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lambda_": 1.0}, "lambda_"),
        ({"lambda_": 0.0}, "lambda_"),
        ({"floor": -0.1}, "floor"),
        ({"interval_s": 0.0}, "interval_s"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EwmaVolatility(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("price", [0.0, -1.0, math.inf, math.nan])
def test_bad_prices_are_rejected(price: float) -> None:
    with pytest.raises(ValueError, match="price"):
        EwmaVolatility().update(price, T0)
