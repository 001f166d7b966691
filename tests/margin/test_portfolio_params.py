"""The portfolio model's knobs (``margin.portfolio_params``): lookups, and every bound of
``PortfolioParams``' validation at its edge, with the refusal naming the knob.

Added for the third mutation pass (issue 15): the config tests (tests/daemon) reach these
checks only through YAML, outside the fast margin selection that ``make mutate`` runs.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from margin.model import MarginInputError
from margin.portfolio_params import MAX_PRICE_STEPS, PortfolioParams, RiskGroup

ETH = RiskGroup(name="ETH", assets=("ETH", "stETH"), scan_range=0.15)
USD = RiskGroup(name="USD", assets=("USDC",), scan_range=0.03)


def test_lookups_by_group_and_asset() -> None:
    params = PortfolioParams(
        groups=(ETH, USD),
        default_scan_range=0.1,
        correlations=(("ETH", "USD", 0.2), ("BTC", "ETH", 0.7), ("USD", "ETH", 0.9)),
        default_correlation=0.4,
        volatility_floors=(("ETH", 0.6), ("BTC", 0.3)),
    )
    assert [params.group_of(a) for a in ("ETH", "stETH", "USDC", "BTC")] == [
        "ETH",
        "ETH",
        "USD",
        "BTC",
    ]
    assert [params.base_range(g) for g in ("ETH", "USD", "BTC")] == [0.15, 0.03, 0.1]
    # either order; the first listed pair counts; a group with itself is 1; others default
    assert params.correlation("USD", "ETH") == 0.2
    assert params.correlation("ETH", "USD") == 0.2
    assert params.correlation("ETH", "BTC") == 0.7
    assert params.correlation("ETH", "ETH") == 1.0
    assert params.correlation("BTC", "USD") == 0.4
    assert [params.floor_of(a) for a in ("ETH", "BTC", "USDC")] == [0.6, 0.3, 0.0]


@pytest.mark.parametrize(
    "knobs",
    [
        {"default_scan_range": 0.999, "price_steps": 1, "extreme_multiple": 1.0},
        {"default_scan_range": 1e-9, "price_steps": MAX_PRICE_STEPS},
        {"extreme_weight": 0.0, "vol_up": 0.0, "vol_down": 0.0},
        {"extreme_weight": 1.0, "vol_down": 0.999},
        {"correlations": (("A", "B", 0.0), ("B", "C", 1.0))},
        {"default_correlation": 0.0, "min_correlation": 1.0},
        {"default_correlation": 1.0, "min_correlation": 0.0},
        {"groups": (RiskGroup(name="X", assets=("X", "Y"), scan_range=0.999),)},
        {"groups": (RiskGroup(name="X", assets=("Y",), scan_range=1e-9),)},
    ],
)
def test_knobs_at_their_bounds_are_accepted(knobs: dict[str, Any]) -> None:
    PortfolioParams(**knobs)


@pytest.mark.parametrize(
    ("knobs", "problem"),
    [
        ({"groups": (ETH, ETH)}, "portfolio: group ETH given twice"),
        (
            {"groups": (RiskGroup(name="X", assets=("X",), scan_range=0.0),)},
            "portfolio.groups.X.scan_range must be in (0, 1)",
        ),
        (
            {"groups": (RiskGroup(name="X", assets=("X",), scan_range=1.0),)},
            "portfolio.groups.X.scan_range must be in (0, 1)",
        ),
        (
            {"groups": (RiskGroup(name="X", assets=("X",), scan_range=math.nan),)},
            "portfolio.groups.X.scan_range must be in (0, 1)",
        ),
        (
            {"groups": (RiskGroup(name="X", assets=(), scan_range=0.1),)},
            "portfolio.groups.X.assets is empty",
        ),
        (
            {"groups": (ETH, RiskGroup(name="LSD", assets=("stETH",), scan_range=0.2))},
            "portfolio.groups.LSD.assets: stETH is also in group ETH",
        ),
        (
            {"groups": (ETH, RiskGroup(name="stETH", assets=("wstETH",), scan_range=0.2))},
            "portfolio.groups.stETH: the name of an asset of group ETH",
        ),
        ({"default_scan_range": 0.0}, "portfolio.default_scan_range must be in (0, 1)"),
        ({"default_scan_range": 1.0}, "portfolio.default_scan_range must be in (0, 1)"),
        ({"price_steps": 0}, f"portfolio.price_steps must be in [1, {MAX_PRICE_STEPS}]"),
        (
            {"price_steps": MAX_PRICE_STEPS + 1},
            f"portfolio.price_steps must be in [1, {MAX_PRICE_STEPS}]",
        ),
        ({"extreme_multiple": 0.999}, "portfolio.extreme_multiple must be >= 1"),
        ({"extreme_multiple": math.inf}, "portfolio.extreme_multiple must be >= 1"),
        ({"extreme_weight": -0.001}, "portfolio.extreme_weight must be in [0, 1]"),
        ({"extreme_weight": 1.001}, "portfolio.extreme_weight must be in [0, 1]"),
        ({"extreme_weight": math.nan}, "portfolio.extreme_weight must be in [0, 1]"),
        ({"vol_up": -0.001}, "portfolio.vol_up must be >= 0"),
        ({"vol_up": math.inf}, "portfolio.vol_up must be >= 0"),
        ({"vol_down": -0.001}, "portfolio.vol_down must be in [0, 1)"),
        ({"vol_down": 1.0}, "portfolio.vol_down must be in [0, 1)"),
        ({"correlations": (("A", "B", 1.001),)}, "portfolio.correlations.A/B must be in [0, 1]"),
        ({"correlations": (("A", "B", -0.001),)}, "portfolio.correlations.A/B must be in [0, 1]"),
        ({"default_correlation": 1.001}, "portfolio.default_correlation must be in [0, 1]"),
        ({"min_correlation": -0.001}, "portfolio.min_correlation must be in [0, 1]"),
    ],
)
def test_knobs_out_of_bounds_are_refused_by_name(knobs: dict[str, Any], problem: str) -> None:
    with pytest.raises(MarginInputError, match=f"^{re.escape(problem)}$"):
        PortfolioParams(**knobs)
