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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
"""Contracts valued at once: bounds the (contracts × scenarios) temporaries to a few MB."""
MAX_RANK_SWEEPS = 8
"""Lines per pair up to which the per-pair sums add the second lines, then the third …
(one vectorised sweep each); beyond, ``np.add.reduceat``."""
SCAN_CHUNK_PAIRS = 2_048
"""(Account, group) pairs with options scanned at once: their (lines × scenarios)
temporaries, about half a MB, stay in the processor's cache."""
FEW_LINES = 2_048
"""Option lines up to which a scan takes the short way (``_scan_few``: an incremental
recompute's few hundred lines), without the layout that keeps a full pass in the cache;
among at most ``4 · FEW_LINES`` (account, group) pairs, as its per-pair sums are laid out
over every pair (a few MB at most)."""
CACHED_CONTRACTS = 20_000
"""Distinct contracts per scan up to which unit P&Ls go through the market's cache (beyond,
every line is its own contract and keeping them would cost more than it saves)."""
MIN_CHUNKS_PER_THREAD = 4
"""Scan chunks per thread below which a scan stays on the calling thread (threads cost
tens of µs to start; an incremental recompute scans one chunk or two)."""
BLOCK_ACCOUNTS = 16_384
"""Accounts whose (accounts × groups) linear losses and aggregation are computed at once:
temporaries of a few hundred kB that stay in the cache (and blocks for ``threads``)."""
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
    layout: OptionLayout | None = None
    """``option_layout`` of these rows when the caller kept it (the book did not change)."""

    def __len__(self) -> int:
        return len(self.size)


class UnitTable:
    """Rows of unit P&L by integer key (a contract id, or a contract id and horizon level),
    kept in one growing array and found by a binary search of the sorted keys: a lookup is
    a few vectorised calls, not a dict probe per key and an array per row stacked again
    (that was most of an incremental recompute's fixed cost)."""

    __slots__ = ("_keys", "_n", "_rows", "_slots")

    def __init__(self) -> None:
        self._keys: IndexArray = np.zeros(0, dtype=np.intp)  # sorted
        self._slots: IndexArray = np.zeros(0, dtype=np.intp)  # row of each key
        self._rows: FloatArray = np.empty((0, 0))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def clear(self) -> None:
        """Forget every row."""
        self._keys = self._slots = np.zeros(0, dtype=np.intp)
        self._n = 0

    def rows(self, keys: IndexArray, compute: Callable[[IndexArray], FloatArray]) -> FloatArray:
        """The row of each of ``keys``; ``compute(positions)`` gives the rows of the keys at
        ``positions`` (one position per distinct key) that are not kept yet. Beyond
        ``4 · CACHED_CONTRACTS`` rows the table starts again empty."""
        known = len(self._keys)
        at = np.searchsorted(self._keys, keys)
        if known:
            found = self._keys[np.minimum(at, known - 1)] == keys
            if found.all():
                hit: FloatArray = self._rows[self._slots[at]]
                return hit
            missing = np.flatnonzero(~found)
        else:
            missing = np.arange(len(keys), dtype=np.intp)
        fresh_keys, first = np.unique(keys[missing], return_index=True)
        if self._n + len(fresh_keys) > 4 * CACHED_CONTRACTS:
            self.clear()
            fresh_keys, first = np.unique(keys, return_index=True)
            missing = np.arange(len(keys), dtype=np.intp)
        fresh = compute(missing[first])
        start, end = self._n, self._n + len(fresh_keys)
        if end > len(self._rows) or fresh.shape[1] != self._rows.shape[1]:
            grown = np.empty((max(2 * end, 256), fresh.shape[1]))
            if start:  # a table's width never changes once it holds rows
                grown[:start] = self._rows[:start]
            self._rows = grown
        self._rows[start:end] = fresh
        self._n = end
        place = np.searchsorted(self._keys, fresh_keys)
        self._keys = np.insert(self._keys, place, fresh_keys)
        self._slots = np.insert(self._slots, place, np.arange(start, end, dtype=np.intp))
        out: FloatArray = self._rows[self._slots[np.searchsorted(self._keys, keys)]]
        return out


