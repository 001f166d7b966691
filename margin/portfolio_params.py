"""The portfolio model's knobs (DESIGN §3 "Portfolio model"): risk groups, the grid's size and
shocks, correlations. Plain data, validated on construction, and free of numpy so that the
config (``daemon.config.portfolio``) loads without the numeric stack: commands that only read
balances (``crossmargin snapshot``) start faster. The grid they describe is
``margin.scenarios``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from margin.model import MarginInputError

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
