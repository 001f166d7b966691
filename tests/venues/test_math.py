"""Venue math as tables: Aave's bitmaps, WadRayMath/PercentageMath and GenericLogic rounding,
Morpho's MathLib/SharesMathLib and liquidation incentive. The contracts themselves are the
reference in test_venue_aave.py / test_venue_morpho.py; these pin the arithmetic's edges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.multicall import MalformedReturn, decode_aggregate3_data
from venues.aave.account import (
    ReserveState,
    UserBalances,
    UserState,
    calculate_user_account_data,
)
from venues.aave.bitmaps import (
    ReserveParams,
    is_borrowing,
    is_using_as_collateral,
    is_using_as_collateral_or_borrowing,
)
from venues.aave.liquidation import available_collateral_to_liquidate, close_factor
from venues.aave.math import UINT256_MAX, percent_div, percent_mul, ray_mul, wad_div
from venues.errors import VenueMathOverflow
from venues.model import PlanPricing
from venues.morpho.market import (
    MarketState,
    Position,
    accrue_interest,
    is_healthy,
    liquidation_incentive_factor,
)
from venues.morpho.math import (
    WAD,
    to_assets_down,
    to_assets_up,
    to_shares_down,
    to_shares_up,
    w_taylor_compounded,
)


def _config(**fields: int) -> int:
    """A ReserveConfigurationMap built from (start bit, value) per field."""
    starts = {
        "ltv": 0,
        "threshold": 16,
        "bonus": 32,
        "decimals": 48,
        "active": 56,
        "frozen": 57,
        "borrowing": 58,
        "paused": 60,
        "isolation": 61,
        "fee": 152,
        "emode": 168,
        "ceiling": 212,
    }
    return sum(value << starts[name] for name, value in fields.items())


def test_reserve_configuration_decodes_every_field() -> None:
    data = _config(
        ltv=8_000, threshold=8_250, bonus=10_500, decimals=18, active=1, frozen=1, borrowing=1,
        isolation=1, fee=1_000, emode=3, ceiling=2**40 - 1,
    )  # fmt: skip
    params = ReserveParams.decode(data)
    assert (params.ltv, params.liquidation_threshold, params.liquidation_bonus) == (
        8_000,
        8_250,
        10_500,
    )
    assert (params.decimals, params.liquidation_protocol_fee, params.emode_category) == (
        18,
        1_000,
        3,
    )
    assert params.active
    assert params.frozen
    assert params.borrowing_enabled
    assert params.borrowable_in_isolation
    assert not params.paused
    assert params.debt_ceiling == 2**40 - 1


@pytest.mark.parametrize(
    ("config", "reserve_id", "borrowing", "collateral"),
    [
        (0b01, 0, True, False),
        (0b10, 0, False, True),
        (0b11 << 4, 2, True, True),
        (0b10 << 254, 127, False, True),
        (0b01 << 4, 1, False, False),
    ],
)
def test_user_configuration_bits(
    config: int, reserve_id: int, borrowing: bool, collateral: bool
) -> None:
    assert is_borrowing(config, reserve_id) is borrowing
    assert is_using_as_collateral(config, reserve_id) is collateral
    assert is_using_as_collateral_or_borrowing(config, reserve_id) is (borrowing or collateral)


@pytest.mark.parametrize(
    ("function", "a", "b", "expected"),
    [
        (percent_mul, 10_001, 5_000, 5_001),  # 5000.5 rounds half up
        (percent_mul, 9_999, 5_000, 5_000),  # 4999.5 rounds half up
        (percent_mul, 3, 3_333, 1),
        (percent_div, 1, 3, 3_333),
        (percent_div, 10_500, 10_500, 10_000),
        (wad_div, 1, 3, 333_333_333_333_333_333),
        (wad_div, 2, 3, 666_666_666_666_666_667),
        (ray_mul, 5, 10**27 // 2, 3),  # 2.5 rounds half up
    ],
)
def test_aave_fixed_point_rounds_half_up(function: object, a: int, b: int, expected: int) -> None:
    assert function(a, b) == expected  # type: ignore[operator]


def test_aave_fixed_point_reverts_where_solidity_reverts() -> None:
    with pytest.raises(VenueMathOverflow, match="percentMul"):
        percent_mul(UINT256_MAX // 2, 10_000)
    with pytest.raises(VenueMathOverflow, match="wadDiv by zero"):
        wad_div(1, 0)


def _reserve(
    reserve_id: int, *, ltv: int, threshold: int, decimals: int, price: int
) -> ReserveState:
    config = _config(ltv=ltv, threshold=threshold, bonus=10_500, decimals=decimals, active=1)
    return ReserveState(
        id=reserve_id,
        asset=f"0x{reserve_id + 1:040x}",
        params=ReserveParams.decode(config),
        a_token="",
        stable_debt_token="",
        variable_debt_token="",
        price=price,
    )


def test_generic_logic_floors_each_value_and_the_average_threshold() -> None:
    eth = _reserve(0, ltv=8_000, threshold=8_250, decimals=18, price=300_012_345_678)
    btc = _reserve(1, ltv=7_000, threshold=7_500, decimals=8, price=6_000_098_765_432)
    usdc = _reserve(2, ltv=7_700, threshold=8_000, decimals=6, price=100_010_000)
    user = UserState(
        config=0b10 | 0b10 << 2 | 0b01 << 4,
        emode=0,
        balances={
            0: UserBalances(a_token=1_234_567_890_123_456_789),
            1: UserBalances(a_token=3_456_789),
            2: UserBalances(variable_debt=2_000_000_001, stable_debt=333),
        },
    )
    data = calculate_user_account_data(user, [eth, btc, usdc], {})
    eth_value = 1_234_567_890_123_456_789 * 300_012_345_678 // 10**18
    btc_value = 3_456_789 * 6_000_098_765_432 // 10**8
    collateral = eth_value + btc_value
    threshold = (eth_value * 8_250 + btc_value * 7_500) // collateral
    debt = 100_010_000 * 2_000_000_334 // 10**6
    assert data.total_collateral_base == collateral
    assert data.current_liquidation_threshold == threshold
    assert data.ltv == (eth_value * 8_000 + btc_value * 7_000) // collateral
    assert (
        data.health_factor
        == ((collateral * threshold + 5_000) // 10_000 * 10**18 + debt // 2) // debt
    )
    # The plain formula (exact weighted threshold, no floors) is not what the Pool says.
    plain = Decimal(eth_value * 8_250 + btc_value * 7_500) / 10_000 / Decimal(debt)
    assert abs(plain - Decimal(data.health_factor) / 10**18) > Decimal("1e-6")

    switched_off = UserState(config=user.config & ~(0b10 << 2), emode=0, balances=user.balances)
    assert calculate_user_account_data(
        switched_off, [eth, btc, usdc], {}
    ).total_collateral_base == (eth_value)
    empty = calculate_user_account_data(UserState(0, 0, {}), [eth], {})
    assert (empty.health_factor, empty.total_collateral_base) == (UINT256_MAX, 0)


@pytest.mark.parametrize(
    ("health", "factor"),
    [(95 * 10**16 + 1, 5_000), (95 * 10**16, 10_000), (10**18 - 1, 5_000), (1, 10_000)],
)
def test_close_factor(health: int, factor: int) -> None:
    assert close_factor(health) == factor


def test_available_collateral_caps_at_the_balance_and_takes_the_fee_from_the_bonus() -> None:
    uncapped = available_collateral_to_liquidate(
        collateral_price=3_000 * 10**8,
        debt_price=10**8,
        collateral_decimals=18,
        debt_decimals=6,
        protocol_fee_bps=1_000,
        debt_to_cover=3_000 * 10**6,
        user_collateral_balance=10**19,
        liquidation_bonus=10_500,
    )
    # 1 ETH of base + 5 % bonus; the fee is 10 % of the 0.05 ETH bonus part.
    assert uncapped == (105 * 10**16 - 5 * 10**15, 3_000 * 10**6, 5 * 10**15)
    capped = available_collateral_to_liquidate(
        collateral_price=3_000 * 10**8,
        debt_price=10**8,
        collateral_decimals=18,
        debt_decimals=6,
        protocol_fee_bps=0,
        debt_to_cover=3_000 * 10**6,
        user_collateral_balance=10**18,
        liquidation_bonus=10_500,
    )
    assert capped == (10**18, percent_div(3_000 * 10**6, 10_500), 0)


def test_plan_pricing_values_gas_only_with_a_native_price() -> None:
    assert PlanPricing(gas_price_wei=10**10).gas_usd(500_000) is None
    assert PlanPricing(gas_price_wei=10**10, native_usd=Decimal(3_000)).gas_usd(500_000) == 15


@pytest.mark.parametrize(
    ("lltv", "factor"),
    [
        (86 * 10**16, WAD * WAD // (WAD - 3 * 14 * 10**15)),
        (945 * 10**15, WAD * WAD // (WAD - 165 * 10**14)),
        (385 * 10**15, 115 * 10**16),  # capped at MAX_LIQUIDATION_INCENTIVE_FACTOR
    ],
)
def test_morpho_liquidation_incentive_factor(lltv: int, factor: int) -> None:
    assert liquidation_incentive_factor(lltv) == factor


def test_morpho_taylor_compounding_and_share_rounding() -> None:
    rate = WAD // (365 * 86_400)  # 100 % APR per second
    year = w_taylor_compounded(rate, 365 * 86_400)
    assert 1_666_000_000_000_000_000 < year < 1_667_000_000_000_000_000  # e - 1 to 3 terms
    assert to_shares_down(1, 0, 0) == 10**6
    assert to_assets_up(1, 0, 0) == 1
    assert to_assets_down(1, 0, 0) == 0
    assert to_shares_up(1, 3, 7 * 10**6) == 2 * 10**6  # (7e6 + 1e6) / 4, rounded up


@settings(max_examples=200, deadline=None)
@given(
    borrow=st.integers(1, 10**30),
    supply_extra=st.integers(0, 10**30),
    rate=st.integers(0, 10**11),
    elapsed=st.integers(0, 10**8),
    fee=st.integers(0, 25 * 10**16),
)
def test_morpho_accrual_only_ever_adds_interest(
    borrow: int, supply_extra: int, rate: int, elapsed: int, fee: int
) -> None:
    market = MarketState(
        borrow + supply_extra, (borrow + supply_extra) * 10**6, borrow, borrow * 10**6, 1_000, fee
    )
    after = accrue_interest(market, rate, 1_000 + elapsed)
    interest = after.total_borrow_assets - market.total_borrow_assets
    assert interest >= 0
    assert after.total_supply_assets - market.total_supply_assets == interest
    assert after.total_borrow_shares == market.total_borrow_shares
    assert (after.total_supply_shares > market.total_supply_shares) <= (fee > 0 and interest > 0)
    position = Position(0, borrow * 10**6, 10**40)
    assert is_healthy(position, after, 10**36, 10**18) is True


returns = st.tuples(
    st.booleans(), st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=200))
)


@settings(max_examples=300, deadline=None)
@given(st.lists(returns, max_size=12), st.booleans())
def test_aggregate3_returns_decode_like_eth_abi(
    returned: list[tuple[bool, bytes]], one_word_each: bool
) -> None:
    if one_word_each:  # the fast path: every call succeeded with one word
        returned = [(True, data[:32].rjust(32, b"\0")) for _, data in returned]
    hex_result = "0x" + encode(["(bool,bytes)[]"], [returned]).hex()
    assert decode_aggregate3_data(hex_result, len(returned)) == [
        data if ok else None for ok, data in returned
    ]
    with pytest.raises(MalformedReturn):
        decode_aggregate3_data(hex_result, len(returned) + 1)
