"""Oracle drift: a venue's oracle against our multi-source consensus (pure: no I/O).

Beyond ``PlanPricing.drift_threshold`` (relative to our price) the venue's price of an asset
drifts. The accounts valued with a drifting price get ``ORACLE_DRIFT`` and their
``health_at_consensus``: the venue's own health with the venue's oracle moved to our price
(Aave: the reserve's AaveOracle price; Morpho: the market oracle's collateral price in loan
units), computed with the venue's integer arithmetic. Drift never changes ``liquidatable``:
the venue's own rule decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from venues.aave.reads import ZERO_ADDRESS as AAVE_USD_BASE
from venues.aave.reads import AaveSnapshot
from venues.model import ORACLE_DRIFT, PlanPricing, VenueAccount
from venues.morpho.evaluate import AccruedMarket
from venues.morpho.market import ORACLE_PRICE_SCALE


def drifts(venue_price: Decimal, ours: Decimal, threshold: Decimal) -> bool:
    """Whether ``venue_price`` is further than ``threshold`` (relative) from ``ours``."""
    return ours > 0 and abs(venue_price - ours) / ours > threshold


def _integer(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def aave_at_consensus(
    snapshot: AaveSnapshot, pricing: PlanPricing
) -> tuple[AaveSnapshot, frozenset[str]] | None:
    """The snapshot with every drifting reserve's AaveOracle price moved to ours (base
    currency units), and the drifting underlyings; ``None`` when nothing drifts (or drift is
    not asked for, or the market's base currency is not USD)."""
    threshold = pricing.drift_threshold
    if threshold is None or snapshot.addresses.base_currency != AAVE_USD_BASE:
        return None
    unit = Decimal(snapshot.addresses.base_currency_unit)
    moved: dict[str, int] = {}
    for reserve in snapshot.reserves:
        ours = pricing.usd.get(reserve.asset)
        if ours is not None and drifts(Decimal(reserve.price) / unit, ours, threshold):
            moved[reserve.asset] = _integer(ours * unit)
    if not moved:
        return None
    reserves = [
        dataclasses.replace(r, price=moved[r.asset]) if r.asset in moved else r
        for r in snapshot.reserves
    ]
    return dataclasses.replace(snapshot, reserves=reserves), frozenset(moved)


def morpho_at_consensus(
    markets: Mapping[str, AccruedMarket], pricing: PlanPricing
) -> tuple[dict[str, AccruedMarket], frozenset[str]] | None:
    """The markets with every drifting oracle price moved to ours (collateral in loan raw
    units, 1e36 scale), and the drifting market ids; ``None`` when nothing drifts."""
    threshold = pricing.drift_threshold
    if threshold is None:
        return None
    moved: dict[str, AccruedMarket] = {}
    for market_id, market in markets.items():
        info, price = market.at_block.info, market.at_block.price
        loan = pricing.usd.get(info.params.loan_token)
        collateral = pricing.usd.get(info.params.collateral_token)
        loan_decimals, collateral_decimals = info.loan_decimals, info.collateral_decimals
        if (
            loan is None
            or collateral is None
            or price is None
            or loan_decimals is None
            or collateral_decimals is None
            or loan <= 0
        ):
            continue
        scale = Decimal(ORACLE_PRICE_SCALE) * Decimal(10) ** (loan_decimals - collateral_decimals)
        ours = collateral / loan * scale
        if drifts(Decimal(price), ours, threshold):
            at_block = dataclasses.replace(market.at_block, price=_integer(ours))
            moved[market_id] = dataclasses.replace(market, at_block=at_block)
    if not moved:
        return None
    return {**markets, **moved}, frozenset(moved)


def uses(entry: VenueAccount, assets_or_markets: frozenset[str]) -> bool:
    """Whether ``entry`` holds collateral or debt valued by one of these assets (Aave
    underlyings) or markets (Morpho ids)."""
    return any(
        (p.collateral_raw or p.debt_raw)
        and (p.asset in assets_or_markets or p.market in assets_or_markets)
        for p in entry.positions
    )


def flagged(entry: VenueAccount, at_consensus: VenueAccount) -> VenueAccount:
    """``entry`` flagged ``ORACLE_DRIFT`` with the health of ``at_consensus``."""
    return dataclasses.replace(
        entry,
        flags=entry.flags | {ORACLE_DRIFT},
        health_at_consensus=at_consensus.health_raw,
    )
