"""The engine's side of the portfolio model: its rows → ``margin.portfolio`` → a ``HealthTable``.

``build_portfolio_vectors`` maps tokens, assets and chains onto risk groups and prices the
groups (scan ranges, volatilities, correlations) whenever the market changes;
``evaluate_portfolio_accounts`` values a slice of accounts: C and L unweighted (each holding
rounded as in the other models: collateral down, debt up), U the perps' PnL, O the options'
market value (each row rounded down), M and M_lat rounded up.
``health = max(0, C + U + O) / (L + M)``, ``health_latency = max(0, C + U + O − M_lat) / (L + M)``.

Every model accepts options (``option_charges``): under ``weighted`` and ``tiered`` an option
counts at its market value, and a written option (size < 0) is charged, as maintenance, its value
after an adverse move of its group's base scan range (calls up, puts down).

The result's ``unrealized_pnl`` column is U + O (what positions are worth) and
``weighted_collateral``/``weighted_liability`` equal C and L (the grid replaces haircuts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from margin.kernel import (
    FLAG_DTYPE,
    HealthTable,
    HoldingRows,
    MarketVectors,
    PositionRows,
    ceil_units_array,
    finish,
    floor_clip_array,
)
from margin.latency import YEAR_S
from margin.model import ChainInput, PriceInput, TokenRisk
from margin.options import price
from margin.portfolio import (
    ExposureRows,
    GroupMarket,
    OptionLayout,
    OptionRows,
    PortfolioResult,
    evaluate_portfolio,
)
from margin.scenarios import (
    PortfolioParams,
    correlation_matrix,
    group_names,
    latency_moves,
    scan_ranges,
    scenario_grid,
)
from margin.tiers import FloatArray, IndexArray


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionInputRows:
    """Option lines of the accounts evaluated (``account`` local), as the book stores them."""

    account: IndexArray
    asset: IndexArray
    chain: IndexArray
    call: np.ndarray
    size: FloatArray
    strike: FloatArray
    expiry: FloatArray
    vol: FloatArray
    contract: IndexArray  # equal ids: same asset, right, strike, expiry and implied vol
    layout: OptionLayout | None = None
    """``margin.portfolio.option_layout`` of these rows by (account, group), when the book
    keeps it (``OptionBook``: valid while its option lines and groups do not change)."""

    def __len__(self) -> int:
        return len(self.size)

    @classmethod
    def empty(cls) -> OptionInputRows:
        """No options."""
        i, f = np.zeros(0, dtype=np.intp), np.zeros(0)
        return cls(
            account=i,
            asset=i,
            chain=i,
            call=np.zeros(0, dtype=np.bool_),
            size=f,
            strike=f,
            expiry=f,
            vol=f,
            contract=i,
        )

    def copy(self) -> OptionInputRows:
        """A copy of every column, the layout kept (same rows, same order)."""
        return replace(self, **{f.name: getattr(self, f.name).copy() for f in _COLUMNS})


_COLUMNS = tuple(f for f in fields(OptionInputRows) if f.name != "layout")


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioVectors:
    """Tokens, assets and chains mapped onto risk groups, and the groups' market."""

    groups: tuple[str, ...]
    token_group: IndexArray
    token_chain: IndexArray
    asset_group: IndexArray
    asset_mid: FloatArray  # option spot (the oracle price); 0 when unpriced
    asset_vol_shock: FloatArray  # multiplies implied vols (stress); 1 normally
    option_range: FloatArray  # per asset: its group's base scan range (other models' rule)
    market: GroupMarket


