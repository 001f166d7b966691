"""``LiquidationLogic`` of Aave v3.0.2 (``@aave/core-v3`` 1.19.3): the largest liquidation a
user allows, per (debt, collateral) reserve pair, with ``receiveAToken = false``.

- ``_calculateDebt``: the close factor is 50 % (``DEFAULT_LIQUIDATION_CLOSE_FACTOR``) and 100 %
  once the health factor is at or below 0.95 (``CLOSE_FACTOR_HF_THRESHOLD``);
  ``maxLiquidatableDebt = percentMul(stable + variable debt, closeFactor)``.
- ``_getConfigurationData``: the collateral's bonus, or the user's e-mode category's when the
  collateral is in it; both prices come from the e-mode price source when the category has one
  (the debt's always, the collateral's when it is in the category).
- ``_calculateAvailableCollateralToLiquidate``: collateral for the debt at those prices plus
  the bonus, capped by the user's aToken balance (then the debt is recomputed from the
  collateral, ``percentDiv`` by the bonus); the protocol fee is ``percentMul`` of the bonus
  part (``collateral − percentDiv(collateral, bonus)``) and is taken from what the liquidator
  receives.
- ``ValidationLogic.validateLiquidationCall``: both reserves active and not paused, health
  factor below 1, the collateral enabled (threshold ≠ 0 and the user's bit), debt ≠ 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from venues.aave.account import (
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    EModeCategory,
    ReserveState,
    UserBalances,
    UserState,
    is_in_emode_category,
)
from venues.aave.bitmaps import is_borrowing, is_using_as_collateral
from venues.aave.math import mul, percent_div, percent_mul

DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000  # basis points
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000  # basis points
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16  # 0.95 in WAD


@dataclass(frozen=True, slots=True)
class AaveLiquidation:
    """What ``liquidationCall(collateral, debt, user, debt_to_cover, false)`` does.

    ``repay`` is pulled from the liquidator, ``seize`` (collateral minus the protocol fee) is
    sent to it, ``protocol_fee`` goes to the treasury; ``bonus`` in basis points.
    ``debt_to_cover`` is the argument to send: the close-factor maximum, so that the contract
    takes the same branch as this computation.
    """

    debt_reserve: ReserveState
    collateral_reserve: ReserveState
    debt_to_cover: int
    repay: int
    seize: int
    protocol_fee: int
    bonus: int


def close_factor(health_factor: int) -> int:
    """``_calculateDebt``'s close factor for a health factor (basis points)."""
    return (
        DEFAULT_LIQUIDATION_CLOSE_FACTOR
        if health_factor > CLOSE_FACTOR_HF_THRESHOLD
        else MAX_LIQUIDATION_CLOSE_FACTOR
    )


def available_collateral_to_liquidate(
    *,
    collateral_price: int,
    debt_price: int,
    collateral_decimals: int,
    debt_decimals: int,
    protocol_fee_bps: int,
    debt_to_cover: int,
    user_collateral_balance: int,
    liquidation_bonus: int,
) -> tuple[int, int, int]:
    """``_calculateAvailableCollateralToLiquidate``: (collateral to the liquidator, debt
    repaid, protocol fee)."""
    collateral_unit = 10**collateral_decimals
    debt_unit = 10**debt_decimals
    base_collateral = mul(
        mul(debt_price, debt_to_cover, "baseCollateral"), collateral_unit, "baseCollateral"
    ) // mul(collateral_price, debt_unit, "baseCollateral")
    max_collateral = percent_mul(base_collateral, liquidation_bonus)
    if max_collateral > user_collateral_balance:
        collateral_amount = user_collateral_balance
        debt_needed = percent_div(
            mul(
                mul(collateral_price, collateral_amount, "debtAmountNeeded"),
                debt_unit,
                "debtAmountNeeded",
            )
            // mul(debt_price, collateral_unit, "debtAmountNeeded"),
            liquidation_bonus,
        )
    else:
        collateral_amount = max_collateral
        debt_needed = debt_to_cover
    if protocol_fee_bps == 0:
        return collateral_amount, debt_needed, 0
    bonus_collateral = collateral_amount - percent_div(collateral_amount, liquidation_bonus)
    fee = percent_mul(bonus_collateral, protocol_fee_bps)
    return collateral_amount - fee, debt_needed, fee


def liquidation_for(
    *,
    user: UserState,
    health_factor: int,
    debt_reserve: ReserveState,
    collateral_reserve: ReserveState,
    emodes: dict[int, EModeCategory],
) -> AaveLiquidation | None:
    """The largest liquidation of this pair the Pool accepts now, or ``None`` if it reverts."""
    if health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        return None
    for reserve in (debt_reserve, collateral_reserve):
        if not reserve.params.active or reserve.params.paused:
            return None
    if collateral_reserve.params.liquidation_threshold == 0 or not is_using_as_collateral(
        user.config, collateral_reserve.id
    ):
        return None
    debt = user.balances.get(debt_reserve.id, UserBalances())
    collateral_balance = user.balances.get(collateral_reserve.id, UserBalances()).a_token
    if debt.debt == 0 or not is_borrowing(user.config, debt_reserve.id) or collateral_balance == 0:
        return None

    max_liquidatable = percent_mul(debt.debt, close_factor(health_factor))
    bonus = collateral_reserve.params.liquidation_bonus
    collateral_price, debt_price = collateral_reserve.price, debt_reserve.price
    category = emodes.get(user.emode) if user.emode != 0 else None
    if category is not None:
        if is_in_emode_category(user.emode, collateral_reserve.params.emode_category):
            bonus = category.liquidation_bonus
            if category.price != 0:
                collateral_price = category.price
        if category.price != 0:
            debt_price = category.price
    if bonus == 0:
        return None  # percentDiv by a zero bonus reverts
    seize, repay, fee = available_collateral_to_liquidate(
        collateral_price=collateral_price,
        debt_price=debt_price,
        collateral_decimals=collateral_reserve.params.decimals,
        debt_decimals=debt_reserve.params.decimals,
        protocol_fee_bps=collateral_reserve.params.liquidation_protocol_fee,
        debt_to_cover=max_liquidatable,
        user_collateral_balance=collateral_balance,
        liquidation_bonus=bonus,
    )
    if repay == 0 or seize == 0:
        return None
    return AaveLiquidation(
        debt_reserve=debt_reserve,
        collateral_reserve=collateral_reserve,
        debt_to_cover=max_liquidatable,
        repay=repay,
        seize=seize,
        protocol_fee=fee,
        bonus=bonus,
    )
