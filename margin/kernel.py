"""Vectorized health of many accounts: the inner loop of ``margin.engine``.

Row by row this runs the operations of ``margin.valuation`` in the same order (numpy ufuncs
are elementwise IEEE-754, nothing fused), then sums rows per account with ``np.bincount``.
Every summed quantity is an integer-valued float64 below 2**53 (see ``margin.valuation``), so
the sums are exact whatever the order: a full recompute, an incremental one and the
reference ``margin.health`` give bit-identical results.

Inputs are *local*: account indices ``0..n-1`` and bucket indices ``0..nb-1`` of the slice being
evaluated (the whole table for a full recompute, a few accounts for an incremental one).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from margin.model import HELD_REASONS, Flag
from margin.tiers import FloatArray, IndexArray, TierTable
from margin.valuation import ROW_CAP_UNITS, SNAP

FLAG_DTYPE = np.uint16
"""The engine's flag columns: ``Flag`` needs nine bits since ``ORACLE_DRIFT``."""
FlagArray = npt.NDArray[np.uint16]
BoolArray = npt.NDArray[np.bool_]

_LIQUIDATABLE = FLAG_DTYPE(Flag.LIQUIDATABLE)
_LATENCY_RISK = FLAG_DTYPE(Flag.LATENCY_RISK)
_DEBT_UNKNOWN = FLAG_DTYPE(Flag.DEBT_UNKNOWN)
_HELD = FLAG_DTYPE(HELD_REASONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketVectors:
    """Numbers derived from prices, volatilities and chain statuses, per token / asset / chain.

    Rebuilt (cheaply: a few hundred entries) whenever a price or a chain status changes.
    """

    scale: float
    token_scale: FloatArray  # signed value units per whole token; 0 when unpriced
    token_weight: FloatArray  # flat weight; 0 for tokens sliced in tiered buckets
    token_factor: FloatArray  # (1 − shock) for collateral, (1 + shock) for debt
    token_flags: FlagArray  # price flags | chain flags
    asset_low: FloatArray  # long mark; 0 when unpriced
    asset_high: FloatArray  # short mark; 0 when unpriced
    asset_priced: BoolArray
    asset_flags: FlagArray
    chain_flags: FlagArray
    long_factor: FloatArray  # [asset, chain] → 1 − shock (≥ 0)
    short_factor: FloatArray  # [asset, chain] → 1 + shock


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldingRows:
    """Holdings to evaluate, and the tiered buckets their tiered rows fall into."""

    key: IndexArray  # 2 · account + side (0 collateral, 1 debt)
    token: IndexArray
    amount: FloatArray  # raw / 10**decimals (the last good value of a failed read)
    flags: FlagArray  # READ_FAILED / DEBT_UNKNOWN of each row (``margin.health.read_flags``)
    tiered: IndexArray  # positions in these arrays of rows sliced in buckets
    bucket: IndexArray  # bucket of each tiered row
    bucket_account: IndexArray
    bucket_schedule: IndexArray


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionRows:
    """Positions to evaluate."""

    account: IndexArray
    asset: IndexArray
    chain: IndexArray
    size: FloatArray
    entry: FloatArray
    schedule: IndexArray


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthTable:
    """Per-account results as arrays. Money is in value units (``10**-value_decimals`` USD),
    exact integers held in float64; ``flags`` is a ``Flag`` bitmask; ``health`` and
    ``health_latency`` are NaN (unknown) for accounts flagged ``DEBT_UNKNOWN``."""

    collateral_value: FloatArray
    weighted_collateral: FloatArray
    liability_value: FloatArray
    weighted_liability: FloatArray
    unrealized_pnl: FloatArray
    maintenance: FloatArray
    health: FloatArray
    health_latency: FloatArray
    shortfall: FloatArray
    flags: FlagArray
    actionable: BoolArray

    @classmethod
    def empty(cls, n: int) -> HealthTable:
        """Results of ``n`` accounts that hold nothing: zero money, infinite health."""
        return cls(
            collateral_value=np.zeros(n),
            weighted_collateral=np.zeros(n),
            liability_value=np.zeros(n),
            weighted_liability=np.zeros(n),
            unrealized_pnl=np.zeros(n),
            maintenance=np.zeros(n),
            health=np.full(n, np.inf),
            health_latency=np.full(n, np.inf),
            shortfall=np.zeros(n),
            flags=np.zeros(n, dtype=FLAG_DTYPE),
            actionable=np.zeros(n, dtype=np.bool_),
        )

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Name → array, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def select(self, index: slice | IndexArray) -> HealthTable:
        """A copy of the rows at ``index``."""
        return HealthTable(**{k: np.array(v[index]) for k, v in self.columns().items()})

    def __len__(self) -> int:
        return len(self.health)


def floor_units_array(x: FloatArray) -> FloatArray:
    """``valuation.floor_units`` elementwise, in place."""
    nudge = np.abs(x)
    nudge *= SNAP
    x += nudge
    return np.floor(x, out=x)


def ceil_units_array(x: FloatArray) -> FloatArray:
    """``valuation.ceil_units`` elementwise, in place."""
    nudge = np.abs(x)
    nudge *= SNAP
    x -= nudge
    return np.ceil(x, out=x)


def floor_clip_array(x: FloatArray) -> FloatArray:
    """``valuation.holding_units`` / ``pnl_units`` elementwise (clip, then floor), in place."""
    return floor_units_array(np.clip(x, -ROW_CAP_UNITS, ROW_CAP_UNITS, out=x))


def _sum(index: IndexArray, values: FloatArray, n: int) -> FloatArray:
    # numpy's stubs type bincount as integer; with float weights it returns float64
    return cast(FloatArray, np.bincount(index, weights=values, minlength=n))


def _ratio(equity: FloatArray, requirement: FloatArray) -> FloatArray:
    """``margin.health.health_ratio`` elementwise."""
    out = np.full(len(equity), np.inf)
    np.divide(equity, requirement, out=out, where=requirement > 0)
    out[equity < 0] = 0.0
    return out


def evaluate(
    n: int,
    holdings: HoldingRows,
    positions: PositionRows,
    market: MarketVectors,
    collateral_tiers: TierTable,
    mmr_tiers: TierTable,
    *,
    extra_value: FloatArray | None = None,
    extra_maintenance: FloatArray | None = None,
    extra_flags: FlagArray | None = None,
) -> HealthTable:
    """Results of ``n`` (local) accounts from their holdings and positions; ``extra_*`` are
    per-account additions to U, to M (now and after the shock) and to the flags (options,
    ``margin.portfolio_kernel.option_charges``)."""
    flags = np.zeros(n, dtype=FLAG_DTYPE)
    cv, cw, lv, lw, cw_lat, lw_lat = _holding_sums(n, holdings, market, collateral_tiers, flags)
    pnl, maint, pnl_lat, maint_lat = _position_sums(n, positions, market, mmr_tiers, flags)
    if extra_value is not None:
        pnl, pnl_lat = pnl + extra_value, pnl_lat + extra_value
    if extra_maintenance is not None:
        maint, maint_lat = maint + extra_maintenance, maint_lat + extra_maintenance
    if extra_flags is not None:
        flags |= extra_flags
    return finish(
        flags=flags,
        collateral_value=cv,
        weighted_collateral=cw,
        liability_value=lv,
        weighted_liability=lw,
        unrealized_pnl=pnl,
        maintenance=maint,
        equity_latency=cw_lat + pnl_lat,
        requirement_latency=lw_lat + maint_lat,
    )


def finish(
    *,
    flags: FlagArray,
    collateral_value: FloatArray,
    weighted_collateral: FloatArray,
    liability_value: FloatArray,
    weighted_liability: FloatArray,
    unrealized_pnl: FloatArray,
    maintenance: FloatArray,
    equity_latency: FloatArray,
    requirement_latency: FloatArray | None = None,
) -> HealthTable:
    """Health, shortfall, flags and ``actionable`` from the sums (``requirement_latency``
    defaults to the requirement now, as in the portfolio model)."""
    num, den = weighted_collateral + unrealized_pnl, weighted_liability + maintenance
    den_lat = den if requirement_latency is None else requirement_latency
    health, health_latency = _ratio(num, den), _ratio(equity_latency, den_lat)
    unknown = (flags & _DEBT_UNKNOWN) != 0
    health[unknown] = np.nan  # NaN compares false: neither LIQUIDATABLE nor LATENCY_RISK
    health_latency[unknown] = np.nan
    liquidatable = health < 1.0
    flags[liquidatable] |= _LIQUIDATABLE
    flags[(health >= 1.0) & (health_latency < 1.0)] |= _LATENCY_RISK
    return HealthTable(
        collateral_value=collateral_value,
        weighted_collateral=weighted_collateral,
        liability_value=liability_value,
        weighted_liability=weighted_liability,
        unrealized_pnl=unrealized_pnl,
        maintenance=maintenance,
        health=health,
        health_latency=health_latency,
        shortfall=np.maximum(den - num, 0.0),
        flags=flags,
        actionable=liquidatable & ((flags & _HELD) == 0),
    )


def _holding_sums(
    n: int, rows: HoldingRows, market: MarketVectors, tiers: TierTable, flags: FlagArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Collateral and debt sums per account; ORs holding flags into ``flags``."""
    token = rows.token
    units = floor_clip_array(market.token_scale[token] * rows.amount)
    weighted = floor_units_array(units * market.token_weight[token])
    factor = market.token_factor[token]
    shocked = floor_units_array(weighted * factor)
    by_side = 2 * n
    value = _sum(rows.key, units, by_side).reshape(n, 2)
    weighted_sum = _sum(rows.key, weighted, by_side).reshape(n, 2)
    shocked_sum = _sum(rows.key, shocked, by_side).reshape(n, 2)
    cw, cw_lat = weighted_sum[:, 0].copy(), shocked_sum[:, 0].copy()
    if len(rows.tiered):
        t_units = units[rows.tiered]
        nb = len(rows.bucket_account)
        bucket_value = _sum(rows.bucket, t_units, nb)
        bucket_shocked = _sum(rows.bucket, floor_units_array(t_units * factor[rows.tiered]), nb)
        bucket_weighted = tiers.values(bucket_value, rows.bucket_schedule)
        ratio = np.zeros(nb)
        np.divide(bucket_shocked, bucket_value, out=ratio, where=bucket_value > 0)
        cw_lat += _sum(rows.bucket_account, floor_units_array(bucket_weighted * ratio), n)
        cw += _sum(rows.bucket_account, floor_units_array(bucket_weighted), n)
    if market.token_flags.any():
        row_flags = market.token_flags[token]
        hit = np.flatnonzero((row_flags != 0) & (rows.amount > 0))
        np.bitwise_or.at(flags, rows.key[hit] >> 1, row_flags[hit])
    failed = np.flatnonzero(rows.flags)
    if len(failed):
        np.bitwise_or.at(flags, rows.key[failed] >> 1, rows.flags[failed])
    # 0.0 − x rather than −x: an account without debt shows 0.0, not −0.0.
    lv, lw, lw_lat = 0.0 - value[:, 1], 0.0 - weighted_sum[:, 1], 0.0 - shocked_sum[:, 1]
    return value[:, 0].copy(), cw, lv, lw, cw_lat, lw_lat


def _position_sums(
    n: int, rows: PositionRows, market: MarketVectors, tiers: TierTable, flags: FlagArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """PnL and requirement per account, now and after the shock; ORs flags into ``flags``."""
    if len(rows.size) == 0:
        return np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    long = rows.size > 0
    mark = np.where(long, market.asset_low[rows.asset], market.asset_high[rows.asset])
    priced = market.asset_priced[rows.asset]
    factor = np.where(
        long,
        market.long_factor[rows.asset, rows.chain],
        market.short_factor[rows.asset, rows.chain],
    )
    out = []
    for m in (mark, mark * factor):
        pnl = floor_clip_array((rows.size * (m - rows.entry)) * market.scale)
        notional = ceil_units_array(
            np.minimum((np.abs(rows.size) * m) * market.scale, ROW_CAP_UNITS)
        )
        maint = ceil_units_array(tiers.values(notional, rows.schedule))
        out.append(_sum(rows.account, np.where(priced, pnl, 0.0), n))
        out.append(_sum(rows.account, np.where(priced, maint, 0.0), n))
    row_flags = market.asset_flags[rows.asset] | market.chain_flags[rows.chain]
    hit = np.flatnonzero((row_flags != 0) & (rows.size != 0))
    np.bitwise_or.at(flags, rows.account[hit], row_flags[hit])
    return out[0], out[1], out[2], out[3]
