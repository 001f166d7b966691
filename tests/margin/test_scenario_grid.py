"""The portfolio model's grid, scan ranges, groups and ρ matrix (``margin.scenarios``) on
hand-written tables read off DESIGN §3 "Portfolio model".

Added for the third mutation pass (issue 15): before it, these helpers were only reached
through whole-engine comparisons, where a wrong grid column or range often moved no account's
worst loss. Every expected value is written out here, not computed by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from margin.scenarios import (
    PortfolioParams,
    RiskGroup,
    correlation_matrix,
    group_names,
    latency_moves,
    scan_range,
    scan_ranges,
    scenario_grid,
)

ETH = RiskGroup(name="ETH", assets=("ETH", "stETH"), scan_range=0.15)
USD = RiskGroup(name="USD", assets=("USDC",), scan_range=0.03)


def test_the_grid_is_price_steps_times_vol_shocks_then_the_two_extremes() -> None:
    # n = 2: j/n for j = −2…2 → −1, −0.5, 0, 0.5, 1; each at v = −0.3, 0, +0.5 (15 columns),
    # then ∓2.5 · R at v = 0 weighted 0.35.
    params = PortfolioParams(
        price_steps=2, vol_down=0.3, vol_up=0.5, extreme_multiple=2.5, extreme_weight=0.35
    )
    grid = scenario_grid(params)
    steps = [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert grid.moves.tolist() == [s for s in steps for _ in range(3)] + [-2.5, 2.5]
    assert grid.vol.tolist() == [-0.3, 0.0, 0.5] * 5 + [0.0, 0.0]
    assert grid.weight.tolist() == [1.0] * 15 + [0.35, 0.35]
    assert len(grid) == 17


def test_one_price_step_gives_three_points_and_the_latency_grid_has_no_vol_or_extremes() -> None:
    params = PortfolioParams(price_steps=1, vol_down=0.0, vol_up=0.0, extreme_weight=1.0)
    grid = scenario_grid(params)
    assert grid.moves.tolist() == [-1.0] * 3 + [0.0] * 3 + [1.0] * 3 + [-2.0, 2.0]
    assert grid.weight.tolist() == [1.0] * 11
    assert latency_moves(params).tolist() == [-1.0, 0.0, 1.0]
    assert latency_moves(PortfolioParams(price_steps=4)).tolist() == [
        -1.0,
        -0.75,
        -0.5,
        -0.25,
        0.0,
        0.25,
        0.5,
        0.75,
        1.0,
    ]


@pytest.mark.parametrize(
    ("base", "sigma", "floor", "expected"),
    [
        (0.15, 0.9, 0.6, 0.225),  # σ above the floor: R0 · σ / σfloor
        (0.15, 0.3, 0.6, 0.15),  # below it: R0 (never narrower)
        (0.15, 0.6, 0.6, 0.15),  # at it
        (0.10, 2.0, 1.0, 0.20),  # a floor of exactly 1
        (0.10, 0.9, 0.5, 0.18),  # a floor below 1
        (0.15, 0.9, 0.0, 0.15),  # no floor: R0 whatever σ
        (0.15, 0.9, -1.0, 0.15),
    ],
)
def test_the_scan_range_widens_with_volatility_above_its_floor(
    base: float, sigma: float, floor: float, expected: float
) -> None:
    assert scan_range(base, sigma, floor) == pytest.approx(expected, rel=1e-12)


def test_scan_ranges_take_each_groups_largest_volatility_and_floor() -> None:
    params = PortfolioParams(
        groups=(ETH, USD),
        default_scan_range=0.10,
        volatility_floors=(("ETH", 0.6), ("stETH", 0.5), ("USDC", 0.1), ("BTC", 0.4)),
    )
    # "DOGE" has a price but no account holds it: not asked for, ignored. USD is configured
    # and asked for, but USDC has no volatility yet: σ = 0, R = R0.
    volatility = {"ETH": 0.9, "stETH": 1.2, "BTC": 0.8, "DOGE": 3.0}
    ranges, sigmas = scan_ranges(params, ["ETH", "USD", "BTC", "SOL"], volatility)
    # ETH: σ = max(0.9, 1.2) = 1.2, floor max(0.6, 0.5) = 0.6 → 0.15 · 2 = 0.30
    # USD: σ 0, floor 0.1 → 0.03;  BTC (alone, default 0.10): 0.8 / 0.4 → 0.20
    # SOL (alone, no price, no floor): 0.10, σ 0
    assert ranges.tolist() == pytest.approx([0.30, 0.03, 0.20, 0.10], rel=1e-12)
    assert sigmas.tolist() == [1.2, 0.0, 0.8, 0.0]


def test_a_groups_floor_counts_its_members_without_a_price() -> None:
    # Only ETH is priced (σ 0.9), but stETH's floor 0.6 is the group's: R = 0.15 · 0.9 / 0.6.
    # A configured group that no account touches (USD) is not asked for.
    params = PortfolioParams(groups=(ETH, USD), volatility_floors=(("stETH", 0.6),))
    ranges, sigmas = scan_ranges(params, ["ETH"], {"ETH": 0.9, "USDC": 0.5})
    assert ranges.tolist() == pytest.approx([0.225], rel=1e-12)
    assert sigmas.tolist() == [0.9]


def test_group_names_list_configured_groups_then_lone_assets_once_each() -> None:
    params = PortfolioParams(groups=(ETH, USD))
    assets = ["BTC", "stETH", "SOL", "BTC", "USDC", "ETH"]
    assert group_names(params, assets) == ["ETH", "USD", "BTC", "SOL"]
    assert group_names(PortfolioParams(), []) == []


def test_the_correlation_matrix_is_symmetric_with_the_first_listed_pair_winning() -> None:
    # ETH/BTC given twice (either order): the first one counts, as PortfolioParams.correlation
    # says; ETH/USD given; BTC/USD not given: default 0.25.
    params = PortfolioParams(
        groups=(ETH, USD),
        correlations=(("ETH", "BTC", 0.8), ("USD", "ETH", 0.1), ("BTC", "ETH", 0.3)),
        default_correlation=0.25,
    )
    groups = ["ETH", "USD", "BTC"]
    matrix = correlation_matrix(params, groups)
    assert matrix.tolist() == [
        [1.0, 0.1, 0.8],
        [0.1, 1.0, 0.25],
        [0.8, 0.25, 1.0],
    ]
    for i, g in enumerate(groups):
        for j, h in enumerate(groups):
            assert matrix[i, j] == params.correlation(g, h)
    assert correlation_matrix(params, []).shape == (0, 0)
    assert np.array_equal(correlation_matrix(PortfolioParams(), ["A", "B"]), np.ones((2, 2)))


def test_an_asset_named_like_a_group_it_is_not_listed_in_joins_that_group() -> None:
    # Group "ETH" lists only WETH; the asset "ETH" is in no group, so its group is its own name:
    # "ETH", the configured group. Its σ counts for the group: σ = max(1.0, 0.5) = 1.0, floor
    # max(0, 0.5) = 0.5 → R = 0.15 · 2 = 0.30 (not 0.15 from WETH alone).
    weth = RiskGroup(name="ETH", assets=("WETH",), scan_range=0.15)
    params = PortfolioParams(groups=(weth,), volatility_floors=(("WETH", 0.5),))
    assert params.group_of("ETH") == "ETH"
    ranges, sigmas = scan_ranges(params, ["ETH"], {"WETH": 0.5, "ETH": 1.0})
    assert ranges.tolist() == pytest.approx([0.30], rel=1e-12)
    assert sigmas.tolist() == [1.0]
