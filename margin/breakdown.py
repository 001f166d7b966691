"""Per-account breakdowns from the engine's own rows: what each holding and position counts for.

``MarginEngine.account_health`` builds them for a few accounts per cycle (those a keeper may
act on) from the same columns and market vectors the kernel summed, with the kernel's
rounding (``margin.kernel``), so the lines add up to the account's results. The pure-Python
reference (``margin.health.evaluate_account``) builds the same lines; tests hold the two
equal. Tiered collateral: a bucket's weighted value is shared out pro rata, the largest holding
taking the rounding remainder; its lines show the bucket's effective weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.amounts import scaled
from margin.kernel import MarketVectors, ceil_units_array, floor_clip_array, floor_units_array
from margin.model import Flag, HoldingValue, Position, PositionValue, PriceInput, Tier, TokenRisk
from margin.rows import HoldingTable, PositionTable
from margin.tiers import IndexArray, TierTable
from margin.valuation import ROW_CAP_UNITS, position_mark, role_price


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakdownSource:
    """What the breakdown reads of the engine: its rows, registries and market vectors."""

    holdings: HoldingTable
    positions: PositionTable
    position_inputs: Sequence[Position]
    tokens: Sequence[TokenRisk]
    token_group: IndexArray  # tiered group of each token (−1: flat)
    group_tiers: Sequence[tuple[Tier, ...]]
    collateral_tiers: TierTable
    mmr_tiers: TierTable
    prices: Mapping[str, PriceInput]
    market: MarketVectors
    value_decimals: int


def holding_lines(source: BreakdownSource, rows: Sequence[int]) -> tuple[HoldingValue, ...]:
    """One account's holding lines in (chain, token) order; zero balances that read fine are
    left out."""
    table, market, tokens = source.holdings, source.market, source.tokens
    index = np.array(rows, dtype=np.intp)
    token = table.token[index]
    amount = table.amount[index]
    units = floor_clip_array(market.token_scale[token] * amount)
    weighted = floor_units_array(units * market.token_weight[token])
    flags = np.where(amount > 0, market.token_flags[token], 0) | table.flags[index]
    unit_values = [int(u) for u in units.tolist()]
    weighted_values = [int(w) for w in weighted.tolist()]
    weights = [tokens[t].weight for t in token.tolist()]
    _share_buckets(source, token, unit_values, weighted_values, weights)
    lines = []
    for i, row in enumerate(rows):
        risk = tokens[int(token[i])]
        valued = bool(table.valued[row])
        raw = table.raw_int(row) if valued else None
        failed = bool(table.flags[row] & Flag.READ_FAILED)
        if not raw and not failed:
            continue
        price = source.prices.get(risk.asset)
        lines.append(
            HoldingValue(
                chain=risk.chain,
                token=risk.token,
                asset=risk.asset,
                role=risk.role,
                raw=raw,
                amount=scaled(raw or 0, risk.decimals or 0),
                price=0.0 if price is None else role_price(risk.role, price),
                value=scaled(abs(unit_values[i]), source.value_decimals),
                weight=weights[i],
                weighted_value=scaled(abs(weighted_values[i]), source.value_decimals),
                block=int(table.block[row]),
                flags=Flag(int(flags[i])),
            )
        )
    return tuple(sorted(lines, key=lambda line: (line.chain, line.token)))


def _share_buckets(
    source: BreakdownSource,
    token: IndexArray,
    units: list[int],
    weighted: list[int],
    weights: list[float],
) -> None:
    """Tiered buckets of one account: the bucket's weighted value, rounded once, shared out
    to its lines pro rata (the largest takes the remainder); in place."""
    group = source.token_group[token]
    members: dict[int, list[int]] = {}
    order = sorted(range(len(units)), key=lambda i: source.tokens[int(token[i])].key)
    for i in order:
        if group[i] >= 0:
            members.setdefault(int(group[i]), []).append(i)
    for g, lines in members.items():
        value = sum(units[i] for i in lines)
        curve = source.collateral_tiers.values(np.array([float(value)]), np.array([g]))
        bucket_weighted = float(curve[0])
        whole = int(floor_units_array(np.array([bucket_weighted]))[0])
        weight = bucket_weighted / value if value > 0 else source.group_tiers[g][0].rate
        largest = max(lines, key=lambda i: units[i])
        for i in lines:
            weights[i] = weight
            weighted[i] = units[i] * whole // value if value else 0
        weighted[largest] += whole - sum(weighted[i] for i in lines)


def position_lines(source: BreakdownSource, rows: Sequence[int]) -> tuple[PositionValue, ...]:
    """One account's open positions (size ≠ 0) in asset order, valued as the kernel does."""
    table, market = source.positions, source.market
    scale = market.scale
    index = np.array(rows, dtype=np.intp)
    asset, chain = table.asset[index], table.chain[index]
    size, entry = table.size[index], table.entry[index]
    long = size > 0
    mark = np.where(long, market.asset_low[asset], market.asset_high[asset])
    priced = market.asset_priced[asset]
    pnl = floor_clip_array((size * (mark - entry)) * scale)
    notional = ceil_units_array(np.minimum((np.abs(size) * mark) * scale, ROW_CAP_UNITS))
    maintenance = ceil_units_array(source.mmr_tiers.values(notional, table.schedule[index]))
    flags = market.asset_flags[asset] | market.chain_flags[chain]
    lines = []
    decimals = source.value_decimals
    for i, row in enumerate(rows):
        position = source.position_inputs[row]
        if not position.size:
            continue
        price = source.prices.get(position.asset)
        if price is None or not priced[i]:
            mark_i, pnl_i, notional_i, maint_i, mmr = 0.0, 0, 0, 0, 0.0
        else:
            mark_i = position_mark(position.size, price)
            pnl_i, notional_i, maint_i = int(pnl[i]), int(notional[i]), int(maintenance[i])
            mmr = maint_i / notional_i if notional_i else position.mmr_tiers[0].rate
        lines.append(
            PositionValue(
                asset=position.asset,
                chain=position.chain,
                size=position.size,
                entry_price=position.entry_price,
                mark=mark_i,
                notional=scaled(notional_i, decimals),
                unrealized_pnl=scaled(pnl_i, decimals),
                mmr=mmr,
                maintenance=scaled(maint_i, decimals),
                flags=Flag(int(flags[i])),
            )
        )
    return tuple(sorted(lines, key=lambda line: line.asset))
