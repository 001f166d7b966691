"""Stress tests (DESIGN §3 "Stress"): who would be liquidatable, and how deep, under given
price and volatility shocks. Pure: a ``ScenarioBook`` (``margin.scenario``) in, a report out.

A price shock ``s`` moves an asset's price — and both ends of its confidence band — to
``price · (1 + s)``. A volatility shock ``v`` moves the annualized volatility the engine uses
(the EWMA of oracle returns, never below the asset's floor) to ``σ · (1 + v)``, and the
implied vol of every option on the asset likewise. Under the ``weighted`` and ``tiered``
models the EWMA volatility enters only the liquidation-latency shock, so on a book without
options a volatility shock changes ``health_latency`` and ``LATENCY_RISK`` (counted in
``latency_risk_after``) and nothing else; options are revalued at their shocked implied vols in
every model, and under ``portfolio`` the wider scan ranges and latency shocks move the grid.
A shock of an asset the book has no price for moves nothing (callers check names against the
configuration: ``Shocks.check_assets``). Every shock lies in
``[MIN_SHOCK, MAX_SHOCK]``; at most ``MAX_SHOCKS`` of them.

Every account is valued twice, vectorised, with the engine's own kernel: at the current prices
(``health_before``) and at the shocked ones (``health_after``, ``shortfall_after``).
Bad debt is ``Σ max(0, L − (C + U + O))`` over accounts, with ``C`` collateral and ``L``
liabilities unweighted, ``U`` perp PnL and ``O`` options value, all at the shocked prices.
An account whose health is unknown (``DEBT_UNKNOWN``) is never liquidatable; its shortfall
and bad debt count what is known of it (a lower bound).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from core.amounts import scaled
from margin.kernel import FLAG_DTYPE, BoolArray
from margin.model import Flag, MarginInputError, PriceInput
from margin.scenario import ScenarioBook, ScenarioValues
from margin.tiers import FloatArray, IndexArray

MAX_SHOCKS = 64
"""Price and volatility shocks together, per stress request."""
MIN_SHOCK = -0.99
"""A price can fall by 99 % at most (a price of zero is no price)."""
MAX_SHOCK = 10.0
"""… and rise elevenfold; the same bounds hold for volatility shocks."""
STRESS_THREADS = 2
"""Threads a stress pass may use (the portfolio model's option scan and linear losses): a
stress request waits for its two passes. A grid report (21 passes in the background) keeps
to one, so that the daemon keeps a core meanwhile."""
TOP_ACCOUNTS = 100
"""Newly liquidatable accounts listed, largest shortfall first."""
GRID_STEP_PERCENT = 5
GRID_MAX_PERCENT = 50
GRID_MOVES = tuple(
    p / 100 for p in range(-GRID_MAX_PERCENT, GRID_MAX_PERCENT + 1, GRID_STEP_PERCENT)
)
"""Price moves of the grid report: −50 % … +50 % in 5 % steps (21 points, 0 included)."""

_LATENCY_RISK = FLAG_DTYPE(Flag.LATENCY_RISK)


class StressInputError(MarginInputError):
    """A shock the stress pass refuses; ``field`` names it (``price_shocks.ETH``)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True, slots=True)
class Shocks:
    """Relative price and volatility shocks by asset, validated on construction."""

    price: Mapping[str, float] = field(default_factory=dict)
    vol: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.price) + len(self.vol) > MAX_SHOCKS:
            raise StressInputError("price_shocks", f"at most {MAX_SHOCKS} shocks in all")
        for name, shocks in (("price_shocks", self.price), ("vol_shocks", self.vol)):
            for asset, shock in shocks.items():
                ok = isinstance(shock, int | float) and math.isfinite(shock)
                if not ok or not MIN_SHOCK <= shock <= MAX_SHOCK:
                    raise StressInputError(
                        f"{name}.{asset}", f"must be a number from {MIN_SHOCK} to {MAX_SHOCK}"
                    )

    def check_assets(self, known: frozenset[str] | set[str]) -> None:
        """Raise ``StressInputError`` naming the first shocked asset not in ``known``."""
        for name, shocks in (("price_shocks", self.price), ("vol_shocks", self.vol)):
            for asset in shocks:
                if asset not in known:
                    raise StressInputError(f"{name}.{asset}", f"unknown asset {asset!r}")


