"""Morpho Blue market logic (``Morpho.sol`` of ``@morpho-org/morpho-blue`` 1.0.0): interest
accrual (``_accrueInterest``), the health rule (``_isHealthy``) and what ``liquidate`` seizes
and repays. Pure: values in, values out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from venues.morpho.math import (
    WAD,
    mul_div_down,
    mul_div_up,
    to_assets_down,
    to_assets_up,
    to_shares_down,
    to_shares_up,
    to_uint128,
    w_div_down,
    w_div_up,
    w_mul_down,
    w_taylor_compounded,
)

ORACLE_PRICE_SCALE = 10**36
LIQUIDATION_CURSOR = 3 * 10**17  # 0.3 WAD
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16  # 1.15 WAD


@dataclass(frozen=True, slots=True)
class MarketParams:
    """``MarketParams``: loan and collateral tokens, oracle, IRM, LLTV (WAD)."""

    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int


@dataclass(frozen=True, slots=True)
class MarketState:
    """``Market``: totals (assets and shares), last update (unix s), fee (WAD)."""

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee: int


@dataclass(frozen=True, slots=True)
class Position:
    """``Position`` of one account in one market."""

    supply_shares: int
    borrow_shares: int
    collateral: int


def accrue_interest(
    market: MarketState, borrow_rate: int, timestamp: int, *, has_irm: bool = True
) -> MarketState:
    """The market after ``_accrueInterest`` at ``timestamp``. ``borrow_rate`` is the IRM's
    per-second rate (WAD) for the market *before* accrual, as ``borrowRate`` sees it; the
    fee is minted as supply shares to the fee recipient, priced after the interest (minus the
    fee itself), as the contract does."""
    elapsed = timestamp - market.last_update
    if elapsed <= 0:
        return market
    if not has_irm:
        return replace(market, last_update=timestamp)
    interest = w_mul_down(market.total_borrow_assets, w_taylor_compounded(borrow_rate, elapsed))
    total_borrow_assets = market.total_borrow_assets + to_uint128(interest)
    total_supply_assets = market.total_supply_assets + to_uint128(interest)
    total_supply_shares = market.total_supply_shares
    if market.fee != 0:
        fee_amount = w_mul_down(interest, market.fee)
        fee_shares = to_shares_down(
            fee_amount, total_supply_assets - fee_amount, market.total_supply_shares
        )
        total_supply_shares += to_uint128(fee_shares)
    return replace(
        market,
        total_supply_assets=total_supply_assets,
        total_supply_shares=total_supply_shares,
        total_borrow_assets=total_borrow_assets,
        last_update=timestamp,
    )


def borrowed_assets(position: Position, market: MarketState) -> int:
    """What ``_isHealthy`` takes as borrowed: borrow shares to assets, rounded up."""
    return to_assets_up(
        position.borrow_shares, market.total_borrow_assets, market.total_borrow_shares
    )


def max_borrow(position: Position, price: int, lltv: int) -> int:
    """``collateral · price / 1e36`` rounded down, then ``wMulDown(lltv)``."""
    return w_mul_down(mul_div_down(position.collateral, price, ORACLE_PRICE_SCALE), lltv)


def is_healthy(position: Position, market: MarketState, price: int, lltv: int) -> bool:
    """``_isHealthy``: no borrow shares, or ``maxBorrow >= borrowed``."""
    if position.borrow_shares == 0:
        return True
    return max_borrow(position, price, lltv) >= borrowed_assets(position, market)


def health_wad(position: Position, market: MarketState, price: int, lltv: int) -> int | None:
    """``maxBorrow / borrowed`` in WAD, rounded down (``None`` without borrow). Reporting
    only: the liquidatable decision is ``is_healthy``'s integer comparison."""
    borrowed = borrowed_assets(position, market)
    if position.borrow_shares == 0 or borrowed == 0:
        return None
    return w_div_down(max_borrow(position, price, lltv), borrowed)


def liquidation_incentive_factor(lltv: int) -> int:
    """``min(MAX_LIQUIDATION_INCENTIVE_FACTOR, WAD / (WAD − CURSOR · (WAD − lltv)))``."""
    return min(
        MAX_LIQUIDATION_INCENTIVE_FACTOR,
        w_div_down(WAD, WAD - w_mul_down(LIQUIDATION_CURSOR, WAD - lltv)),
    )


@dataclass(frozen=True, slots=True)
class MorphoLiquidation:
    """What ``liquidate(params, borrower, seized_assets_arg, repaid_shares_arg, "")`` does:
    ``seized`` collateral to the liquidator, ``repaid`` loan assets (``repaid_shares``
    shares) pulled from it. Exactly one of the two arguments is non-zero."""

    seized_assets_arg: int
    repaid_shares_arg: int
    seized: int
    repaid: int
    repaid_shares: int
    incentive_factor: int


def largest_liquidation(
    position: Position, market: MarketState, price: int, lltv: int
) -> MorphoLiquidation | None:
    """The largest liquidation ``liquidate`` accepts on an accrued ``market``: seize all
    the collateral if that repays no more shares than owed, else repay every borrow share.
    ``None`` when the position is healthy or empty."""
    if is_healthy(position, market, price, lltv) or position.collateral == 0 or price == 0:
        return None
    factor = liquidation_incentive_factor(lltv)
    total_assets, total_shares = market.total_borrow_assets, market.total_borrow_shares
    # seizedAssets > 0 branch
    quoted = mul_div_up(position.collateral, price, ORACLE_PRICE_SCALE)
    shares = to_shares_up(w_div_up(quoted, factor), total_assets, total_shares)
    if shares <= position.borrow_shares:
        return MorphoLiquidation(
            seized_assets_arg=position.collateral,
            repaid_shares_arg=0,
            seized=position.collateral,
            repaid=to_assets_up(shares, total_assets, total_shares),
            repaid_shares=shares,
            incentive_factor=factor,
        )
    # repaidShares > 0 branch: every borrow share
    shares = position.borrow_shares
    seized = mul_div_down(
        w_mul_down(to_assets_down(shares, total_assets, total_shares), factor),
        ORACLE_PRICE_SCALE,
        price,
    )
    if seized > position.collateral:
        return None  # the contract's subtraction would underflow: no such liquidation
    return MorphoLiquidation(
        seized_assets_arg=0,
        repaid_shares_arg=shares,
        seized=seized,
        repaid=to_assets_up(shares, total_assets, total_shares),
        repaid_shares=shares,
        incentive_factor=factor,
    )


def supplied_assets(position: Position, market: MarketState) -> int:
    """Supply shares to assets, rounded down (what ``withdraw`` by shares would pay)."""
    return to_assets_down(
        position.supply_shares, market.total_supply_assets, market.total_supply_shares
    )
