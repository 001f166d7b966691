"""Morpho Blue's ``MathLib``, ``SharesMathLib`` and ``UtilsLib`` (``@morpho-org/morpho-blue``
1.0.0), same names and rounding; uint256 overflow raises ``VenueMathOverflow`` where the
contract reverts."""

from __future__ import annotations

from venues.errors import VenueMathOverflow

UINT256_MAX = 2**256 - 1
UINT128_MAX = 2**128 - 1
WAD = 10**18
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1


def _checked(value: int, operation: str) -> int:
    if not 0 <= value <= UINT256_MAX:
        raise VenueMathOverflow(operation)
    return value


def mul_div_down(x: int, y: int, d: int) -> int:
    """``MathLib.mulDivDown``: (x·y) / d."""
    if d == 0:
        raise VenueMathOverflow("mulDivDown by zero")
    return _checked(x * y, "mulDivDown") // d


def mul_div_up(x: int, y: int, d: int) -> int:
    """``MathLib.mulDivUp``: (x·y + d − 1) / d."""
    if d == 0:
        raise VenueMathOverflow("mulDivUp by zero")
    return _checked(x * y + (d - 1), "mulDivUp") // d


def w_mul_down(x: int, y: int) -> int:
    """``MathLib.wMulDown``: x·y / WAD, rounded down."""
    return mul_div_down(x, y, WAD)


def w_div_down(x: int, y: int) -> int:
    """``MathLib.wDivDown``: x·WAD / y, rounded down."""
    return mul_div_down(x, WAD, y)


def w_div_up(x: int, y: int) -> int:
    """``MathLib.wDivUp``: x·WAD / y, rounded up."""
    return mul_div_up(x, WAD, y)


def w_taylor_compounded(x: int, n: int) -> int:
    """``MathLib.wTaylorCompounded``: e^(x·n) − 1 by its first three Taylor terms (WAD)."""
    first = _checked(x * n, "wTaylorCompounded")
    second = mul_div_down(first, first, 2 * WAD)
    third = mul_div_down(second, first, 3 * WAD)
    return _checked(first + second + third, "wTaylorCompounded")


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesDown``."""
    return mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsDown``."""
    return mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesUp``."""
    return mul_div_up(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsUp``."""
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def zero_floor_sub(x: int, y: int) -> int:
    """``UtilsLib.zeroFloorSub``: max(x − y, 0)."""
    return x - y if x > y else 0


def to_uint128(x: int) -> int:
    """``UtilsLib.toUint128``: reverts above 2^128 − 1."""
    if x > UINT128_MAX:
        raise VenueMathOverflow("toUint128")
    return x