def build_portfolio_vectors(
    *,
    params: PortfolioParams,
    assets: Sequence[str],
    prices: Mapping[str, PriceInput],
    chains: Sequence[ChainInput],
    tokens: Sequence[TokenRisk],
    z: float,
    scale: float,
    vol_shocks: Mapping[str, float] | None = None,
) -> PortfolioVectors:
    """The vectors for the current prices; ``vol_shocks`` (asset → v) multiplies options'
    implied volatilities by ``1 + v`` (stress; the caller shocks the EWMA estimate itself)."""
    shocks = dict(vol_shocks or {})
    groups = group_names(params, assets)
    group_ids = {g: i for i, g in enumerate(groups)}
    asset_ids = {a: i for i, a in enumerate(assets)}
    chain_ids = {c.name: i for i, c in enumerate(chains)}
    volatility = {a: p.volatility for a, p in prices.items() if a in asset_ids}
    ranges, sigma = scan_ranges(params, groups, volatility)
    return PortfolioVectors(
        groups=tuple(groups),
        token_group=np.array(
            [group_ids[params.group_of(t.asset)] for t in tokens], dtype=np.intp
        ).reshape(-1),
        token_chain=np.array([chain_ids[t.chain] for t in tokens], dtype=np.intp).reshape(-1),
        asset_group=np.array([group_ids[params.group_of(a)] for a in assets], dtype=np.intp),
        asset_mid=np.array([prices[a].price if a in prices else 0.0 for a in assets]),
        asset_vol_shock=np.array([1.0 + shocks.get(a, 0.0) for a in assets]),
        option_range=np.array([params.base_range(params.group_of(a)) for a in assets]),
        market=GroupMarket(
            ranges=ranges,
            sigma=sigma,
            rho=correlation_matrix(params, groups),
            chain_latency=np.array([c.liquidation_latency_s for c in chains], dtype=np.float64),
            z=z,
            scale=scale,
            grid=scenario_grid(params),
            latency_moves=latency_moves(params),
        ),
    )


def option_rows(
    options: OptionInputRows, market: MarketVectors, vectors: PortfolioVectors, now: float
) -> OptionRows:
    """Priced option rows for ``margin.portfolio`` (unpriced assets count with size 0)."""
    priced = market.asset_priced[options.asset]
    spot = vectors.asset_mid[options.asset]
    return OptionRows(
        account=options.account,
        group=vectors.asset_group[options.asset],
        chain=options.chain,
        call=options.call,
        size=np.where(priced, options.size, 0.0),
        spot=np.where(priced, spot, 1.0),
        strike=options.strike,
        vol=options.vol * vectors.asset_vol_shock[options.asset],
        tau=(options.expiry - now) / YEAR_S,
        contract=options.contract,
        layout=options.layout,
    )


def option_flags(n: int, options: OptionInputRows, market: MarketVectors) -> np.ndarray:
    """Flags the options' prices and chains put on their accounts."""
    flags = np.zeros(n, dtype=FLAG_DTYPE)
    if not (market.asset_flags.any() or market.chain_flags.any()):
        return flags  # every price and chain fine (most of the time)
    row_flags = market.asset_flags[options.asset] | market.chain_flags[options.chain]
    hit = np.flatnonzero((row_flags != 0) & (options.size != 0))
    np.bitwise_or.at(flags, options.account[hit], row_flags[hit])
    return flags


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionCharge:
    """What options add to an account under ``weighted``/``tiered``: market value (to U),
    maintenance (to M) and flags."""

    value: FloatArray
    maintenance: FloatArray
    flags: np.ndarray


def option_charges(
    n: int,
    options: OptionInputRows,
    market: MarketVectors,
    vectors: PortfolioVectors,
    now: float,
) -> OptionCharge:
    """Options valued at market, written ones charged their value after an adverse move of
    the base scan range (``module docstring``)."""
    rows = option_rows(options, market, vectors, now)
    scale = market.scale
    value = np.floor(
        rows.size * price(rows.call, rows.spot, rows.strike, rows.vol, rows.tau) * scale
    )
    move = vectors.option_range[options.asset]
    adverse = rows.spot * np.where(rows.call, 1.0 + move, 1.0 - move)
    written = np.maximum(-rows.size, 0.0)
    shocked = written * price(rows.call, adverse, rows.strike, rows.vol, rows.tau) * scale
    return OptionCharge(
        value=_sum(rows.account, value, n),
        maintenance=_sum(rows.account, ceil_units_array(shocked), n),
        flags=option_flags(n, options, market),
    )


