"""Conservative valuation primitives shared by the reference (``margin.health``) and the engine.

Precision. USD values are whole *value units* of ``10**-value_decimals`` USD, cents by default.
Every holding and position is rounded once, against the account: collateral value and
weighted value down, debt value and weighted debt up (Aave's rule), PnL down, maintenance
requirement up. Debt is carried with a negative sign, so a single ``floor`` rounds both sides
conservatively (up to float noise: see ``SNAP``). Cents because they are what risk teams and
keepers read, and because the error is then at most one cent per holding; finer quanta would
shrink ``ROW_CAP_UNITS`` (below).

Why integers. Sums of integer-valued float64 below 2**53 are exact, hence independent of
order: the engine's ``np.bincount`` over a million accounts, an incremental recompute of a
few, and this module's Python ``int`` sums agree bit for bit. To keep every sum below 2**53,
one row's value saturates at ``ROW_CAP_UNITS`` (about 88 billion USD at cents); an account
with up to ``EXACT_ROWS_PER_ACCOUNT`` rows is then exact.

Every per-row quantity is the same sequence of IEEE-754 operations here (Python floats) and
in ``margin.kernel`` (numpy, elementwise, nothing fused): change both together.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from core.domain import PriceStatus, Role
from margin.model import ChainInput, Flag, PriceInput

ROW_CAP_UNITS = float(2**43)
"""Saturation of one row's |value| in value units: 1,024 rows at the cap stay below 2**53."""
EXACT_ROWS_PER_ACCOUNT = 1024
"""Rows (holdings + positions) per account up to which sums are provably exact."""
SNAP = 2.0**-44
"""Relative tolerance of the conservative roundings: a value within ``SNAP · |value|`` of
the next whole unit *in the account's favour* is float noise and counts as that unit.
Weights such as 0.825 are not exact in binary, so 20,000 USD · 0.825 computes to
16,499.999999999998 and a bare floor would lose a cent on round numbers. 2**-44 ≈ 5.7e-14
covers hundreds of float64 ulps and is under 0.006 cents on a billion dollars."""

_EXACT_FLOAT_POWERS = 22  # 10**22 is the largest power of ten exact in float64
_EXACT_FLOAT_INT = 2**53

_STATUS_FLAGS = {
    PriceStatus.OK: Flag.NONE,
    # DEGRADED holds the last good price for lack of quorum: a price older than it should be.
    PriceStatus.DEGRADED: Flag.STALE_PRICE,
    PriceStatus.STALE: Flag.STALE_PRICE,
    PriceStatus.TRIPPED: Flag.ORACLE_TRIPPED,
}


def value_scale(value_decimals: int) -> float:
    """Value units per USD."""
    return float(10**value_decimals)


def normalized_amount(raw: int, decimals: int) -> float:
    """``raw / 10**decimals`` correctly rounded (Python's int true division is)."""
    divisor: int = 10**decimals
    return raw / divisor


def normalized_amounts(raws: npt.NDArray[np.uint64], decimals: int) -> npt.NDArray[np.float64]:
    """``normalized_amount`` of many raws, bit-identical to it.

    Vectorized when the raws are below 2**53 and ``10**decimals`` ≤ 10**22: both operands are
    then exact in float64 and one IEEE division rounds the exact quotient, as Python does.
    """
    if decimals <= _EXACT_FLOAT_POWERS and (not len(raws) or int(raws.max()) < _EXACT_FLOAT_INT):
        quotient: npt.NDArray[np.float64] = raws.astype(np.float64) / float(10**decimals)
        return quotient
    return np.array([normalized_amount(int(r), decimals) for r in raws], dtype=np.float64)


def signed_price_scale(role: Role, price: float, scale: float) -> float:
    """Value units per whole token, negative for debt so that ``floor`` rounds it up."""
    units_per_token = price * scale
    return units_per_token if role is Role.COLLATERAL else -units_per_token


def role_price(role: Role, price: PriceInput) -> float:
    """Collateral at the low end of the confidence band, debt at the high end."""
    return price.low if role is Role.COLLATERAL else price.high


def position_mark(size: float, price: PriceInput) -> float:
    """Longs marked at the low end of the band, shorts at the high end."""
    return price.low if size > 0 else price.high


def _clip(x: float) -> float:
    return min(max(x, -ROW_CAP_UNITS), ROW_CAP_UNITS)


def floor_units(x: float) -> int:
    """Round down to a whole unit, forgiving float noise (``SNAP``)."""
    return math.floor(x + abs(x) * SNAP)


def ceil_units(x: float) -> int:
    """Round up to a whole unit, forgiving float noise (``SNAP``)."""
    return math.ceil(x - abs(x) * SNAP)


def holding_units(amount: float, signed_scale: float) -> int:
    """Signed value of a holding: collateral ≥ 0 rounded down, debt ≤ 0 rounded up in size."""
    return floor_units(_clip(amount * signed_scale))


def weighted_units(units: int, weight: float) -> int:
    """Signed weighted value (or shocked value), rounded against the account."""
    return floor_units(units * weight)


def pnl_units(size: float, mark: float, entry: float, scale: float) -> int:
    """Unrealized PnL of a position at ``mark``, rounded down."""
    return floor_units(_clip((size * (mark - entry)) * scale))


def notional_units(size: float, mark: float, scale: float) -> int:
    """Notional ``|size| · mark`` of a position, rounded up."""
    return ceil_units(min((abs(size) * mark) * scale, ROW_CAP_UNITS))


def price_flags(price: PriceInput | None) -> Flag:
    """Flags an asset's price puts on every account using it (no price at all is stale)."""
    return Flag.STALE_PRICE if price is None else _STATUS_FLAGS[price.status]


def chain_flags(chain: ChainInput) -> Flag:
    """Flags a chain's status puts on every account holding something on it."""
    flags = Flag.NONE
    if chain.stale:
        flags |= Flag.STALE_CHAIN
    if chain.sequencer_down:
        flags |= Flag.SEQUENCER_DOWN
    return flags
