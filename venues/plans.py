"""What a liquidation plan is worth: the USD arithmetic shared by the venue kinds."""

from __future__ import annotations

from decimal import Decimal

from venues.model import PlanPricing


def usd_value(raw: int, decimals: int | None, price_usd: Decimal | None) -> Decimal | None:
    """``raw`` units at ``price_usd`` per whole token; ``None`` when either is unknown."""
    if decimals is None or price_usd is None:
        return None
    return Decimal(raw) * price_usd / Decimal(10**decimals)


def profit_usd(
    received_usd: Decimal | None,
    repaid_usd: Decimal | None,
    gas_units: int,
    pricing: PlanPricing,
) -> tuple[Decimal | None, Decimal | None]:
    """(profit, gas cost) in USD: received − repaid − gas; the gas cost is ``None`` (and not
    deducted) without a native-token price, the profit ``None`` without both values."""
    gas = pricing.gas_usd(gas_units)
    if received_usd is None or repaid_usd is None:
        return None, gas
    return received_usd - repaid_usd - (gas or Decimal(0)), gas