def _sum(index: IndexArray, values: FloatArray, n: int) -> FloatArray:
    out: FloatArray = np.bincount(index, weights=values, minlength=n).astype(np.float64)
    return out


def evaluate_portfolio_accounts(
    n: int,
    holdings: HoldingRows,
    positions: PositionRows,
    options: OptionInputRows,
    market: MarketVectors,
    vectors: PortfolioVectors,
    now: float,
    *,
    with_risk: bool = False,
    threads: int = 1,
) -> tuple[HealthTable, PortfolioResult]:
    """Results of ``n`` local accounts under the portfolio model, and (``with_risk``) their
    greeks, VaR and ES; ``threads``: see ``margin.portfolio.evaluate_portfolio``."""
    flags = np.zeros(n, dtype=FLAG_DTYPE)
    token = holdings.token
    units = floor_clip_array(market.token_scale[token] * holdings.amount)
    value = _sum(holdings.key, units, 2 * n).reshape(n, 2)
    collateral, liability = value[:, 0].copy(), 0.0 - value[:, 1]
    if market.token_flags.any():
        row_flags = market.token_flags[token]
        hit = np.flatnonzero((row_flags != 0) & (holdings.amount > 0))
        np.bitwise_or.at(flags, holdings.key[hit] >> 1, row_flags[hit])
    failed = np.flatnonzero(holdings.flags)
    if len(failed):
        np.bitwise_or.at(flags, holdings.key[failed] >> 1, holdings.flags[failed])
    if len(positions.size):
        long = positions.size > 0
        mark = np.where(long, market.asset_low[positions.asset], market.asset_high[positions.asset])
        priced = market.asset_priced[positions.asset]
        pnl_rows = floor_clip_array((positions.size * (mark - positions.entry)) * market.scale)
        pnl = _sum(positions.account, np.where(priced, pnl_rows, 0.0), n)
        p_flags = market.asset_flags[positions.asset] | market.chain_flags[positions.chain]
        hit = np.flatnonzero((p_flags != 0) & (positions.size != 0))
        np.bitwise_or.at(flags, positions.account[hit], p_flags[hit])
        p_exposure = np.where(priced, np.rint(positions.size * mark * market.scale), 0.0)
    else:  # no perps: nothing to mark (most incremental batches)
        pnl, p_exposure = np.zeros(n), np.zeros(0)
    flags |= option_flags(n, options, market)
    # holdings then positions, each column written in place (no concatenated copies)
    h, rows = len(token), len(token) + len(positions.size)
    account, group = np.empty(rows, dtype=np.intp), np.empty(rows, dtype=np.intp)
    chain, exposure = np.empty(rows, dtype=np.intp), np.empty(rows)
    np.right_shift(holdings.key, 1, out=account[:h])
    np.take(vectors.token_group, token, out=group[:h])
    np.take(vectors.token_chain, token, out=chain[:h])
    exposure[:h] = units
    account[h:] = positions.account
    group[h:] = vectors.asset_group[positions.asset]
    chain[h:] = positions.chain
    exposure[h:] = p_exposure
    exposures = ExposureRows(account=account, group=group, chain=chain, value=exposure)
    result = evaluate_portfolio(
        n,
        exposures,
        option_rows(options, market, vectors, now),
        vectors.market,
        with_risk=with_risk,
        threads=threads,
    )
    maintenance = ceil_units_array(result.maintenance.copy())
    maintenance_lat = ceil_units_array(result.maintenance_latency.copy())
    worth = pnl + result.options_value
    table = finish(
        flags=flags,
        collateral_value=collateral,
        weighted_collateral=collateral.copy(),
        liability_value=liability,
        weighted_liability=liability.copy(),
        unrealized_pnl=worth,
        maintenance=maintenance,
        equity_latency=collateral + worth - maintenance_lat,
    )
    return table, result
