"""``GenericLogic.calculateUserAccountData`` of Aave v3.0.2 (``@aave/core-v3`` 1.19.3) and
``PoolLogic.executeGetUserAccountData``, over values read at one block.

The order of operations is the contract's, so every output equals ``getUserAccountData`` at
that block bit for bit: each reserve's value in base currency is floored on its own
(``balance · price / 10^decimals``), the LTV and liquidation threshold are value-weighted
averages floored to whole basis points, and the health factor is
``percentMul(totalCollateral, avgThreshold)`` ``wadDiv`` ``totalDebt``. A reserve counts as
collateral only when its threshold is non-zero *and* the user's collateral bit is set.

Balances are the tokens' ``balanceOf`` at the block: the aToken's is
``scaledBalanceOf · normalizedIncome`` (``rayMul``) and the variable debt token's
``scaledBalanceOf · normalizedDebt``, exactly what GenericLogic computes; the stable debt
token's ``balanceOf`` is what GenericLogic adds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from venues.aave.bitmaps import (
    ReserveParams,
    is_borrowing,
    is_using_as_collateral,
    is_using_as_collateral_or_borrowing,
)
from venues.aave.math import UINT256_MAX, mul, percent_mul, wad_div


@dataclass(frozen=True, slots=True)
class ReserveState:
    """One reserve at the block: id (its bit pair in user configurations), underlying, the
    decoded configuration, its Aave tokens and its AaveOracle price (base currency)."""

    id: int
    asset: str
    params: ReserveParams
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    price: int


@dataclass(frozen=True, slots=True)
class EModeCategory:
    """An e-mode category (basis points); ``price`` is AaveOracle's price of its price
    source, 0 when it has none (``EModeLogic.getEModeConfiguration``)."""

    id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_source: str
    price: int


@dataclass(frozen=True, slots=True)
class UserBalances:
    """A user's balances in one reserve (raw units of the underlying)."""

    a_token: int = 0
    stable_debt: int = 0
    variable_debt: int = 0

    @property
    def debt(self) -> int:
        """Total debt: stable + variable."""
        return self.stable_debt + self.variable_debt


@dataclass(frozen=True, slots=True)
class UserState:
    """A user at the block: configuration bitmap, e-mode category, balances by reserve id."""

    config: int
    emode: int
    balances: Mapping[int, UserBalances]


@dataclass(frozen=True, slots=True)
class AccountData:
    """The six outputs of ``Pool.getUserAccountData`` (base currency, basis points, WAD)."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int
    has_zero_ltv_collateral: bool = False

    def as_dict(self) -> dict[str, int]:
        """The fields under the contract's own names."""
        return {
            "totalCollateralBase": self.total_collateral_base,
            "totalDebtBase": self.total_debt_base,
            "availableBorrowsBase": self.available_borrows_base,
            "currentLiquidationThreshold": self.current_liquidation_threshold,
            "ltv": self.ltv,
            "healthFactor": self.health_factor,
        }


HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 10**18
"""``ValidationLogic.HEALTH_FACTOR_LIQUIDATION_THRESHOLD``: liquidatable strictly below 1."""


def is_in_emode_category(user_category: int, asset_category: int) -> bool:
    """``EModeLogic.isInEModeCategory``."""
    return user_category != 0 and asset_category == user_category


def calculate_available_borrows(total_collateral: int, total_debt: int, ltv: int) -> int:
    """``GenericLogic.calculateAvailableBorrows``."""
    available = percent_mul(total_collateral, ltv)
    return 0 if available < total_debt else available - total_debt


def calculate_user_account_data(
    user: UserState,
    reserves: Sequence[ReserveState],
    emodes: Mapping[int, EModeCategory],
) -> AccountData:
    """``getUserAccountData`` of ``user`` (``reserves`` in any order: sums commute, and each
    reserve is visited once, as the contract's loop over reserve ids does)."""
    if user.config == 0:
        return AccountData(0, 0, 0, 0, 0, UINT256_MAX, False)
    emode_ltv = emode_threshold = emode_price = 0
    if user.emode != 0:
        category = emodes.get(user.emode)
        if category is not None:  # a user can only enter a configured category
            emode_ltv, emode_threshold = category.ltv, category.liquidation_threshold
            emode_price = category.price

    total_collateral = total_debt = avg_ltv = avg_threshold = 0
    has_zero_ltv_collateral = False
    for reserve in reserves:
        if not is_using_as_collateral_or_borrowing(user.config, reserve.id):
            continue
        params = reserve.params
        asset_unit = 10**params.decimals
        asset_price = (
            emode_price
            if emode_price != 0 and user.emode == params.emode_category
            else reserve.price
        )
        balances = user.balances.get(reserve.id, UserBalances())
        if params.liquidation_threshold != 0 and is_using_as_collateral(user.config, reserve.id):
            value = mul(balances.a_token, asset_price, "collateral value") // asset_unit
            total_collateral += value
            in_emode = is_in_emode_category(user.emode, params.emode_category)
            if params.ltv != 0:
                avg_ltv += value * (emode_ltv if in_emode else params.ltv)
            else:
                has_zero_ltv_collateral = True
            avg_threshold += value * (emode_threshold if in_emode else params.liquidation_threshold)
        if is_borrowing(user.config, reserve.id):
            total_debt += mul(asset_price, balances.debt, "debt value") // asset_unit

    avg_ltv = avg_ltv // total_collateral if total_collateral else 0
    avg_threshold = avg_threshold // total_collateral if total_collateral else 0
    health_factor = (
        UINT256_MAX
        if total_debt == 0
        else wad_div(percent_mul(total_collateral, avg_threshold), total_debt)
    )
    return AccountData(
        total_collateral_base=total_collateral,
        total_debt_base=total_debt,
        available_borrows_base=calculate_available_borrows(total_collateral, total_debt, avg_ltv),
        current_liquidation_threshold=avg_threshold,
        ltv=avg_ltv,
        health_factor=health_factor,
        has_zero_ltv_collateral=has_zero_ltv_collateral,
    )
