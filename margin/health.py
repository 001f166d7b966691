"""Health of one account in plain Python: the reference implementation of DESIGN §3.

``margin.engine`` computes the same numbers for every account at once with numpy and agrees
with this module bit for bit; this module is its test oracle and builds the per-chain,
per-token breakdown keepers see. Rounding and precision: see ``margin.valuation``.

Tiers (model ``tiered``). A collateral token with tiers is sliced on the account's *aggregate*
value across chains of the tokens that share its asset and its schedule (a *bucket*): USDC on
three chains is one exposure, and spreading it over chains must not dodge the size haircut.
Tokens without tiers keep their flat weight; liabilities are always flat. A bucket's weighted
value is rounded once; the breakdown shows its effective weight and each holding's pro-rata
share (the largest holding takes the rounding remainder, so the lines add up).

Latency (DESIGN §3). Flat holding: ``weighted_h · (1 ∓ shock_h)``. Tiered bucket:
``Σ_h share_h · (1 − shock_h)`` = the bucket's weighted value times the value-weighted mean of
``(1 − shock_h)`` over its holdings. Positions are liquidated on ``Position.chain``: its
``liquidation_latency_s`` is their horizon and its status flags apply.

An asset without a price counts for nothing (holdings and positions) and flags the account
``STALE_PRICE``, which keeps it from being actionable.

Failed reads. A holding whose latest read failed counts at its last good value and flags the
account ``READ_FAILED`` (held), so the account is never shown healthier than with that value.
One never read successfully counts as zero: for collateral that is the conservative side, for
a liability it is not, so the account is flagged ``DEBT_UNKNOWN`` and its health is NaN
(unknown) rather than a number that could be too high. A token whose decimals are unknown
cannot be valued: its holdings count as never read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from core.amounts import scaled
from core.domain import Role
from margin.latency import collateral_factor, liability_factor, price_shock
from margin.model import (
    HELD_REASONS,
    AccountHealth,
    ChainInput,
    EngineParams,
    Flag,
    Holding,
    HoldingValue,
    MarginInputError,
    MarginModel,
    Position,
    PositionValue,
    PriceInput,
    Tier,
    TokenRisk,
)
from margin.tiers import compile_tiers, tiered_value
from margin.valuation import (
    ceil_units,
    chain_flags,
    floor_units,
    holding_units,
    normalized_amount,
    notional_units,
    pnl_units,
    position_mark,
    price_flags,
    role_price,
    signed_price_scale,
    value_scale,
    weighted_units,
)

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass
class _Sums:
    """Integer totals in value units; ``*_lat`` after the latency shock."""

    collateral: int = 0
    weighted_collateral: int = 0
    liability: int = 0
    weighted_liability: int = 0
    pnl: int = 0
    maintenance: int = 0
    weighted_collateral_lat: int = 0
    weighted_liability_lat: int = 0
    pnl_lat: int = 0
    maintenance_lat: int = 0
    flags: Flag = Flag.NONE


@dataclass
class _Bucket:
    """Tiered collateral of one (asset, schedule): value, shocked value, member lines."""

    tiers: tuple[Tier, ...]
    value: int = 0
    shocked: int = 0
    members: list[tuple[int, int]] = field(default_factory=list)  # (line index, units)


@dataclass
class _Line:
    """A breakdown line before rounding to ``Decimal``."""

    holding: Holding
    risk: TokenRisk
    price: float
    units: int
    weight: float
    weighted: int
    flags: Flag


def evaluate_account(
    account: str,
    holdings: Iterable[Holding],
    positions: Iterable[Position],
    *,
    tokens: Mapping[tuple[str, str], TokenRisk],
    prices: Mapping[str, PriceInput],
    chains: Mapping[str, ChainInput],
    params: EngineParams,
) -> AccountHealth:
    """Health, flags and breakdown of ``account`` (DESIGN §3), rounded conservatively.

    ``tokens`` is keyed by ``(chain, token)``, ``prices`` by asset, ``chains`` by name. One
    holding per token and one position per asset; unknown tokens or chains raise
    ``MarginInputError``. Zero balances and zero-size positions are left out of the breakdown.
    """
    sums = _Sums()
    lines = _value_holdings(holdings, sums, tokens, prices, chains, params)
    position_values = _value_positions(account, positions, sums, prices, chains, params)
    num, den = sums.weighted_collateral + sums.pnl, sums.weighted_liability + sums.maintenance
    num_lat = sums.weighted_collateral_lat + sums.pnl_lat
    den_lat = sums.weighted_liability_lat + sums.maintenance_lat
    health, health_latency = health_ratio(num, den), health_ratio(num_lat, den_lat)
    flags = sums.flags
    if flags & Flag.DEBT_UNKNOWN:
        health = health_latency = math.nan  # never LIQUIDATABLE nor LATENCY_RISK below
    if health < 1.0:
        flags |= Flag.LIQUIDATABLE
    if health >= 1.0 > health_latency:
        flags |= Flag.LATENCY_RISK
    decimals = params.value_decimals
    return AccountHealth(
        account=account,
        collateral_value=scaled(sums.collateral, decimals),
        weighted_collateral=scaled(sums.weighted_collateral, decimals),
        liability_value=scaled(sums.liability, decimals),
        weighted_liability=scaled(sums.weighted_liability, decimals),
        unrealized_pnl=scaled(sums.pnl, decimals),
        maintenance=scaled(sums.maintenance, decimals),
        health=health,
        health_latency=health_latency,
        shortfall=scaled(max(0, den - num), decimals),
        flags=flags,
        actionable=bool(flags & Flag.LIQUIDATABLE) and not flags & HELD_REASONS,
        holdings=tuple(
            _holding_value(line, decimals)
            for line in lines
            if line.holding.raw or line.holding.read_failed
        ),
        positions=position_values,
    )


def read_flags(role: Role, *, failed: bool, valued: bool) -> Flag:
    """What a holding's read state puts on the account: ``READ_FAILED`` while its latest
    read failed, and ``DEBT_UNKNOWN`` too for a liability without a good value."""
    if not failed:
        return Flag.NONE
    if not valued and role is Role.LIABILITY:
        return Flag.READ_FAILED | Flag.DEBT_UNKNOWN
    return Flag.READ_FAILED


def health_ratio(equity: int, requirement: int) -> float:
    """``equity / requirement`` (DESIGN §3), ∞ without requirement, and 0 for negative equity.

    The clamp at 0 keeps health monotone: with negative equity a larger debt would move the
    ratio *up* toward 0. A bankrupt account's depth is its ``shortfall``.
    """
    if equity < 0:
        return 0.0
    return float(equity) / float(requirement) if requirement > 0 else math.inf


def _value_holdings(
    holdings: Iterable[Holding],
    sums: _Sums,
    tokens: Mapping[tuple[str, str], TokenRisk],
    prices: Mapping[str, PriceInput],
    chains: Mapping[str, ChainInput],
    params: EngineParams,
) -> list[_Line]:
    """Add every holding to ``sums``; return breakdown lines in (chain, token) order."""
    scale = value_scale(params.value_decimals)
    lines: list[_Line] = []
    buckets: dict[tuple[str, tuple[Tier, ...]], _Bucket] = {}
    for holding in sorted(holdings, key=lambda h: (h.chain, h.token)):
        if lines and (lines[-1].holding.chain, lines[-1].holding.token) == (
            holding.chain,
            holding.token,
        ):
            raise MarginInputError(f"two holdings of {holding.chain}/{holding.token}")
        risk = _lookup(tokens, (holding.chain, holding.token), "token")
        if risk.decimals is None:  # nothing it reads can be valued
            holding = replace(holding, raw=None, read_failed=True)
        chain = _lookup(chains, holding.chain, "chain")
        price = prices.get(risk.asset)
        unit_price = 0.0 if price is None else role_price(risk.role, price)
        signed_scale = 0.0 if price is None else signed_price_scale(risk.role, unit_price, scale)
        raw = holding.raw or 0
        units = holding_units(normalized_amount(raw, risk.decimals or 0), signed_scale)
        volatility = 0.0 if price is None else price.volatility
        shock = price_shock(params.z, volatility, chain.liquidation_latency_s)
        collateral = risk.role is Role.COLLATERAL
        factor = collateral_factor(shock) if collateral else liability_factor(shock)
        flags = price_flags(price) | chain_flags(chain) if raw > 0 else Flag.NONE
        flags |= read_flags(risk.role, failed=holding.read_failed, valued=holding.raw is not None)
        sums.flags |= flags
        line = _Line(holding, risk, unit_price, units, risk.weight, 0, flags)
        if collateral and risk.tiers and params.model is MarginModel.TIERED:
            bucket = buckets.setdefault((risk.asset, risk.tiers), _Bucket(risk.tiers))
            bucket.value += units
            bucket.shocked += weighted_units(units, factor)
            bucket.members.append((len(lines), units))
            sums.collateral += units
        else:
            line.weighted = weighted_units(units, risk.weight)
            shocked = weighted_units(line.weighted, factor)
            if collateral:
                sums.collateral += units
                sums.weighted_collateral += line.weighted
                sums.weighted_collateral_lat += shocked
            else:  # debt carries a negative sign until here
                sums.liability -= units
                sums.weighted_liability -= line.weighted
                sums.weighted_liability_lat -= shocked
        lines.append(line)
    for bucket in buckets.values():
        _settle_bucket(bucket, lines, sums, params.value_decimals)
    return lines


def _settle_bucket(bucket: _Bucket, lines: list[_Line], sums: _Sums, value_decimals: int) -> None:
    """Slice a bucket's aggregate value, add it to ``sums``, share it out to its lines."""
    weighted = tiered_value(float(bucket.value), compile_tiers(bucket.tiers, value_decimals))
    whole = floor_units(weighted)
    ratio = float(bucket.shocked) / float(bucket.value) if bucket.value > 0 else 0.0
    sums.weighted_collateral += whole
    sums.weighted_collateral_lat += floor_units(weighted * ratio)
    weight = weighted / bucket.value if bucket.value > 0 else bucket.tiers[0].rate
    value = bucket.value
    shares = [(i, units * whole // value if value else 0) for i, units in bucket.members]
    largest = max(bucket.members, key=lambda member: member[1])[0]
    for i, share in shares:
        lines[i].weight = weight
        lines[i].weighted = share
    lines[largest].weighted += whole - sum(share for _, share in shares)


def _value_positions(
    account: str,
    positions: Iterable[Position],
    sums: _Sums,
    prices: Mapping[str, PriceInput],
    chains: Mapping[str, ChainInput],
    params: EngineParams,
) -> tuple[PositionValue, ...]:
    """Add every position's PnL and requirement (now and after the shock) to ``sums``."""
    scale = value_scale(params.value_decimals)
    decimals = params.value_decimals
    values: list[PositionValue] = []
    seen: set[str] = set()
    for position in sorted(positions, key=lambda p: p.asset):
        if position.asset in seen:
            raise MarginInputError(f"two positions of {account} in {position.asset}")
        seen.add(position.asset)
        chain = _lookup(chains, position.chain, "chain")
        price = prices.get(position.asset)
        flags = price_flags(price) | chain_flags(chain) if position.size else Flag.NONE
        sums.flags |= flags
        if price is None:
            pnl = notional = maintenance = 0
            mark = mmr = 0.0
        else:
            schedule = compile_tiers(position.mmr_tiers, decimals)
            mark = position_mark(position.size, price)
            shock = price_shock(params.z, price.volatility, chain.liquidation_latency_s)
            long = position.size > 0
            mark_lat = mark * (collateral_factor(shock) if long else liability_factor(shock))
            pnl = pnl_units(position.size, mark, position.entry_price, scale)
            notional = notional_units(position.size, mark, scale)
            maintenance = ceil_units(tiered_value(float(notional), schedule))
            notional_lat = notional_units(position.size, mark_lat, scale)
            sums.pnl_lat += pnl_units(position.size, mark_lat, position.entry_price, scale)
            sums.maintenance_lat += ceil_units(tiered_value(float(notional_lat), schedule))
            mmr = maintenance / notional if notional else position.mmr_tiers[0].rate
        sums.pnl += pnl
        sums.maintenance += maintenance
        if position.size:
            values.append(
                PositionValue(
                    asset=position.asset,
                    chain=position.chain,
                    size=position.size,
                    entry_price=position.entry_price,
                    mark=mark,
                    notional=scaled(notional, decimals),
                    unrealized_pnl=scaled(pnl, decimals),
                    mmr=mmr,
                    maintenance=scaled(maintenance, decimals),
                    flags=flags,
                )
            )
    return tuple(values)


def _holding_value(line: _Line, value_decimals: int) -> HoldingValue:
    holding, risk = line.holding, line.risk
    return HoldingValue(
        chain=holding.chain,
        token=holding.token,
        asset=risk.asset,
        role=risk.role,
        raw=holding.raw,
        amount=scaled(holding.raw or 0, risk.decimals or 0),  # exact raw / 10**decimals
        price=line.price,
        value=scaled(abs(line.units), value_decimals),
        weight=line.weight,
        weighted_value=scaled(abs(line.weighted), value_decimals),
        block=holding.block,
        flags=line.flags,
    )


def _lookup(mapping: Mapping[_K, _V], key: _K, what: str) -> _V:
    try:
        return mapping[key]
    except KeyError:
        raise MarginInputError(f"unknown {what} {key!r}") from None
