"""The portfolio requirement of many accounts at once (DESIGN §3 "Portfolio model"), numpy.

Per (account, group) pair: the linear exposure ``E`` (holdings ± value, perps size · mark) and
the options on the group's assets. A pair without options loses most at the ends of the grid,
so its loss is ``max over k of −w_k · E · s_k`` without building the grid; a pair with options
is scanned column by column (``margin.scenarios.Grid``), options revalued by Black–Scholes at
``S·(1+s)`` and ``σ·(1+v)``. Losses combine across groups through ρ:
``M = sqrt(Σ_g Σ_h ρ_gh Loss_g Loss_h)``. The latency grid scales the moves to
``shock_g = z · σ_g · sqrt(T_g / year)`` (T_g the slowest chain the pair has exposure on).
Risk figures: per-group net dollar delta, gamma and vega, and the delta-normal ``var_99`` and
``es_975`` over the slowest horizon. Values are in value units (``10**-value_decimals`` USD)
except the per-group figures and VaR/ES, which are USD. Pure: no I/O, no clock (τ is given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from margin.latency import YEAR_S
from margin.options import greeks, price
from margin.scenarios import Grid
from margin.tiers import FloatArray, IndexArray

BoolArray = npt.NDArray[np.bool_]

VAR_Z = 2.3263
"""One-sided 99 % quantile of the normal (DESIGN §3)."""
ES_FACTOR = 0.05844094433345147 / 0.025
"""φ(1.96) / 0.025: the expected shortfall at 97.5 % of a normal, per σ."""
OPTION_CHUNK_ROWS = 16_384
"""Option rows scanned at once: bounds the (rows × scenarios) temporaries to a few MB."""
CACHED_CONTRACTS = 20_000
"""Distinct contracts per scan up to which unit P&Ls go through the market's cache (beyond,
every line is its own contract and a dict of them would cost more than it saves)."""
GAMMA_MOVE = 0.01
"""Gamma is reported as the change of dollar delta for a 1 % move; vega per vol point."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExposureRows:
    """Linear exposures (holdings and perps) in whole value units, signed (whole, so that
    sums are exact and an incremental recompute equals a full one bit for bit)."""

    account: IndexArray  # local account index
    group: IndexArray
    chain: IndexArray
    value: FloatArray


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionRows:
    """Options to value: one row per option line; ``tau`` in years (≤ 0: expired)."""

    account: IndexArray
    group: IndexArray
    chain: IndexArray
    call: BoolArray
    size: FloatArray
    spot: FloatArray
    strike: FloatArray
    vol: FloatArray
    tau: FloatArray
    contract: IndexArray  # equal ids ⇒ equal (group, spot, right, strike, vol, τ), see units

    def __len__(self) -> int:
        return len(self.size)

    def take(self, index: IndexArray | slice) -> OptionRows:
        """The rows at ``index``."""
        return OptionRows(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMarket:
    """Per group: scan range, volatility, correlations; per chain: latency; the grid.

    ``units`` caches each contract's unit P&L over the grid (and the latency grid), by contract
    id, for as long as this market lives: rebuilt with it on every price or status change and
    emptied when the clock moves (``OptionBook.set_clock``), so an incremental recompute after
    a balance change runs no Black–Scholes at all. Contract ids must therefore name the same
    contract for the market's lifetime (``OptionBook`` interns them).
    """

    ranges: FloatArray
    sigma: FloatArray
    rho: FloatArray
    chain_latency: FloatArray
    z: float
    scale: float  # value units per USD
    grid: Grid
    latency_moves: FloatArray
    units: dict[Any, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioResult:
    """Per account (and per account × group) results; see the module docstring for units."""

    maintenance: FloatArray
    maintenance_latency: FloatArray
    options_value: FloatArray
    var_99: FloatArray
    es_975: FloatArray
    loss: FloatArray  # (n, G) USD
    loss_latency: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    horizon: FloatArray

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Name → array."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def option_values(rows: OptionRows, scale: float) -> FloatArray:
    """Signed market value of each option row in value units, rounded down (a held option
    counts a little less, a written one owes a little more)."""
    value = rows.size * price(rows.call, rows.spot, rows.strike, rows.vol, rows.tau)
    return np.floor(value * scale)


def aggregate(loss: FloatArray, rho: FloatArray) -> FloatArray:
    """``sqrt(Σ_g Σ_h ρ_gh L_g L_h)`` per row of ``loss`` (n × G)."""
    quad = np.einsum("ng,gh,nh->n", loss, rho, loss)
    out: FloatArray = np.sqrt(np.maximum(quad, 0.0))
    return out


def evaluate_portfolio(
    n: int,
    exposures: ExposureRows,
    options: OptionRows,
    market: GroupMarket,
    *,
    with_risk: bool = True,
) -> PortfolioResult:
    """Requirements and risk figures of ``n`` local accounts (without ``with_risk`` the
    greeks, VaR and ES are left at zero: health does not need them)."""
    n_groups = len(market.ranges)
    pairs = n * n_groups
    e_pair = exposures.account * n_groups + exposures.group
    o_pair = options.account * n_groups + options.group
    linear = _by_pair(e_pair, exposures.value, pairs)
    horizon = _horizons(pairs, market.chain_latency, e_pair, exposures.chain, exposures.value != 0)
    o_horizon = _horizons(pairs, market.chain_latency, o_pair, options.chain, options.size != 0)
    np.maximum(horizon, o_horizon, out=horizon)
    horizon = horizon.reshape(n, n_groups)
    shock = market.z * market.sigma[None, :] * np.sqrt(horizon / YEAR_S)
    grid = market.grid
    weighted = grid.weight[None, :] * group_moves(market)  # (G, K): w_k · s_gk
    e = linear.reshape(n, n_groups)
    # −w·E·s is linear in s: the worst column is the lowest or the highest w·s
    loss = np.maximum(np.maximum(-e * weighted.min(axis=1), -e * weighted.max(axis=1)), 0.0)
    lat_top = float(np.max(market.latency_moves))
    up, down = shock * lat_top, np.maximum(-shock * lat_top, -1.0)
    loss_lat = np.maximum(np.maximum(-e * down, -e * up), 0.0)
    delta = e / market.scale
    gamma, vega = np.zeros((n, n_groups)), np.zeros((n, n_groups))
    values = np.zeros(n)
    if len(options):
        values = _by_pair(options.account, option_values(options, market.scale), n)
        _scan_options(options, o_pair, linear, shock.ravel(), market, loss, loss_lat)
    if len(options) and with_risk:
        d, g, v = greeks(options.call, options.spot, options.strike, options.vol, options.tau)
        delta += _by_pair(o_pair, options.size * d * options.spot, pairs).reshape(n, n_groups)
        gamma += _by_pair(o_pair, options.size * g * options.spot**2 * GAMMA_MOVE, pairs).reshape(
            n, n_groups
        )
        vega += _by_pair(o_pair, options.size * v * GAMMA_MOVE, pairs).reshape(n, n_groups)
    maintenance = aggregate(loss, market.rho)
    maintenance_lat = aggregate(loss_lat, market.rho)
    sigma_p = np.zeros(n)
    if with_risk:
        spread = delta * market.sigma[None, :]
        var_t = np.max(horizon, axis=1, initial=0.0) / YEAR_S
        quad = np.einsum("ng,gh,nh->n", spread, market.rho, spread)
        sigma_p = np.sqrt(np.maximum(quad, 0.0) * var_t)
    return PortfolioResult(
        maintenance=maintenance,
        maintenance_latency=maintenance_lat,
        options_value=values,
        var_99=VAR_Z * sigma_p,
        es_975=ES_FACTOR * sigma_p,
        loss=loss / market.scale,
        loss_latency=loss_lat / market.scale,
        delta=delta,
        gamma=gamma,
        vega=vega,
        horizon=horizon,
    )


def group_moves(market: GroupMarket) -> FloatArray:
    """``s_gk = max(−1, R_g · moves_k)`` (G × K): no price falls below zero."""
    out: FloatArray = np.maximum(market.ranges[:, None] * market.grid.moves[None, :], -1.0)
    return out


def latency_grid(shock: FloatArray, moves: FloatArray) -> FloatArray:
    """``max(−1, shock · j/n)`` per row of ``shock`` and latency move."""
    out: FloatArray = np.maximum(shock[:, None] * moves[None, :], -1.0)
    return out


def _horizons(
    pairs: int, latency: FloatArray, pair: IndexArray, chain: IndexArray, live: BoolArray
) -> FloatArray:
    """Largest latency of a chain with non-zero exposure, per pair (0 without any)."""
    out = np.zeros(pairs)
    order = np.argsort(latency, kind="stable")
    for c in order.tolist():  # ascending: the slowest chain's assignment lands last
        hit = live & (chain == c)
        out[pair[hit]] = latency[c]
    return out


def _by_pair(pair: IndexArray, values: FloatArray, pairs: int) -> FloatArray:
    # numpy's stubs type bincount as integer; with float weights it returns float64
    return cast(FloatArray, np.bincount(pair, weights=values, minlength=pairs))


def _scan_options(
    options: OptionRows,
    o_pair: IndexArray,
    linear: FloatArray,
    shock: FloatArray,
    market: GroupMarket,
    loss: FloatArray,
    loss_lat: FloatArray,
) -> None:
    """Rescan the pairs that hold options over the full grids; overwrite their losses.

    Black–Scholes runs once per distinct contract (group, spot, right, strike, vol, τ) — and
    per distinct latency shock for the latency grid — not once per line: listed options are
    held by many accounts. Each line's P&L is then ``size ×`` its contract's unit P&L, rounded
    to whole value units so that the sums per pair are exact in any order of the lines.
    """
    order = np.argsort(o_pair, kind="stable")
    rows = options.take(order)
    sorted_pair = o_pair[order]
    pair_ids, starts = np.unique(sorted_pair, return_index=True)
    grid, lat_moves = market.grid, market.latency_moves
    moves_g = group_moves(market)
    _, first, contract_of = np.unique(rows.contract, return_index=True, return_inverse=True)
    contract_of = contract_of.reshape(-1)
    keys = np.column_stack(
        [rows.group.astype(np.float64), rows.spot, rows.call, rows.strike, rows.vol, rows.tau]
    )
    contracts = keys[first]

    def scan_units(c: FloatArray) -> FloatArray:
        return _unit_pnl(c, moves_g[c[:, 0].astype(np.intp)], grid.vol[None, :])

    ids = rows.contract[first]
    unit = _cached(contracts, ids.tolist(), market.units, scan_units)
    levels, level_of = np.unique(shock[sorted_pair], return_inverse=True)
    lat_id = contract_of * len(levels) + level_of.reshape(-1)
    _, lat_first, lat_of = np.unique(lat_id, return_index=True, return_inverse=True)
    lat_contracts = np.column_stack([keys[lat_first], levels[level_of.reshape(-1)[lat_first]]])

    def latency_units(c: FloatArray) -> FloatArray:
        return _unit_pnl(c, latency_grid(c[:, 6], lat_moves), np.zeros((1, 1)))

    lat_ids = list(
        zip(ids[contract_of[lat_first]].tolist(), lat_contracts[:, 6].tolist(), strict=True)
    )
    unit_lat = _cached(lat_contracts, lat_ids, market.units, latency_units)
    size = rows.size[:, None] * market.scale
    scan = _pair_sums(unit[contract_of], size, starts)
    scan_lat = _pair_sums(unit_lat[lat_of.reshape(-1)], size, starts)
    groups = len(market.ranges)
    g = pair_ids % groups
    e = linear[pair_ids][:, None]
    total = e * moves_g[g] + scan
    worst = np.max(-(grid.weight[None, :] * total), axis=1)
    total_lat = e * latency_grid(shock[pair_ids], lat_moves) + scan_lat
    worst_lat = np.max(-total_lat, axis=1)
    np.put(loss, pair_ids, np.maximum(worst, 0.0))
    np.put(loss_lat, pair_ids, np.maximum(worst_lat, 0.0))


def _pair_sums(per_row: FloatArray, size: FloatArray, starts: IndexArray) -> FloatArray:
    """Rows' P&L (``size`` × unit P&L, rounded to whole units) summed per pair, in place."""
    per_row *= size
    np.rint(per_row, out=per_row)
    out: FloatArray = np.add.reduceat(per_row, starts, axis=0)
    return out


def _cached(
    contracts: FloatArray,
    keys: list[Any],
    cache: dict[Any, FloatArray],
    compute: Callable[[FloatArray], FloatArray],
) -> FloatArray:
    """``compute(contracts)``, through ``cache`` (by ``keys``: contract ids, or (id, latency
    shock)) while there are few distinct contracts."""
    if len(contracts) > CACHED_CONTRACTS:
        return compute(contracts)
    found = [cache.get(key) for key in keys]
    missing = [i for i, row in enumerate(found) if row is None]
    if missing:
        if len(cache) > 4 * CACHED_CONTRACTS:
            cache.clear()
        for i, row in zip(missing, compute(contracts[missing]), strict=True):
            cache[keys[i]] = found[i] = row
    return np.array(found).reshape(len(keys), -1)


def _unit_pnl(contracts: FloatArray, moves: FloatArray, vol_shocks: FloatArray) -> FloatArray:
    """``BS(S(1+s), σ(1+v)) − BS(S, σ)`` of one unit of each contract (rows of ``(group,
    spot, call, strike, vol, τ)``) per scenario column, USD, in chunks of rows."""
    out = np.empty((len(contracts), moves.shape[1]))
    for lo in range(0, len(contracts), OPTION_CHUNK_ROWS):
        c = contracts[lo : lo + OPTION_CHUNK_ROWS]
        call = c[:, 2:3] != 0
        spot, strike, vol, tau = c[:, 1:2], c[:, 3:4], c[:, 4:5], c[:, 5:6]
        now = price(call, spot, strike, vol, tau)
        shocked = price(
            call,
            spot * (1.0 + moves[lo : lo + OPTION_CHUNK_ROWS]),
            strike,
            vol * (1.0 + vol_shocks),
            tau,
        )
        out[lo : lo + len(c)] = shocked - now
    return out
