"""The ``margin.portfolio`` block: risk groups, the scenario grid and correlations.

Validated on its own (bounds, pair syntax, an asset in two groups) and against the rest of the
config by ``portfolio_reference_problem`` (group assets must be configured assets, correlation
pairs must name groups). ``portfolio_params`` turns it into
``margin.portfolio_params.PortfolioParams``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Self

from pydantic import Field, model_validator

from daemon.config.types import KeyedError, StrictModel
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
from oracles.correlation import (
    DEFAULT_SAMPLE_S,
    DEFAULT_WARMUP_RETURNS,
    CorrelationEstimator,
    PairState,
    group_pairs,
)
from oracles.volatility import DEFAULT_INTERVAL_S, DEFAULT_LAMBDA

MAX_EXTREME_MULTIPLE = 10.0
MAX_WARMUP_RETURNS = 100_000
MIN_ROUND_S = 1.0
"""The shortest step a pair can see with ``correlation_sample_s: 0`` (one round), for the
warm-up check."""
MAX_SAMPLE_S = 900.0
"""Longest ``correlation_sample_s``: well under ``oracles.correlation.DEFAULT_MAX_STEP_S``
(a longer step would not be counted at all) and 100 returns within a day."""
MAX_VOL_UP = 10.0

Correlation = Annotated[float, Field(ge=0, le=1)]
ScanRange = Annotated[float, Field(gt=0, lt=1)]


class RiskGroupConfig(StrictModel):
    """Assets that move together and how far the grid moves them (a fraction of the price)."""

    assets: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    scan_range: ScanRange


class PortfolioConfig(StrictModel):
    """``margin.portfolio`` (DESIGN §3 "Portfolio model"); used with ``margin.model: portfolio``."""

    groups: dict[str, RiskGroupConfig] = Field(default_factory=dict)
    default_scan_range: ScanRange = DEFAULT_SCAN_RANGE
    price_steps: int = Field(default=DEFAULT_PRICE_STEPS, ge=1, le=MAX_PRICE_STEPS)
    extreme_multiple: float = Field(default=DEFAULT_EXTREME_MULTIPLE, ge=1, le=MAX_EXTREME_MULTIPLE)
    extreme_weight: Correlation = DEFAULT_EXTREME_WEIGHT
    vol_up: float = Field(default=DEFAULT_VOL_UP, ge=0, le=MAX_VOL_UP)
    vol_down: float = Field(default=DEFAULT_VOL_DOWN, ge=0, lt=1)
    correlations: dict[str, Correlation] = Field(default_factory=dict)
    """``"ETH/BTC": 0.8`` between two groups (either order), each in [0, 1]."""
    default_correlation: Correlation = 1.0
    correlation_source: CorrelationSource = CorrelationSource.STATIC
    """``static`` (the numbers above) or ``ewma`` (estimated from oracle returns, never below
    ``min_correlation``; the static values stand in until a pair is warm:
    ``oracles.correlation``)."""
    min_correlation: Correlation = 0.0
    correlation_warmup_returns: int = Field(
        default=DEFAULT_WARMUP_RETURNS, ge=1, le=MAX_WARMUP_RETURNS
    )
    """``ewma``: effective returns a pair needs before its estimate replaces the static value."""
    correlation_sample_s: float = Field(default=DEFAULT_SAMPLE_S, ge=0, le=MAX_SAMPLE_S)
    """``ewma``: shortest step (seconds) a return is taken over (rounds in between are spanned)."""

    @model_validator(mode="after")
    def _warmup_reachable(self) -> Self:
        # A pair's effective count levels off near (1 + w)/(1 − w), w the decay of one step:
        # a warm-up above half of that would take weeks, or never end.
        step = max(self.correlation_sample_s, MIN_ROUND_S)
        keep = DEFAULT_LAMBDA ** (step / DEFAULT_INTERVAL_S)
        ceiling = (1 + keep) / (1 - keep)
        if self.correlation_warmup_returns > ceiling / 2:
            raise KeyedError(
                "margin.portfolio.correlation_warmup_returns",
                f"out of reach with correlation_sample_s {self.correlation_sample_s:g}: a pair "
                f"counts at most ~{ceiling:,.0f} effective returns (λ {DEFAULT_LAMBDA} per day); "
                f"use at most {math.floor(ceiling / 2)}",
                self.correlation_warmup_returns,
            )
        return self

    @model_validator(mode="after")
    def _groups_and_pairs(self) -> Self:
        owner: dict[str, str] = {}
        for name, group in self.groups.items():
            for i, asset in enumerate(group.assets):
                if asset in owner:
                    raise KeyedError(
                        f"margin.portfolio.groups.{name}.assets[{i}]",
                        f"asset already in group {owner[asset]}: an asset belongs to one group",
                        asset,
                    )
                owner[asset] = name
        for name in self.groups:
            if owner.get(name, name) != name:
                raise KeyedError(
                    f"margin.portfolio.groups.{name}",
                    f"a group may not be named after an asset of group {owner[name]}",
                )
        seen: set[frozenset[str]] = set()
        for key in self.correlations:
            a, sep, b = key.partition("/")
            if not sep or not a or not b or "/" in b or a == b:
                raise KeyedError(
                    f"margin.portfolio.correlations.{key}",
                    "a pair of two different groups is written A/B",
                )
            if frozenset((a, b)) in seen:
                raise KeyedError(
                    f"margin.portfolio.correlations.{key}", "pair given twice (in either order)"
                )
            seen.add(frozenset((a, b)))
        return self


def portfolio_reference_problem(
    portfolio: PortfolioConfig, assets: Iterable[str]
) -> tuple[str, str, object] | None:
    """The first reference problem as ``(key, problem, value)``, or ``None``: every group
    asset is a configured asset, every correlation pair names two groups (a configured group
    or an asset in no group, which is a group of its own)."""
    known = set(assets)
    for name, group in portfolio.groups.items():
        for i, asset in enumerate(group.assets):
            if asset not in known:
                key = f"margin.portfolio.groups.{name}.assets[{i}]"
                return key, "names no configured asset", asset
    grouped = {a for g in portfolio.groups.values() for a in g.assets}
    for name in portfolio.groups:
        if name in known and name not in grouped:
            # A lone asset is a group of its own under its own name: two groups of one name.
            problem = (
                f"asset {name} is in no group, so it is a group of its own named {name}: "
                "list it in this group or rename the group"
            )
            return f"margin.portfolio.groups.{name}", problem, name
    groups = set(portfolio.groups) | (known - grouped)
    for pair in portfolio.correlations:
        for side in pair.split("/"):
            if side not in groups:
                valid = ", ".join(sorted(groups))
                key = f"margin.portfolio.correlations.{pair}"
                return key, f"names no risk group; one of {valid}", side
    return None


def portfolio_params(
    portfolio: PortfolioConfig, volatility_floors: Mapping[str, float]
) -> PortfolioParams:
    """The engine's ``PortfolioParams`` (with the assets' volatility floors)."""
    return PortfolioParams(
        groups=tuple(
            RiskGroup(name=name, assets=tuple(g.assets), scan_range=g.scan_range)
            for name, g in portfolio.groups.items()
        ),
        default_scan_range=portfolio.default_scan_range,
        price_steps=portfolio.price_steps,
        extreme_multiple=portfolio.extreme_multiple,
        extreme_weight=portfolio.extreme_weight,
        vol_up=portfolio.vol_up,
        vol_down=portfolio.vol_down,
        correlations=tuple(
            (*pair.split("/", 1), rho)  # type: ignore[misc]
            for pair, rho in portfolio.correlations.items()
        ),
        default_correlation=portfolio.default_correlation,
        correlation_source=portfolio.correlation_source,
        min_correlation=portfolio.min_correlation,
        volatility_floors=tuple(sorted(volatility_floors.items())),
    )


def representative_assets(
    portfolio: PortfolioConfig, priced: Sequence[str]
) -> list[tuple[str, str]]:
    """(risk group, the asset whose returns stand for it), configured groups first: a group's
    first listed asset the oracle prices (``priced``: the configured assets, in order; a group
    with none is left out and keeps its static values), then every other priced asset as a
    group of its own."""
    known = set(priced)
    grouped = {a for g in portfolio.groups.values() for a in g.assets}
    found = [
        (name, next(a for a in g.assets if a in known))
        for name, g in portfolio.groups.items()
        if any(a in known for a in g.assets)
    ]
    return found + [(a, a) for a in priced if a not in grouped]


def correlation_estimator(
    portfolio: PortfolioConfig,
    assets: Sequence[str],
    state: Mapping[str, PairState] | None = None,
) -> CorrelationEstimator | None:
    """The estimator of ρ between every pair of risk groups for ``correlation_source: ewma``
    (``None`` for ``static``); ``assets`` are the assets the oracle prices, in order,
    ``state`` what a previous run stopped with (pair name → state)."""
    if portfolio.correlation_source is not CorrelationSource.EWMA:
        return None
    static = {frozenset(pair.split("/", 1)): rho for pair, rho in portfolio.correlations.items()}
    return CorrelationEstimator(
        pairs=group_pairs(
            representative_assets(portfolio, assets), static, portfolio.default_correlation
        ),
        min_correlation=portfolio.min_correlation,
        warmup_returns=portfolio.correlation_warmup_returns,
        sample_s=portfolio.correlation_sample_s,
        state=state,
    )
