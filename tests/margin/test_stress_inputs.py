"""``margin.stress`` shocks: the shocked price band and the refusals, to the message.

Added for mutants that survived ``make mutate`` (bench/RESULTS.md, mutation section).
"""

from __future__ import annotations

import numpy as np
import pytest

from core.domain import PriceStatus, Role
from margin.engine import MarginEngine
from margin.kernel import HealthTable
from margin.model import ChainInput, PriceInput, TokenRisk
from margin.scenario import ScenarioValues
from margin.stress import (
    MAX_SHOCKS,
    Shocks,
    StressInputError,
    bad_debt_units,
    run_stress,
    shocked_prices,
)


def test_a_price_shock_moves_the_whole_band_and_keeps_status_and_volatility() -> None:
    # ETH +100 %: 2,000 (band 1,990 … 2,010) → 4,000 (3,980 … 4,020); volatility untouched
    # without a volatility shock; USDC, shocked in volatility only (+50 %), keeps its price
    prices = {
        "ETH": PriceInput(
            asset="ETH",
            price=2_000.0,
            price_low=1_990.0,
            price_high=2_010.0,
            volatility=0.5,
            status=PriceStatus.STALE,
        ),
        "USDC": PriceInput(asset="USDC", price=1.0, volatility=0.2),
    }
    out = shocked_prices(prices, Shocks(price={"ETH": 1.0}, vol={"USDC": 0.5}))
    eth = out["ETH"]
    assert (eth.price, eth.price_low, eth.price_high) == (4_000.0, 3_980.0, 4_020.0)
    assert (eth.volatility, eth.status) == (0.5, PriceStatus.STALE)
    usdc = out["USDC"]
    assert (usdc.price, usdc.price_low, usdc.price_high) == (1.0, None, None)
    assert usdc.volatility == pytest.approx(0.3, rel=1e-15)


@pytest.mark.parametrize(
    ("shocks", "message"),
    [
        ({"price": {"ETH": 10.5}}, "price_shocks.ETH: must be a number from -0.99 to 10.0"),
        ({"price": {"ETH": "0.1"}}, "price_shocks.ETH: must be a number from -0.99 to 10.0"),
        (
            {
                "price": {f"A{i}": 0.1 for i in range(40)},
                "vol": {f"A{i}": 0.1 for i in range(MAX_SHOCKS - 40 + 1)},
            },
            f"price_shocks: at most {MAX_SHOCKS} shocks in all",
        ),
    ],
)
def test_bad_shocks_are_refused_with_field_and_problem(
    shocks: dict[str, dict[str, float]], message: str
) -> None:
    with pytest.raises(StressInputError) as info:
        Shocks(**shocks)
    assert str(info.value) == message
    assert f"{info.value.field}: {info.value.problem}" == message


def test_exactly_the_maximum_number_of_shocks_is_accepted() -> None:
    price = {f"A{i}": 0.1 for i in range(40)}
    vol = {f"A{i}": 0.1 for i in range(MAX_SHOCKS - 40)}
    assert len(Shocks(price=price, vol=vol).price) == 40


def test_an_unknown_shocked_asset_is_named_with_its_kind() -> None:
    with pytest.raises(StressInputError) as info:
        Shocks(price={"DOGE": -0.5}).check_assets({"ETH"})
    assert (info.value.field, info.value.problem) == ("price_shocks.DOGE", "unknown asset 'DOGE'")


def test_bad_debt_counts_options_value_as_equity() -> None:
    # value units: C 1,000, L 1,500, U −200, O +300 → 1,500 − 1,100 = 400 of bad debt;
    # with O = +800 equity covers L: none; without options: 700
    table = HealthTable.empty(3)
    table.collateral_value[:] = 1_000.0
    table.liability_value[:] = 1_500.0
    table.unrealized_pnl[:] = -200.0
    options = np.array([300.0, 800.0, 0.0])
    got = bad_debt_units(ScenarioValues(table=table, options_value=options))
    assert got.tolist() == [400.0, 0.0, 700.0]


def test_a_stress_counts_the_accounts_whose_health_is_unknown() -> None:
    # two accounts hold 1 ETH; one also owes USDC that was never read (DEBT_UNKNOWN): its
    # health is NaN before and after a −30 % ETH move, and the report counts exactly it
    engine = MarginEngine(
        tokens=[
            TokenRisk(
                chain="eth",
                token="weth",
                asset="ETH",
                role=Role.COLLATERAL,
                weight=0.8,
                decimals=18,
            ),
            TokenRisk(
                chain="eth",
                token="dusdc",
                asset="USDC",
                role=Role.LIABILITY,
                weight=1.0,
                decimals=6,
            ),
        ],
        chains=[ChainInput(name="eth", liquidation_latency_s=60)],
    )
    engine.set_prices([PriceInput(asset="ETH", price=2_000.0), PriceInput(asset="USDC", price=1.0)])
    for account in ("0xa", "0xb"):
        engine.set_balance(account, "eth", "weth", 10**18, 1)
    engine.set_read_failed("0xb", "eth", "dusdc", 2)
    engine.recompute_all()
    report = run_stress(engine.snapshot(), Shocks(price={"ETH": -0.3}))
    assert report.health_unknown == 1
