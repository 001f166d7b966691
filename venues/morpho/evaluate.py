"""Evaluate a ``MorphoSnapshot``: accrue each market to the block as ``_accrueInterest``
would, then each account's per-market health (``_isHealthy``), positions and the most
profitable ``liquidate`` plan. Pure: no I/O.

USD: the loan token's price comes from ``PlanPricing.usd`` (Morpho's oracles price the
collateral in loan-token units, never in USD); the collateral's from ``PlanPricing.usd`` too,
else through the market oracle and the loan token's price. Without a loan-token USD price,
values and ``profit_usd`` are ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from venues.model import (
    UNMAPPED_ASSET,
    LiquidationPlan,
    PlanPricing,
    VenueAccount,
    VenuePosition,
    VenueSpec,
)
from venues.morpho.market import (
    ORACLE_PRICE_SCALE,
    MarketState,
    Position,
    accrue_interest,
    borrowed_assets,
    health_wad,
    is_healthy,
    largest_liquidation,
    max_borrow,
    supplied_assets,
)
from venues.morpho.math import WAD, mul_div_down
from venues.morpho.reads import ZERO_ADDRESS, MarketAtBlock, MorphoSnapshot
from venues.plans import profit_usd, usd_value

KIND = "morpho_blue"
LIQUIDATION_GAS = 200_000
"""Gas of one ``liquidate`` without callback for the plan's cost estimate: 120k-147k measured
on the test deployment (tests/test_venue_morpho.py), rounded up."""

AssetName = Callable[[str, str | None], str | None]


@dataclass(frozen=True, slots=True)
class AccruedMarket:
    """A market accrued to the block, with its price (``None``: the oracle failed)."""

    at_block: MarketAtBlock
    state: MarketState


def accrue_all(snapshot: MorphoSnapshot) -> dict[str, AccruedMarket]:
    """Every market's state after ``_accrueInterest`` at the block's timestamp."""
    return {
        market_id: AccruedMarket(
            at_block=m,
            state=accrue_interest(
                m.state,
                m.borrow_rate,
                snapshot.block.timestamp,
                has_irm=m.info.params.irm != ZERO_ADDRESS,
            ),
        )
        for market_id, m in snapshot.markets.items()
    }


def evaluate_account(
    *,
    spec: VenueSpec,
    account: str,
    positions: Mapping[str, Position],
    snapshot: MorphoSnapshot,
    markets: Mapping[str, AccruedMarket],
    pricing: PlanPricing,
    asset_name: AssetName,
) -> VenueAccount | None:
    """One account's entry (``None`` if a market it borrows in has no oracle price)."""
    lines: list[VenuePosition] = []
    exact: dict[str, int] = {}
    healths: list[int] = []
    liquidatable = False
    plans: list[LiquidationPlan] = []
    collateral_usd: Decimal | None = Decimal(0)
    debt_usd: Decimal | None = Decimal(0)
    for market_id, position in sorted(positions.items()):
        market = markets[market_id]
        info, state, price = market.at_block.info, market.state, market.at_block.price
        params = info.params
        borrowed = borrowed_assets(position, state)
        if position.borrow_shares and price is None:
            return None
        loan_usd = pricing.usd.get(params.loan_token)
        coll_usd = _collateral_usd(position.collateral, price, info.loan_decimals, loan_usd)
        if position.collateral and params.collateral_token in pricing.usd:
            coll_usd = usd_value(
                position.collateral, info.collateral_decimals, pricing.usd[params.collateral_token]
            )
        collateral_usd = _add(collateral_usd, coll_usd if position.collateral else Decimal(0))
        debt_usd = _add(
            debt_usd, usd_value(borrowed, info.loan_decimals, loan_usd) if borrowed else Decimal(0)
        )
        if position.supply_shares or borrowed:
            lines.append(
                VenuePosition(
                    asset=params.loan_token,
                    asset_name=asset_name(params.loan_token, info.loan_symbol),
                    decimals=info.loan_decimals,
                    supplied_raw=supplied_assets(position, state),
                    debt_raw=borrowed,
                    market=market_id,
                )
            )
        if position.collateral:
            lines.append(
                VenuePosition(
                    asset=params.collateral_token,
                    asset_name=asset_name(params.collateral_token, info.collateral_symbol),
                    decimals=info.collateral_decimals,
                    collateral_raw=position.collateral,
                    collateral_weight=Decimal(params.lltv) / WAD,
                    market=market_id,
                )
            )
        if not position.borrow_shares or price is None:
            continue
        exact[f"borrowed:{market_id}"] = borrowed
        exact[f"maxBorrow:{market_id}"] = max_borrow(position, price, params.lltv)
        health = health_wad(position, state, price, params.lltv)
        if health is not None:
            healths.append(health)
        if not is_healthy(position, state, price, params.lltv):
            liquidatable = True
            plan = _plan(market_id, market, position, price, pricing)
            if plan is not None:
                plans.append(plan)
    return VenueAccount(
        venue=spec.name,
        kind=KIND,
        chain=spec.chain,
        account=account,
        block_number=snapshot.block.number,
        block_hash=snapshot.block.hash,
        health_raw=min(healths) if healths else None,
        liquidatable=liquidatable,
        collateral_value=collateral_usd,
        debt_value=debt_usd,
        positions=tuple(lines),
        plan=max(
            plans,
            key=lambda p: (p.profit_usd is not None, p.profit_usd or Decimal(0), p.repay_raw),
            default=None,
        ),
        flags=frozenset({UNMAPPED_ASSET} if any(p.asset_name is None for p in lines) else ()),
        exact=exact,
    )


def _add(total: Decimal | None, value: Decimal | None) -> Decimal | None:
    return None if total is None or value is None else total + value


def _collateral_usd(
    collateral: int, price: int | None, loan_decimals: int | None, loan_usd: Decimal | None
) -> Decimal | None:
    """Collateral valued through the market oracle (in loan raw units) and the loan price."""
    if price is None:
        return None
    return usd_value(mul_div_down(collateral, price, ORACLE_PRICE_SCALE), loan_decimals, loan_usd)


def _plan(
    market_id: str,
    market: AccruedMarket,
    position: Position,
    price: int,
    pricing: PlanPricing,
) -> LiquidationPlan | None:
    info, params = market.at_block.info, market.at_block.info.params
    found = largest_liquidation(position, market.state, price, params.lltv)
    if found is None:
        return None
    loan_usd = pricing.usd.get(params.loan_token)
    coll_price = pricing.usd.get(params.collateral_token)
    received = (
        usd_value(found.seized, info.collateral_decimals, coll_price)
        if coll_price is not None
        else _collateral_usd(found.seized, price, info.loan_decimals, loan_usd)
    )
    repaid = usd_value(found.repaid, info.loan_decimals, loan_usd)
    profit, gas = profit_usd(received, repaid, LIQUIDATION_GAS, pricing)
    return LiquidationPlan(
        debt_asset=params.loan_token,
        collateral_asset=params.collateral_token,
        repay_raw=found.repaid,
        seize_raw=found.seized,
        bonus=Decimal(found.incentive_factor - WAD) / WAD,
        profit_usd=profit,
        gas_units=LIQUIDATION_GAS,
        gas_usd=gas,
        call={
            "seizedAssets": found.seized_assets_arg,
            "repaidShares": found.repaid_shares_arg,
        },
        market=market_id,
    )
