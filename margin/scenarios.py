"""The portfolio model's knobs and scenario grid (DESIGN §3 "Portfolio model").

Every asset belongs to one risk group; an asset in no configured group is a group of its own,
named after it, with ``default_scan_range``. A group's scan range widens with volatility:
``R_g = R0_g · max(1, σ_g / σfloor_g)`` (σ_g the largest EWMA volatility of its assets, σfloor_g
the largest of their floors; without a floor the range stays ``R0_g``). Its scenarios are the
price moves ``R_g · j / n`` for j = −n…n, each at the implied-vol shocks −vol_down, 0, +vol_up,
then the two extremes ``±extreme_multiple · R_g`` at v = 0, whose P&L counts at
``extreme_weight``. The latency grid is ``shock_g · j / n`` at v = 0 without extremes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from margin.model import MarginInputError
from margin.normal import FloatArray

DEFAULT_SCAN_RANGE = 0.15
DEFAULT_PRICE_STEPS = 4
DEFAULT_EXTREME_MULTIPLE = 2.0
DEFAULT_EXTREME_WEIGHT = 0.35
"""CME SPAN counts the extreme moves' losses at 35 %."""
DEFAULT_VOL_UP = 0.5
DEFAULT_VOL_DOWN = 0.3
MAX_PRICE_STEPS = 32


class CorrelationSource(enum.StrEnum):
    """Where the correlations between groups come from."""

    STATIC = "static"
    EWMA = "ewma"


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskGroup:
    """Assets that move together, scanned over ``±scan_range`` (a fraction of the price)."""

    name: str
    assets: tuple[str, ...]
    scan_range: float


def _check(ok: bool, problem: str) -> None:
    if not ok:
        raise MarginInputError(problem)


def _unit(x: float) -> bool:
    return math.isfinite(x) and 0.0 <= x <= 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioParams:
    """Knobs of ``margin.model: portfolio``; ``volatility_floors`` is asset → floor."""

    groups: tuple[RiskGroup, ...] = ()
    default_scan_range: float = DEFAULT_SCAN_RANGE
    price_steps: int = DEFAULT_PRICE_STEPS
    extreme_multiple: float = DEFAULT_EXTREME_MULTIPLE
    extreme_weight: float = DEFAULT_EXTREME_WEIGHT
    vol_up: float = DEFAULT_VOL_UP
    vol_down: float = DEFAULT_VOL_DOWN
    correlations: tuple[tuple[str, str, float], ...] = ()
    default_correlation: float = 1.0
    correlation_source: CorrelationSource = CorrelationSource.STATIC
    min_correlation: float = 0.0
    volatility_floors: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        names = [g.name for g in self.groups]
        for i, group in enumerate(self.groups):
            _check(names.index(group.name) == i, f"portfolio: group {group.name} given twice")
            _check(
                math.isfinite(group.scan_range) and 0 < group.scan_range < 1,
                f"portfolio.groups.{group.name}.scan_range must be in (0, 1)",
            )
            _check(bool(group.assets), f"portfolio.groups.{group.name}.assets is empty")
            for asset in group.assets:
                other = seen.get(asset)
                _check(
                    other is None,
                    f"portfolio.groups.{group.name}.assets: {asset} is also in group {other}",
                )
                seen[asset] = group.name
        for name in names:
            owner = seen.get(name)
            _check(
                owner in (None, name),
                f"portfolio.groups.{name}: the name of an asset of group {owner}",
            )
        _check(0 < self.default_scan_range < 1, "portfolio.default_scan_range must be in (0, 1)")
        _check(
            1 <= self.price_steps <= MAX_PRICE_STEPS,
            f"portfolio.price_steps must be in [1, {MAX_PRICE_STEPS}]",
        )
        _check(
            math.isfinite(self.extreme_multiple) and self.extreme_multiple >= 1,
            "portfolio.extreme_multiple must be >= 1",
        )
        _check(_unit(self.extreme_weight), "portfolio.extreme_weight must be in [0, 1]")
        _check(math.isfinite(self.vol_up) and self.vol_up >= 0, "portfolio.vol_up must be >= 0")
        _check(0 <= self.vol_down < 1, "portfolio.vol_down must be in [0, 1)")
        for a, b, rho in self.correlations:
            _check(_unit(rho), f"portfolio.correlations.{a}/{b} must be in [0, 1]")
        _check(_unit(self.default_correlation), "portfolio.default_correlation must be in [0, 1]")
        _check(_unit(self.min_correlation), "portfolio.min_correlation must be in [0, 1]")

    def group_of(self, asset: str) -> str:
        """The name of ``asset``'s risk group (its own name when it is in none)."""
        for group in self.groups:
            if asset in group.assets:
                return group.name
        return asset

    def base_range(self, group: str) -> float:
        """``R0`` of a group: its ``scan_range``, or ``default_scan_range`` for a lone asset."""
        for g in self.groups:
            if g.name == group:
                return g.scan_range
        return self.default_scan_range

    def correlation(self, a: str, b: str) -> float:
        """ρ between two groups (1 for a group with itself; either order of the pair)."""
        if a == b:
            return 1.0
        for x, y, rho in self.correlations:
            if (x, y) in ((a, b), (b, a)):
                return rho
        return self.default_correlation

    def floor_of(self, asset: str) -> float:
        """The volatility floor of ``asset`` (0 when none is configured)."""
        return dict(self.volatility_floors).get(asset, 0.0)


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