def shocked_prices(prices: Mapping[str, PriceInput], shocks: Shocks) -> dict[str, PriceInput]:
    """``prices`` after ``shocks`` (an unpriced asset stays unpriced)."""
    out = dict(prices)
    for asset, price in prices.items():
        move = 1.0 + float(shocks.price.get(asset, 0.0))
        vol = 1.0 + float(shocks.vol.get(asset, 0.0))
        if move == 1.0 and vol == 1.0:
            continue
        out[asset] = PriceInput(
            asset=asset,
            price=price.price * move,
            status=price.status,
            volatility=price.volatility * vol,
            price_low=None if price.price_low is None else price.price_low * move,
            price_high=None if price.price_high is None else price.price_high * move,
        )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountStress:
    """A newly liquidatable account: health now and after the shocks (∞: owes nothing)."""

    account: str
    health_before: float
    health_after: float
    shortfall_after: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class StressReport:
    """What the shocks do to the whole book."""

    accounts: int
    liquidatable_before: int
    liquidatable_after: int
    latency_risk_before: int
    latency_risk_after: int
    health_unknown: int
    newly_liquidatable_count: int
    newly_liquidatable: tuple[AccountStress, ...]
    total_shortfall_after: Decimal
    bad_debt_after: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class GridPoint:
    """The book after one price move of one asset."""

    move: float
    liquidatable: int
    newly_liquidatable: int
    total_shortfall: Decimal
    bad_debt: Decimal


def bad_debt_units(values: ScenarioValues) -> FloatArray:
    """``max(0, L − (C + U + O))`` per account, in value units."""
    t = values.table
    equity = t.collateral_value + t.unrealized_pnl + values.options_value
    return np.maximum(t.liability_value - equity, 0.0)


def _total(units: FloatArray, decimals: int) -> Decimal:
    """Exact sum of integer-valued value units as USD (int64: no float rounding)."""
    return scaled(int(units.astype(np.int64).sum()), decimals)


def _liquidatable(values: ScenarioValues) -> BoolArray:
    """Mask of accounts with health < 1 (NaN, unknown, is not)."""
    mask: BoolArray = values.table.health < 1.0
    return mask


def run_stress(book: ScenarioBook, shocks: Shocks, *, top: int = TOP_ACCOUNTS) -> StressReport:
    """Value every account of ``book`` now and under ``shocks``. A shocked asset the book
    has no price for moves nothing: callers check names against the configuration
    (``Shocks.check_assets``)."""
    before = book.current(threads=STRESS_THREADS)
    after = book.evaluate(shocked_prices(book.prices, shocks), shocks.vol, threads=STRESS_THREADS)
    was, now = _liquidatable(before), _liquidatable(after)
    newly = np.flatnonzero(now & ~was)
    shortfall = after.table.shortfall
    decimals = book.value_decimals
    chosen = _largest(newly, shortfall, top)
    listed = tuple(
        AccountStress(
            account=book.accounts[i],
            health_before=float(before.table.health[i]),
            health_after=float(after.table.health[i]),
            shortfall_after=scaled(int(shortfall[i]), decimals),
        )
        for i in chosen.tolist()
    )
    return StressReport(
        accounts=len(shortfall),
        liquidatable_before=int(np.count_nonzero(was)),
        liquidatable_after=int(np.count_nonzero(now)),
        latency_risk_before=_count_flag(before, _LATENCY_RISK),
        latency_risk_after=_count_flag(after, _LATENCY_RISK),
        health_unknown=int(np.count_nonzero(np.isnan(after.table.health))),
        newly_liquidatable_count=len(newly),
        newly_liquidatable=listed,
        total_shortfall_after=_total(shortfall, decimals),
        bad_debt_after=_total(bad_debt_units(after), decimals),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GridReport:
    """The book under each move of the grid."""

    asset: str
    accounts: int
    liquidatable_before: int
    points: tuple[GridPoint, ...]


def stress_grid(
    book: ScenarioBook, asset: str, moves: tuple[float, ...] = GRID_MOVES
) -> GridReport:
    """The book after each price move of ``asset`` alone (one vectorised pass per move; an
    asset the book has no price for moves nothing)."""
    current = book.current()
    was = _liquidatable(current)
    decimals = book.value_decimals
    points = []
    for move in moves:
        after = book.evaluate(shocked_prices(book.prices, Shocks(price={asset: move})))
        now = _liquidatable(after)
        points.append(
            GridPoint(
                move=move,
                liquidatable=int(np.count_nonzero(now)),
                newly_liquidatable=int(np.count_nonzero(now & ~was)),
                total_shortfall=_total(after.table.shortfall, decimals),
                bad_debt=_total(bad_debt_units(after), decimals),
            )
        )
    return GridReport(
        asset=asset,
        accounts=len(was),
        liquidatable_before=int(np.count_nonzero(was)),
        points=tuple(points),
    )


def _count_flag(values: ScenarioValues, flag: np.uint16) -> int:
    return int(np.count_nonzero(values.table.flags & flag))


def _largest(index: IndexArray, shortfall: FloatArray, top: int) -> IndexArray:
    """Up to ``top`` of ``index``, largest ``shortfall`` first, ties by index."""
    if len(index) > top:
        values = shortfall[index]
        threshold = np.partition(values, len(values) - top)[len(values) - top]
        index = index[values >= threshold]  # ties at the threshold all stay candidates
    order = np.lexsort((index, -shortfall[index]))
    return index[order][:top]
