"""The portfolio model's knobs and scenario grid (DESIGN §3 "Portfolio model").

Every asset belongs to one risk group; an asset in no configured group is a group of its own,
named after it, with ``default_scan_range``. A group's scan range widens with volatility:
``R_g = R0_g · max(1, σ_g / σfloor_g)`` (σ_g the largest EWMA volatility of its assets, σfloor_g
the largest of their floors; without a floor the range stays ``R0_g``). Its scenarios are the
price moves ``R_g · j / n`` for j = −n…n, each at the implied-vol shocks −vol_down, 0, +vol_up,
then the two extremes ``±extreme_multiple · R_g`` at v = 0, whose P&L counts at
``extreme_weight``. The latency grid is ``shock_g · j / n`` at v = 0 without extremes.
The knobs themselves (``PortfolioParams``, ``RiskGroup``, the defaults) live in
``margin.portfolio_params``, which needs no numpy, and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from margin.normal import FloatArray
from margin.portfolio_params import (
    DEFAULT_EXTREME_MULTIPLE,
    DEFAULT_EXTREME_WEIGHT,
    DEFAULT_PRICE_STEPS,
    DEFAULT_SCAN_RANGE,
    DEFAULT_VOL_DOWN,
    DEFAULT_VOL_UP,
    MAX_PRICE_STEPS,
    CorrelationSource,
    PortfolioParams,
    RiskGroup,
)

__all__ = [
    "DEFAULT_EXTREME_MULTIPLE",
    "DEFAULT_EXTREME_WEIGHT",
    "DEFAULT_PRICE_STEPS",
    "DEFAULT_SCAN_RANGE",
    "DEFAULT_VOL_DOWN",
    "DEFAULT_VOL_UP",
    "MAX_PRICE_STEPS",
    "CorrelationSource",
    "Grid",
    "PortfolioParams",
    "RiskGroup",
    "correlation_matrix",
    "group_names",
    "latency_moves",
    "scan_range",
    "scan_ranges",
    "scenario_grid",
]


def group_names(params: PortfolioParams, assets: Iterable[str]) -> list[str]:
    """Configured groups first (config order), then lone assets in the order given."""
    names = [g.name for g in params.groups]
    for asset in assets:
        group = params.group_of(asset)
        if group not in names:
            names.append(group)
    return names


def correlation_matrix(params: PortfolioParams, groups: Sequence[str]) -> FloatArray:
    """ρ as a symmetric matrix over ``groups`` (ones on the diagonal), as
    ``PortfolioParams.correlation`` gives it, with one pass over the pairs (with
    ``correlation_source: ewma`` every pair is listed: a lookup per entry would make each
    market rebuild O(G⁴))."""
    given = {frozenset((a, b)): rho for a, b, rho in reversed(params.correlations)}
    n = len(groups)
    out = np.ones((n, n))
    for i in range(n):
        for j in range(n):
            if groups[i] != groups[j]:
                key = frozenset((groups[i], groups[j]))
                out[i, j] = given.get(key, params.default_correlation)
    return out


def scan_range(base: float, volatility: float, floor: float) -> float:
    """``R = R0 · max(1, σ / σfloor)``; ``R0`` when there is no floor."""
    if floor <= 0:
        return base
    return base * max(1.0, volatility / floor)


@dataclass(frozen=True, slots=True)
class Grid:
    """Scenario columns shared by every group: ``moves`` (fractions of the scan range),
    ``vol`` shocks and ``weight`` of each column's P&L."""

    moves: FloatArray
    vol: FloatArray
    weight: FloatArray

    def __len__(self) -> int:
        return len(self.moves)


def scenario_grid(params: PortfolioParams) -> Grid:
    """The (2n+1)·3 price × vol points, then the two extremes: ``s = R · moves[k]``."""
    n = params.price_steps
    steps = [j / n for j in range(-n, n + 1)]
    vols = (-params.vol_down, 0.0, params.vol_up)
    moves = [m for m in steps for _ in vols] + [-params.extreme_multiple, params.extreme_multiple]
    shocks = [v for _ in steps for v in vols] + [0.0, 0.0]
    weight = [1.0] * (len(steps) * len(vols)) + [params.extreme_weight] * 2
    return Grid(np.array(moves), np.array(shocks), np.array(weight))


def latency_moves(params: PortfolioParams) -> FloatArray:
    """Fractions of the latency shock scanned: j / n for j = −n…n."""
    n = params.price_steps
    return np.array([j / n for j in range(-n, n + 1)])


def scan_ranges(
    params: PortfolioParams,
    groups: Sequence[str],
    volatility: Mapping[str, float],
) -> tuple[FloatArray, FloatArray]:
    """Per group: the scan range ``R_g`` and the volatility ``σ_g`` (largest of its assets
    that have a price; ``volatility`` maps asset → annualized σ)."""
    members: dict[str, list[str]] = {g: [] for g in groups}
    for asset in volatility:
        group = params.group_of(asset)
        if group in members:
            members[group].append(asset)
    for configured in params.groups:
        if configured.name in members:
            found = set(members[configured.name]) | set(configured.assets)
            members[configured.name] = sorted(found)
    ranges, sigmas = np.zeros(len(groups)), np.zeros(len(groups))
    for i, group in enumerate(groups):
        assets = members[group] or [group]
        sigma = max((volatility.get(a, 0.0) for a in assets), default=0.0)
        floor = max((params.floor_of(a) for a in assets), default=0.0)
        sigmas[i] = sigma
        ranges[i] = scan_range(params.base_range(group), sigma, floor)
    return ranges, sigmas
