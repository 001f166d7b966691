"""Aave v3 fixed-point math: ``WadRayMath`` and ``PercentageMath`` of ``@aave/core-v3``
1.19.3 (v3.0.2), same names and rounding (half up), same overflow reverts.

Solidity computes in uint256 and reverts where these raise ``VenueMathOverflow``.
"""

from __future__ import annotations

from venues.errors import VenueMathOverflow

UINT256_MAX = 2**256 - 1
WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
PERCENTAGE_FACTOR = 10**4
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2


def _checked(value: int, operation: str) -> int:
    if not 0 <= value <= UINT256_MAX:
        raise VenueMathOverflow(operation)
    return value


def wad_mul(a: int, b: int) -> int:
    """``WadRayMath.wadMul``: (a·b + WAD/2) / WAD."""
    return _checked(a * b + HALF_WAD, "wadMul") // WAD


def wad_div(a: int, b: int) -> int:
    """``WadRayMath.wadDiv``: (a·WAD + b/2) / b; reverts on b = 0."""
    if b == 0:
        raise VenueMathOverflow("wadDiv by zero")
    return _checked(a * WAD + b // 2, "wadDiv") // b


def ray_mul(a: int, b: int) -> int:
    """``WadRayMath.rayMul``: (a·b + RAY/2) / RAY."""
    return _checked(a * b + HALF_RAY, "rayMul") // RAY


def ray_div(a: int, b: int) -> int:
    """``WadRayMath.rayDiv``: (a·RAY + b/2) / b; reverts on b = 0."""
    if b == 0:
        raise VenueMathOverflow("rayDiv by zero")
    return _checked(a * RAY + b // 2, "rayDiv") // b


def percent_mul(value: int, percentage: int) -> int:
    """``PercentageMath.percentMul``: (value·percentage + 0.5e4) / 1e4 (basis points)."""
    return _checked(value * percentage + HALF_PERCENTAGE_FACTOR, "percentMul") // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    """``PercentageMath.percentDiv``: (value·1e4 + percentage/2) / percentage."""
    if percentage == 0:
        raise VenueMathOverflow("percentDiv by zero")
    return _checked(value * PERCENTAGE_FACTOR + percentage // 2, "percentDiv") // percentage


def mul(a: int, b: int, operation: str) -> int:
    """Checked uint256 product (Solidity 0.8 reverts on overflow)."""
    return _checked(a * b, operation)