class UnitCache:
    """A market's unit P&Ls: over the grid (with the price first) by contract id, over the
    latency grid by (contract id, horizon level)."""

    __slots__ = ("grid", "latency")

    def __init__(self) -> None:
        self.grid = UnitTable()
        self.latency = UnitTable()

    def __len__(self) -> int:
        return len(self.grid) + len(self.latency)

    def clear(self) -> None:
        """Forget every unit P&L (the clock moved: τ changed)."""
        self.grid.clear()
        self.latency.clear()


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMarket:
    """Per group: scan range, volatility, correlations; per chain: latency; the grid.

    ``units`` caches each contract's price and unit P&L over the grid (and its unit P&L over
    the latency grid), by contract id, for as long as this market lives: rebuilt with it on
    every price or status change and emptied when the clock moves (``OptionBook.set_clock``),
    so an incremental recompute after a balance change runs no Black–Scholes at all. Contract
    ids must therefore name the same contract for the market's lifetime (``OptionBook``
    interns them). The other fields after ``units`` are derived once from the first ones
    (an incremental recompute would otherwise rebuild them on every call).
    """

    ranges: FloatArray
    sigma: FloatArray
    rho: FloatArray
    chain_latency: FloatArray
    z: float
    scale: float  # value units per USD
    grid: Grid
    latency_moves: FloatArray
    units: UnitCache = field(default_factory=UnitCache)
    moves: FloatArray = field(init=False)  # group_moves: s_gk (G × K)
    weighted_low: FloatArray = field(init=False)  # per group: min over k of w_k · s_gk
    weighted_high: FloatArray = field(init=False)  # max over k
    latency_top: float = field(init=False)  # largest latency move
    shock_factor: FloatArray = field(init=False)  # per group: z · σ_g
    ranks: npt.NDArray[np.integer[Any]] = field(init=False)  # _latency_ranks
    level_latency: FloatArray = field(init=False)  # _level_latencies
    neg_weight: FloatArray = field(init=False)  # −w_k, then −1 per latency move

    def __post_init__(self) -> None:
        moves = group_moves(self)
        weighted = self.grid.weight[None, :] * moves
        derived = {
            "moves": moves,
            "weighted_low": weighted.min(axis=1),
            "weighted_high": weighted.max(axis=1),
            "latency_top": float(np.max(self.latency_moves)),
            "shock_factor": self.z * self.sigma,
            "ranks": _latency_ranks(self.chain_latency),
            "level_latency": _level_latencies(self.chain_latency),
            "neg_weight": np.concatenate(
                [-self.grid.weight, np.full(len(self.latency_moves), -1.0)]
            ),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


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


def aggregate(loss: FloatArray, rho: FloatArray) -> FloatArray:
    """``sqrt(Σ_g Σ_h ρ_gh L_g L_h)`` per row of ``loss`` (n × G), summed g-major as
    ``np.einsum("ng,gh,nh->n", …)`` does, a column pair at a time (faster for few groups)."""
    by_group = np.ascontiguousarray(loss.T)
    quad = np.zeros(len(loss))
    term = np.empty(len(loss))
    for g, row in enumerate(rho.tolist()):
        for h, rho_gh in enumerate(row):
            np.multiply(by_group[g], rho_gh, out=term)
            term *= by_group[h]
            quad += term
    out: FloatArray = np.sqrt(np.maximum(quad, 0.0, out=quad))
    return out


def evaluate_portfolio(
    n: int,
    exposures: ExposureRows,
    options: OptionRows,
    market: GroupMarket,
    *,
    with_risk: bool = True,
    threads: int = 1,
) -> PortfolioResult:
    """Requirements and risk figures of ``n`` local accounts (without ``with_risk`` the
    greeks, VaR and ES are left at zero: health does not need them). ``threads`` > 1 scans
    the option chunks on that many threads (numpy releases the GIL inside its loops); the
    chunks are independent, so the results are the same bit for bit."""
    n_groups = len(market.ranges)
    pairs = n * n_groups
    e_pair = exposures.account * n_groups + exposures.group
    o_pair = options.account * n_groups + options.group
    linear = _by_pair(e_pair, exposures.value, pairs)
    speed = market.ranks
    level = _horizon_levels(pairs, speed, e_pair, exposures.chain, exposures.value != 0)
    if len(options):
        o_level = _horizon_levels(pairs, speed, o_pair, options.chain, options.size != 0)
        np.maximum(level, o_level, out=level)
    horizon = market.level_latency[level].reshape(n, n_groups)
    e = linear.reshape(n, n_groups)
    shock, loss, loss_lat = (np.empty((n, n_groups)) for _ in range(3))
    _run_chunks(
        lambda a0: _linear_block(
            slice(a0, a0 + BLOCK_ACCOUNTS), e, horizon, market, shock, loss, loss_lat
        ),
        range(0, n, BLOCK_ACCOUNTS),
        threads,
    )
    delta = e / market.scale if with_risk else np.zeros((n, n_groups))
    gamma, vega = np.zeros((n, n_groups)), np.zeros((n, n_groups))
    values = np.zeros(n)
    if len(options):
        line_values = _scan_options(
            options, o_pair, linear, shock.ravel(), level, market, loss, loss_lat, threads
        )
        values = _by_pair(options.account, line_values, n)
    if len(options) and with_risk:
        d, g, v = greeks(options.call, options.spot, options.strike, options.vol, options.tau)
        delta += _by_pair(o_pair, options.size * d * options.spot, pairs).reshape(n, n_groups)
        gamma += _by_pair(o_pair, options.size * g * options.spot**2 * GAMMA_MOVE, pairs).reshape(
            n, n_groups
        )
        vega += _by_pair(o_pair, options.size * v * GAMMA_MOVE, pairs).reshape(n, n_groups)
    maintenance, maintenance_lat = np.empty(n), np.empty(n)

    def aggregate_block(a0: int) -> None:
        rows = slice(a0, a0 + BLOCK_ACCOUNTS)
        # both grids' losses in one call (row by row: the same figures as two calls)
        both = aggregate(np.concatenate([loss[rows], loss_lat[rows]]), market.rho)
        half = len(both) // 2
        maintenance[rows], maintenance_lat[rows] = both[:half], both[half:]

    _run_chunks(aggregate_block, range(0, n, BLOCK_ACCOUNTS), threads)
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


def _linear_block(
    rows: slice,
    e: FloatArray,
    horizon: FloatArray,
    market: GroupMarket,
    shock: FloatArray,
    loss: FloatArray,
    loss_lat: FloatArray,
) -> None:
    """``shock``, ``loss`` and ``loss_lat`` of the accounts ``rows`` from their linear
    exposures ``e`` alone (pairs with options are rescanned later), written in place."""
    s = shock[rows]
    np.divide(horizon[rows], YEAR_S, out=s)
    np.multiply(market.shock_factor[None, :], np.sqrt(s, out=s), out=s)
    # −w·E·s is linear in s: the worst column is the lowest or the highest w·s
    neg_e = np.negative(e[rows])
    worst = np.multiply(neg_e, market.weighted_low, out=loss[rows])
    term = neg_e * market.weighted_high
    np.maximum(np.maximum(worst, term, out=worst), 0.0, out=worst)
    lat_top = market.latency_top
    up = s * lat_top
    down = np.maximum(np.multiply(np.negative(s, out=term), lat_top, out=term), -1.0, out=term)
    worst = np.multiply(neg_e, down, out=loss_lat[rows])
    np.maximum(np.maximum(worst, np.multiply(neg_e, up, out=up), out=worst), 0.0, out=worst)


def group_moves(market: GroupMarket) -> FloatArray:
    """``s_gk = max(−1, R_g · moves_k)`` (G × K): no price falls below zero."""
    out: FloatArray = np.maximum(market.ranges[:, None] * market.grid.moves[None, :], -1.0)
    return out


def latency_grid(shock: FloatArray, moves: FloatArray) -> FloatArray:
    """``max(−1, shock · j/n)`` per row of ``shock`` and latency move."""
    out: FloatArray = np.maximum(shock[:, None] * moves[None, :], -1.0)
    return out


def _latency_ranks(latency: FloatArray) -> npt.NDArray[np.integer[Any]]:
    """Per chain, 1 + its rank by latency (ascending, stable): level 0 is "no exposure".
    Bytes while they fit (``np.maximum.at`` is several times faster on them)."""
    dtype = np.uint8 if len(latency) < 255 else np.intp
    ranks: npt.NDArray[np.integer[Any]] = np.empty(len(latency), dtype=dtype)
    ranks[np.argsort(latency, kind="stable")] = np.arange(1, len(latency) + 1)
    return ranks


def _level_latencies(latency: FloatArray) -> FloatArray:
    """Latency of each level of ``_latency_ranks`` (0 s at level 0)."""
    return np.concatenate([[0.0], np.sort(latency, kind="stable")])


def _horizon_levels(
    pairs: int,
    ranks: npt.NDArray[np.integer[Any]],
    pair: IndexArray,
    chain: IndexArray,
    live: BoolArray,
) -> npt.NDArray[np.integer[Any]]:
    """Level of the slowest chain with non-zero exposure, per pair (0 without any)."""
    out: npt.NDArray[np.integer[Any]] = np.zeros(pairs, dtype=ranks.dtype)
    np.maximum.at(out, pair, np.where(live, ranks[chain], ranks.dtype.type(0)))
    return out


def _by_pair(pair: IndexArray, values: FloatArray, pairs: int) -> FloatArray:
    # numpy's stubs type bincount as integer; with float weights it returns float64
    return cast(FloatArray, np.bincount(pair, weights=values, minlength=pairs))


def _scan_options(
    options: OptionRows,
    o_pair: IndexArray,
    linear: FloatArray,
    shock: FloatArray,
    level: npt.NDArray[np.integer[Any]],
    market: GroupMarket,
    loss: FloatArray,
    loss_lat: FloatArray,
    threads: int = 1,
) -> FloatArray:
    """Rescan the pairs that hold options over the full grids; overwrite their losses; return
    each option row's signed market value in value units, rounded down (a held option counts
    a little less, a written one owes a little more), in the rows' order.

    Black–Scholes runs once per distinct contract (group, spot, right, strike, vol, τ) — and
    per distinct latency shock for the latency grid — not once per line: listed options are
    held by many accounts. Each line's P&L is then ``size ×`` its contract's unit P&L, rounded
    to whole value units so that the sums per pair are exact in any order of the lines. The
    lines are scanned a few thousand pairs at a time (``SCAN_CHUNK_PAIRS``), so that the
    (rows × scenarios) temporaries stay in the processor's cache. ``level`` is each pair's
    horizon level (``_horizon_levels``): with the contract it fixes the latency shock.
    Chunks write disjoint pairs of ``loss`` and ``loss_lat``: ``threads`` may scan them at once.
    """
    layout = options.layout
    if layout is None and len(options) <= FEW_LINES and len(linear) <= 4 * FEW_LINES:
        return _scan_few(options, o_pair, linear, shock, level, market, loss, loss_lat)
    if layout is None:
        layout = option_layout(o_pair, options.contract)
    grid = market.grid
    rep = layout.order[layout.contract_row]  # a row (original order) of each contract

    def keys(at: IndexArray) -> FloatArray:
        """(group, spot, call, strike, vol, τ) of the contracts at ``at``."""
        return _line_keys(options, rep[at])

    def scan_units(at: IndexArray) -> FloatArray:
        return _grid_units(keys(at), market)

    ids = options.contract[rep]
    priced = _cached(ids, market.units.grid, scan_units)
    unit = priced[:, 1:]
    # latency shocks: one per (group, horizon level); the contract fixes the group, and the
    # (group, level) the shock for the market's lifetime: (contract id, level) is the key
    n_levels = len(market.chain_latency) + 1
    row_pair = layout.pair_ids[layout.pair_of]  # per sorted row: its pair
    lat_id = layout.contract_of * n_levels + level[row_pair]
    lat_first, lat_of = _dense_unique(lat_id, len(ids) * n_levels)
    lat_contract = layout.contract_of[lat_first]
    lat_row_pair = row_pair[lat_first]

    def latency_units(at: IndexArray) -> FloatArray:
        return _latency_units(keys(lat_contract[at]), shock[lat_row_pair[at]], market)

    lat_key = ids[lat_contract] * n_levels + level[lat_row_pair]
    unit_lat = _cached(lat_key, market.units.latency, latency_units)
    # one row per (contract, horizon level): the grid's unit P&L, then the latency grid's
    both = np.concatenate([unit[lat_contract], unit_lat], axis=1)
    # per (group, horizon level): the moves of both grids, that multiply the linear exposure
    groups, columns = len(market.ranges), len(grid)
    pair_gl = (layout.pair_ids % groups) * n_levels + level[layout.pair_ids]
    gl_first, gl_of = _dense_unique(pair_gl, groups * n_levels)
    gl_pair = layout.pair_ids[gl_first]
    moves = _pair_moves(gl_pair, shock, market)
    neg_weight = market.neg_weight
    size = options.size[layout.order] * market.scale
    n_pairs, n_rows = len(layout.pair_ids), len(layout.order)

    def scan_chunk(p0: int) -> None:
        p1 = min(p0 + SCAN_CHUNK_PAIRS, n_pairs)
        r0 = int(layout.starts[p0])
        r1 = int(layout.starts[p1]) if p1 < n_pairs else n_rows
        pairs = layout.pair_ids[p0:p1]
        scan = _PairSums(layout, p0, p1, r0, r1)(both[lat_of[r0:r1]], size[r0:r1, None])
        total = linear[pairs][:, None] * moves[gl_of[p0:p1]]
        total += scan
        # −(w · P&L) on the grid, −P&L on the latency grid, written column by column: the
        # maxima are then taken down contiguous columns (one vector op per column) instead
        # of along 2,048 short rows. Either order gives the same maximum (the final
        # maximum with +0.0 leaves no −0.0 behind)
        worst = np.multiply(total.T, neg_weight[:, None], out=np.empty(total.shape[::-1]))
        np.put(loss, pairs, np.maximum(worst[:columns].max(axis=0), 0.0))
        np.put(loss_lat, pairs, np.maximum(worst[columns:].max(axis=0), 0.0))

    _run_chunks(scan_chunk, range(0, n_pairs, SCAN_CHUNK_PAIRS), threads)
    values = np.empty(n_rows)
    values[layout.order] = np.floor(
        options.size[layout.order] * priced[layout.contract_of, 0] * market.scale
    )
    return values


def _scan_few(
    options: OptionRows,
    o_pair: IndexArray,
    linear: FloatArray,
    shock: FloatArray,
    level: npt.NDArray[np.integer[Any]],
    market: GroupMarket,
    loss: FloatArray,
    loss_lat: FloatArray,
) -> FloatArray:
    """``_scan_options`` for a few lines (an incremental recompute): no layout, no contract
    numbering. Each line takes its contract's unit P&L rows from the market's cache (keyed as
    the full scan keys them, computed from the line itself on a miss: equal contract ids
    have equal inputs), and the lines' rounded P&Ls are added per pair with one ``np.bincount``:
    whole value units, so the sums equal the full scan's in any order. The same arithmetic
    otherwise, operation for operation: the results are the full scan's bit for bit."""
    n_levels = len(market.chain_latency) + 1

    def scan_units(at: IndexArray) -> FloatArray:
        return _grid_units(_line_keys(options, at), market)

    def latency_units(at: IndexArray) -> FloatArray:
        return _latency_units(_line_keys(options, at), shock[o_pair[at]], market)

    priced = _cached(options.contract, market.units.grid, scan_units)
    lat_key = options.contract * n_levels + level[o_pair]
    unit_lat = _cached(lat_key, market.units.latency, latency_units)
    both = np.concatenate([priced[:, 1:], unit_lat], axis=1)
    both *= (options.size * market.scale)[:, None]
    np.rint(both, out=both)
    # per pair, column by column: one bincount over (pair, column) cells, in row order
    width, cells = both.shape[1], len(linear) * both.shape[1]
    cell = (o_pair * width)[:, None] + np.arange(width)
    sums = np.bincount(cell.ravel(), weights=both.ravel(), minlength=cells)
    held = np.zeros(len(linear), dtype=np.bool_)
    held[o_pair] = True
    pairs = np.flatnonzero(held)
    scan = sums.reshape(len(linear), width)[pairs]
    total = linear[pairs][:, None] * _pair_moves(pairs, shock, market)
    total += scan
    worst = np.multiply(total.T, market.neg_weight[:, None], out=np.empty(total.shape[::-1]))
    columns = len(market.grid)
    np.put(loss, pairs, np.maximum(worst[:columns].max(axis=0), 0.0))
    np.put(loss_lat, pairs, np.maximum(worst[columns:].max(axis=0), 0.0))
    out: FloatArray = np.floor(options.size * priced[:, 0] * market.scale)
    return out


def _grid_units(keys: FloatArray, market: GroupMarket) -> FloatArray:
    """Unit P&Ls over the scenario grid, the price first, of contracts with ``keys``
    (``_line_keys``)."""
    moves = market.moves[keys[:, 0].astype(np.intp)]
    return _unit_pnl(keys, moves, market.grid.vol[None, :], with_price=True)


def _latency_units(keys: FloatArray, shock: FloatArray, market: GroupMarket) -> FloatArray:
    """Unit P&Ls over the latency grid of contracts with ``keys`` (``_line_keys``), each at
    its pair's latency ``shock``."""
    c = np.column_stack([keys, shock])
    return _unit_pnl(c, latency_grid(c[:, 6], market.latency_moves), np.zeros((1, 1)))


def _pair_moves(pairs: IndexArray, shock: FloatArray, market: GroupMarket) -> FloatArray:
    """Per (account, group) pair: the moves of both grids, that multiply its linear
    exposure (the scenario grid's of its group, then its latency grid's)."""
    groups = len(market.ranges)
    return np.concatenate(
        [market.moves[pairs % groups], latency_grid(shock[pairs], market.latency_moves)], axis=1
    )


def _line_keys(options: OptionRows, at: IndexArray) -> FloatArray:
    """(group, spot, call, strike, vol, τ) of the option lines at ``at``: the key of a
    unit P&L (the contract's terms and market, not its size or owner)."""
    return np.column_stack(
        [
            options.group[at].astype(np.float64),
            options.spot[at],
            options.call[at],
            options.strike[at],
            options.vol[at],
            options.tau[at],
        ]
    )


def _run_chunks(scan: Callable[[int], None], starts: range, threads: int) -> None:
    """``scan(start)`` for every start, on up to ``threads`` threads (each taking every
    ``threads``-th chunk: multi-line pairs come last in the layout, so both get some)."""
    threads = min(threads, len(starts) // MIN_CHUNKS_PER_THREAD)
    if threads <= 1:
        for start in starts:
            scan(start)
        return

    def share(first: int) -> None:
        for start in starts[first::threads]:
            scan(start)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scan") as pool:
        for done in [pool.submit(share, i) for i in range(threads)]:
            done.result()  # re-raises a worker's exception


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionLayout:
    """Option rows grouped by (account, group) pair, and their distinct contracts."""

    order: IndexArray  # rows grouped by pair (``option_layout``)
    pair_ids: IndexArray  # distinct pairs, in that order
    starts: IndexArray  # first sorted row of each pair
    counts: IndexArray  # rows of each pair
    pair_of: IndexArray  # per sorted row: index of its pair in pair_ids
    rank: IndexArray  # per sorted row: its place in its pair (0: first)
    contract_of: IndexArray  # per sorted row: index of its contract
    contract_row: IndexArray  # per contract: a sorted row holding it


def option_layout(o_pair: IndexArray, contract: IndexArray) -> OptionLayout:
    """Option rows (their ``account · groups + group`` pairs and contract ids) grouped by pair:
    pairs of one line first, then the others, each part sorted by pair (a chunk of pairs of
    one line each needs no sums); their contracts numbered (no sort of the contract ids)."""
    order = np.argsort(o_pair, kind="stable")
    sorted_pair, starts, counts = _runs(o_pair[order])
    alone = np.repeat(counts == 1, counts)
    if not alone.all():
        first = np.argsort(~alone, kind="stable")
        order = order[first]
        sorted_pair, starts, counts = _runs(sorted_pair[first])
    pair_of = np.repeat(np.arange(len(starts), dtype=np.intp), counts)
    rank = np.arange(len(order), dtype=np.intp) - starts[pair_of]
    ids = contract[order]
    top = int(ids.max()) + 1 if len(ids) else 0
    contract_row, contract_of = _dense_unique(ids, top)
    return OptionLayout(
        order=order,
        pair_ids=sorted_pair[starts],
        starts=starts,
        counts=counts,
        pair_of=pair_of,
        rank=rank,
        contract_of=contract_of,
        contract_row=contract_row,
    )


def _runs(sorted_pair: IndexArray) -> tuple[IndexArray, IndexArray, IndexArray]:
    """``sorted_pair`` (equal values adjacent), the start of each run and its length."""
    boundary = np.empty(len(sorted_pair), dtype=np.bool_)
    boundary[:1] = True
    np.not_equal(sorted_pair[1:], sorted_pair[:-1], out=boundary[1:])
    starts = np.flatnonzero(boundary)
    return sorted_pair, starts, np.diff(starts, append=len(sorted_pair))


def _dense_unique(ids: IndexArray, top: int) -> tuple[IndexArray, IndexArray]:
    """(a position of each distinct value of ``ids``, ascending by value; each position's
    distinct-value index) for non-negative ``ids`` below ``top``: ``np.unique``'s
    ``return_index``/``return_inverse`` in linear time while ``top`` is not far above
    ``len(ids)``."""
    if top > 8 * len(ids) + 4_096:
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    where = np.full(top, -1, dtype=np.intp)
    where[ids] = np.arange(len(ids), dtype=np.intp)  # some row of each value
    present = np.flatnonzero(where >= 0)
    number = np.zeros(top, dtype=np.intp)
    number[present] = np.arange(len(present), dtype=np.intp)
    return where[present], number[ids]


class _PairSums:
    """Sums of the lines' rounded P&L per pair, for the pairs ``p0:p1`` (rows ``r0:r1``)."""

    def __init__(self, layout: OptionLayout, p0: int, p1: int, r0: int, r1: int) -> None:
        self.single = r1 - r0 == p1 - p0  # one line per pair: nothing to add up
        self.starts = layout.starts[p0:p1] - r0
        self.pair_of = layout.pair_of[r0:r1] - p0
        self.rank = layout.rank[r0:r1]
        self.deepest = 0 if self.single else int(self.rank.max())

    def __call__(self, unit: FloatArray, size: FloatArray) -> FloatArray:
        """``size`` × ``unit`` (a fresh gather, overwritten) rounded to whole value units,
        summed per pair in row order (whole numbers: exact in any order)."""
        unit *= size
        np.rint(unit, out=unit)
        if self.single:
            return unit
        if self.deepest > MAX_RANK_SWEEPS:
            out: FloatArray = np.add.reduceat(unit, self.starts, axis=0)
            return out
        out = unit[self.starts]
        for r in range(1, self.deepest + 1):
            at = np.flatnonzero(self.rank == r)
            out[self.pair_of[at]] += unit[at]
        return out


def _cached(
    keys: IndexArray, table: UnitTable, compute: Callable[[IndexArray], FloatArray]
) -> FloatArray:
    """``compute`` of every key (the positions of ``keys`` it is given), through ``table``
    while there are few distinct contracts (beyond ``CACHED_CONTRACTS`` every line is its own
    contract and keeping them would cost more than it saves)."""
    if len(keys) > CACHED_CONTRACTS:
        return compute(np.arange(len(keys), dtype=np.intp))
    return table.rows(keys, compute)


def _unit_pnl(
    contracts: FloatArray, moves: FloatArray, vol_shocks: FloatArray, *, with_price: bool = False
) -> FloatArray:
    """``BS(S(1+s), σ(1+v)) − BS(S, σ)`` of one unit of each contract (rows of ``(group,
    spot, call, strike, vol, τ)``) per scenario column, USD, in chunks of rows; with
    ``with_price``, ``BS(S, σ)`` itself comes first, as column 0."""
    first = 1 if with_price else 0
    out = np.empty((len(contracts), first + moves.shape[1]))
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
        out[lo : lo + len(c), first:] = shocked - now
        if with_price:
            out[lo : lo + len(c), 0] = now[:, 0]
    return out
