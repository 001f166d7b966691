"""Aave v3 configuration bitmaps: ``ReserveConfiguration`` (one uint256 per reserve) and
``UserConfiguration`` (two bits per reserve id), as laid out in ``@aave/core-v3`` 1.19.3.
"""

from __future__ import annotations

from dataclasses import dataclass

# ReserveConfiguration start bits and widths (v3.0.2).
LTV_BITS = (0, 16)
LIQUIDATION_THRESHOLD_BITS = (16, 16)
LIQUIDATION_BONUS_BITS = (32, 16)
DECIMALS_BITS = (48, 8)
IS_ACTIVE_BIT = 56
IS_FROZEN_BIT = 57
BORROWING_ENABLED_BIT = 58
STABLE_BORROWING_ENABLED_BIT = 59
IS_PAUSED_BIT = 60
BORROWABLE_IN_ISOLATION_BIT = 61
SILOED_BORROWING_BIT = 62
FLASHLOAN_ENABLED_BIT = 63
RESERVE_FACTOR_BITS = (64, 16)
BORROW_CAP_BITS = (80, 36)
SUPPLY_CAP_BITS = (116, 36)
LIQUIDATION_PROTOCOL_FEE_BITS = (152, 16)
EMODE_CATEGORY_BITS = (168, 8)
UNBACKED_MINT_CAP_BITS = (176, 36)
DEBT_CEILING_BITS = (212, 40)
DEBT_CEILING_DECIMALS = 2


def _field(data: int, bits: tuple[int, int]) -> int:
    start, width = bits
    return (data >> start) & ((1 << width) - 1)


def _flag(data: int, bit: int) -> bool:
    return bool((data >> bit) & 1)


@dataclass(frozen=True, slots=True)
class ReserveParams:
    """A decoded ``ReserveConfigurationMap``; percentages in basis points, caps in whole
    tokens, the debt ceiling in USD cents (``DEBT_CEILING_DECIMALS``)."""

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    decimals: int
    active: bool
    frozen: bool
    borrowing_enabled: bool
    stable_borrowing_enabled: bool
    paused: bool
    borrowable_in_isolation: bool
    siloed_borrowing: bool
    reserve_factor: int
    borrow_cap: int
    supply_cap: int
    liquidation_protocol_fee: int
    emode_category: int
    debt_ceiling: int

    @classmethod
    def decode(cls, data: int) -> ReserveParams:
        """Decode the bitmap as ``ReserveConfiguration.get*`` do."""
        return cls(
            ltv=_field(data, LTV_BITS),
            liquidation_threshold=_field(data, LIQUIDATION_THRESHOLD_BITS),
            liquidation_bonus=_field(data, LIQUIDATION_BONUS_BITS),
            decimals=_field(data, DECIMALS_BITS),
            active=_flag(data, IS_ACTIVE_BIT),
            frozen=_flag(data, IS_FROZEN_BIT),
            borrowing_enabled=_flag(data, BORROWING_ENABLED_BIT),
            stable_borrowing_enabled=_flag(data, STABLE_BORROWING_ENABLED_BIT),
            paused=_flag(data, IS_PAUSED_BIT),
            borrowable_in_isolation=_flag(data, BORROWABLE_IN_ISOLATION_BIT),
            siloed_borrowing=_flag(data, SILOED_BORROWING_BIT),
            reserve_factor=_field(data, RESERVE_FACTOR_BITS),
            borrow_cap=_field(data, BORROW_CAP_BITS),
            supply_cap=_field(data, SUPPLY_CAP_BITS),
            liquidation_protocol_fee=_field(data, LIQUIDATION_PROTOCOL_FEE_BITS),
            emode_category=_field(data, EMODE_CATEGORY_BITS),
            debt_ceiling=_field(data, DEBT_CEILING_BITS),
        )


def is_borrowing(user_config: int, reserve_id: int) -> bool:
    """``UserConfiguration.isBorrowing``: bit 2·id."""
    return bool((user_config >> (reserve_id << 1)) & 1)


def is_using_as_collateral(user_config: int, reserve_id: int) -> bool:
    """``UserConfiguration.isUsingAsCollateral``: bit 2·id + 1."""
    return bool((user_config >> ((reserve_id << 1) + 1)) & 1)


def is_using_as_collateral_or_borrowing(user_config: int, reserve_id: int) -> bool:
    """``UserConfiguration.isUsingAsCollateralOrBorrowing``: either bit of the reserve."""
    return bool((user_config >> (reserve_id << 1)) & 3)
