"""The ``risk`` of one account: the portfolio model's figures as plain data for documents.

Per risk group the scan range, the grid loss now and over the liquidation horizon, net dollar
delta, dollar gamma (change of delta for a 1 % move) and vega (per vol point), and the horizon;
per account the delta-normal ``var_99`` and ``es_975`` and the options' market value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.amounts import scaled
from margin.model import MarginModel
from margin.portfolio import PortfolioResult
from margin.portfolio_kernel import PortfolioVectors


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRisk:
    """One risk group of one account (USD; ``horizon_s`` in seconds)."""

    scan_range: float
    loss: float
    loss_latency: float
    delta: float
    gamma: float
    vega: float
    horizon_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountRisk:
    """``risk`` of the account document; ``groups`` holds the groups the account touches."""

    model: MarginModel
    var_99: float
    es_975: float
    options_value: Decimal
    groups: dict[str, GroupRisk]


def account_risk(
    model: MarginModel,
    vectors: PortfolioVectors,
    result: PortfolioResult,
    value_decimals: int,
    row: int = 0,
) -> AccountRisk:
    """Row ``row`` of ``result`` as an ``AccountRisk`` (groups with an exposure, a loss or a
    horizon only)."""
    groups: dict[str, GroupRisk] = {}
    for g, name in enumerate(vectors.groups):
        figures = GroupRisk(
            scan_range=float(vectors.market.ranges[g]),
            loss=float(result.loss[row, g]),
            loss_latency=float(result.loss_latency[row, g]),
            delta=float(result.delta[row, g]),
            gamma=float(result.gamma[row, g]),
            vega=float(result.vega[row, g]),
            horizon_s=float(result.horizon[row, g]),
        )
        if figures.loss or figures.delta or figures.horizon_s or figures.vega:
            groups[name] = figures
    return AccountRisk(
        model=model,
        var_99=float(result.var_99[row]),
        es_975=float(result.es_975[row]),
        options_value=scaled(int(result.options_value[row]), value_decimals),
        groups=groups,
    )
