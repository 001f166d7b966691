"""Evaluate an ``AaveSnapshot``: every account's ``getUserAccountData``, positions and the
most profitable liquidation plan. Pure: no I/O."""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal

from venues.aave.account import (
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    ReserveState,
    UserBalances,
    UserState,
    calculate_user_account_data,
    is_in_emode_category,
)
from venues.aave.bitmaps import is_using_as_collateral
from venues.aave.liquidation import AaveLiquidation, liquidation_for
from venues.aave.math import PERCENTAGE_FACTOR
from venues.aave.reads import ZERO_ADDRESS, AaveSnapshot
from venues.model import (
    UNMAPPED_ASSET,
    LiquidationPlan,
    PlanPricing,
    VenueAccount,
    VenuePosition,
    VenueSpec,
)
from venues.plans import profit_usd, usd_value

KIND = "aave_v3"
LIQUIDATION_GAS = 550_000
"""Gas of one ``liquidationCall`` (receiveAToken = false) for the plan's cost estimate:
397k-505k measured on the test market (tests/test_venue_aave.py), rounded up."""

AssetName = Callable[[str, str | None], str | None]


def usd_prices(snapshot: AaveSnapshot, pricing: PlanPricing) -> dict[str, Decimal]:
    """USD per whole token of every reserve: ``pricing.usd`` first, else AaveOracle's price
    when the market's base currency is USD (``BASE_CURRENCY`` = 0, every v3 market)."""
    unit = Decimal(snapshot.addresses.base_currency_unit)
    venue_is_usd = snapshot.addresses.base_currency == ZERO_ADDRESS
    prices: dict[str, Decimal] = {}
    for reserve in snapshot.reserves:
        override = pricing.usd.get(reserve.asset)
        if override is not None:
            prices[reserve.asset] = override
        elif venue_is_usd:
            prices[reserve.asset] = Decimal(reserve.price) / unit
    return prices


def evaluate_account(
    *,
    spec: VenueSpec,
    account: str,
    user: UserState,
    snapshot: AaveSnapshot,
    pricing: PlanPricing,
    prices: dict[str, Decimal],
    asset_name: AssetName,
) -> VenueAccount:
    """One account's venue entry at the snapshot's block."""
    data = calculate_user_account_data(user, snapshot.reserves, snapshot.emodes)
    owes = data.total_debt_base != 0
    liquidatable = owes and data.health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD
    positions = tuple(
        _position(user, reserve, snapshot, asset_name)
        for reserve in snapshot.reserves
        if user.balances.get(reserve.id)
    )
    plan = _best_plan(user, data.health_factor, snapshot, pricing, prices) if liquidatable else None
    venue_usd = snapshot.addresses.base_currency == ZERO_ADDRESS
    unit = Decimal(snapshot.addresses.base_currency_unit)
    return VenueAccount(
        venue=spec.name,
        kind=KIND,
        chain=spec.chain,
        account=account,
        block_number=snapshot.block.number,
        block_hash=snapshot.block.hash,
        health_raw=data.health_factor if owes else None,
        liquidatable=liquidatable,
        collateral_value=Decimal(data.total_collateral_base) / unit if venue_usd else None,
        debt_value=Decimal(data.total_debt_base) / unit if venue_usd else None,
        positions=positions,
        plan=plan,
        flags=frozenset({UNMAPPED_ASSET} if any(p.asset_name is None for p in positions) else ()),
        exact=data.as_dict(),
    )


def _position(
    user: UserState, reserve: ReserveState, snapshot: AaveSnapshot, asset_name: AssetName
) -> VenuePosition:
    balances = user.balances.get(reserve.id, UserBalances())
    params = reserve.params
    counted = params.liquidation_threshold != 0 and is_using_as_collateral(user.config, reserve.id)
    category = snapshot.emodes.get(user.emode)
    threshold = (
        category.liquidation_threshold
        if category is not None and is_in_emode_category(user.emode, params.emode_category)
        else params.liquidation_threshold
    )
    return VenuePosition(
        asset=reserve.asset,
        asset_name=asset_name(reserve.asset, snapshot.symbols.get(reserve.asset)),
        decimals=params.decimals,
        collateral_raw=balances.a_token if counted else 0,
        supplied_raw=0 if counted else balances.a_token,
        debt_raw=balances.debt,
        collateral_weight=_weight(threshold) if counted else _weight(0),
    )


@functools.cache
def _weight(basis_points: int) -> Decimal:
    """A threshold in basis points as a fraction (cached: a handful of values per market)."""
    return Decimal(basis_points) / PERCENTAGE_FACTOR


def _best_plan(
    user: UserState,
    health_factor: int,
    snapshot: AaveSnapshot,
    pricing: PlanPricing,
    prices: dict[str, Decimal],
) -> LiquidationPlan | None:
    plans = [
        _plan(found, pricing, prices)
        for debt in snapshot.reserves
        for collateral in snapshot.reserves
        if (
            found := liquidation_for(
                user=user,
                health_factor=health_factor,
                debt_reserve=debt,
                collateral_reserve=collateral,
                emodes=snapshot.emodes,
            )
        )
        is not None
    ]
    if not plans:
        return None
    # Most profit first; unpriced plans after priced ones, then the largest repay.
    return max(
        plans,
        key=lambda p: (p.profit_usd is not None, p.profit_usd or Decimal(0), p.repay_raw),
    )


def _plan(
    found: AaveLiquidation, pricing: PlanPricing, prices: dict[str, Decimal]
) -> LiquidationPlan:
    debt, collateral = found.debt_reserve, found.collateral_reserve
    received = usd_value(found.seize, collateral.params.decimals, prices.get(collateral.asset))
    repaid = usd_value(found.repay, debt.params.decimals, prices.get(debt.asset))
    profit, gas = profit_usd(received, repaid, LIQUIDATION_GAS, pricing)
    return LiquidationPlan(
        debt_asset=debt.asset,
        collateral_asset=collateral.asset,
        repay_raw=found.repay,
        seize_raw=found.seize,
        bonus=Decimal(found.bonus - PERCENTAGE_FACTOR) / PERCENTAGE_FACTOR,
        profit_usd=profit,
        gas_units=LIQUIDATION_GAS,
        gas_usd=gas,
        call={"debtToCover": found.debt_to_cover, "receiveAToken": False},
    )
