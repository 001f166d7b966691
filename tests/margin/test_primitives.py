"""Table tests of the pure money primitives, called directly (``margin.tiers``,
``margin.latency``, ``margin.valuation``).

Most of these numbers are also reached through ``evaluate_account`` and the engine, but only
indirectly: ``compile_tiers`` is cached, so ``usd_to_units`` behind it runs once per schedule
in a test session, and the extreme inputs (a shock of 100 % or more, a row at the saturation
cap, both chain flags at once) do not occur in the books. Each case here was added for a
mutant that survived ``make mutate`` (bench/RESULTS.md, mutation section); every expected
number is worked out by hand in its comment.
"""

from __future__ import annotations

import numpy as np
import pytest

from margin.kernel import ceil_units_array, floor_clip_array, floor_units_array
from margin.latency import YEAR_S, collateral_factor, liability_factor, price_shock
from margin.model import Tier
from margin.tiers import TierTable, compile_tiers, usd_to_units


@pytest.mark.parametrize(
    ("usd", "value_decimals", "units"),
    [
        (100_000, 2, 10_000_000),  # 100,000 USD = 10,000,000 cents
        (1e9, 0, 1_000_000_000),
        (0.1, 2, 10),  # str(0.1) = "0.1": exactly 10 cents (0.1 · 100 in float is 10.000…02)
        (2.675, 2, 267),  # 267.5 cents rounded down (half-even would give 268)
        (0.015, 2, 1),  # 1.5 cents rounded down (half-even would give 2)
        (0.019, 2, 1),  # 1.9 cents rounded down (half-up would give 2)
        (1.23456, 4, 12_345),  # 12,345.6 units rounded down
        (7, 4, 70_000),
    ],
)
def test_usd_tier_bounds_convert_to_whole_units_rounded_down(
    usd: float, value_decimals: int, units: int
) -> None:
    got = usd_to_units(usd, value_decimals)
    assert type(got) is int
    assert got == units


def test_a_table_of_several_flat_schedules_weighs_each_row_by_its_own() -> None:
    # two one-tier schedules (depth 1, but two rows): 1,000 units at 0.5 and at 0.25
    table = TierTable([compile_tiers((Tier(0.5),), 2), compile_tiers((Tier(0.25),), 2)])
    x = np.array([1_000.0, 1_000.0, 3.0])
    assert table.values(x, np.array([0, 1, 1], dtype=np.intp)).tolist() == [500.0, 250.0, 0.75]


@pytest.mark.parametrize(
    ("z", "volatility", "latency_s", "shock"),
    [
        (1.0, 1.0, YEAR_S, 1.0),  # one σ over a whole year is σ
        (2.0, 0.5, YEAR_S / 4, 0.5),  # 2 · 0.5 · sqrt(1/4)
        (3.0, 0.8, 0.0, 0.0),  # no horizon, no move
        (2.33, 0.0, 3600.0, 0.0),  # a stablecoin priced without volatility
    ],
)
def test_price_shock_is_z_sigma_sqrt_of_the_horizon_in_years(
    z: float, volatility: float, latency_s: float, shock: float
) -> None:
    assert price_shock(z, volatility, latency_s) == shock


@pytest.mark.parametrize(
    ("shock", "collateral", "liability"),
    [
        (0.0, 1.0, 1.0),
        (0.25, 0.75, 1.25),  # collateral loses a quarter, debt gains one
        (1.0, 0.0, 2.0),
        (1.5, 0.0, 2.5),  # a move beyond 100 % leaves no collateral, never a negative one
    ],
)
def test_a_shock_shrinks_collateral_to_at_least_zero_and_grows_debt(
    shock: float, collateral: float, liability: float
) -> None:
    assert (collateral_factor(shock), liability_factor(shock)) == (collateral, liability)


def test_the_array_roundings_forgive_float_noise_relative_to_the_value() -> None:
    # one ulp off 16,500 (3.6e-12) is within SNAP · 16,500 (9.4e-10): float noise, not a unit;
    # an absolute nudge of SNAP (5.7e-14) is smaller than that ulp and would not absorb it
    above, below = np.nextafter(16_500.0, np.inf), np.nextafter(16_500.0, -np.inf)
    assert ceil_units_array(np.array([above, 16_500.25])).tolist() == [16_500.0, 16_501.0]
    assert floor_units_array(np.array([below, 16_500.75])).tolist() == [16_500.0, 16_500.0]


def test_a_rows_value_saturates_at_the_cap_on_both_sides() -> None:
    # ROW_CAP_UNITS is 2**43 value units: a row beyond it, either way, counts as the cap
    got = floor_clip_array(np.array([-1e30, 1e30, -5.5, 2.0**43 + 4096]))
    assert got.tolist() == [-(2.0**43), 2.0**43, -6.0, 2.0**43]
