"""``MarginEngine.evaluate_under``: the book under price and volatility shocks (the stress
endpoints' engine call) equals a book built at the shocked prices and vols, in every model,
and leaves the engine as it was."""

from __future__ import annotations

import math

import numpy as np
import pytest

from margin.model import MarginInputError, MarginModel, PriceInput
from margin.options import Right
from margin.portfolio import PortfolioResult
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import World, eth_usd_groups, option

ACCOUNTS = [f"0x{i + 1:040x}" for i in range(4)]


def populate(world: World, *, vol_factor: float = 1.0) -> None:
    """The same raw balances whatever the world's prices (valued at the unshocked 2,000)."""
    a, b, c, d = ACCOUNTS
    world.hold(a, "eth-main", 20_000, at=2000)
    world.hold(a, "usdc-debt", 14_000)
    world.hold(b, "eth-arb", 10_000, at=2000)
    world.perp(b, "ETH", "slow", -5, 2100)
    world.hold(b, "usdc-debt", 4_000)
    world.hold(c, "usdc", 30_000)
    world.options(
        c,
        [
            option(c, size=-8, right=Right.PUT, strike=1900, vol=0.6 * vol_factor),
            option(c, size=-8, right=Right.CALL, strike=2200, vol=0.6 * vol_factor),
        ],
    )
    world.hold(d, "btc", 40_000)
    world.hold(d, "usdc-debt-arb", 25_000)


@pytest.mark.parametrize("model", list(MarginModel))
def test_a_shocked_book_equals_a_book_at_the_shocked_market(model: MarginModel) -> None:
    world = World(model=model, volatility={"ETH": 0.7, "BTC": 0.5})
    populate(world)
    before = world.engine.recompute_all().select(slice(None))
    shocked, _ = world.engine.evaluate_under(
        price_shocks={"ETH": -0.3, "stETH": -0.3}, vol_shocks={"ETH": 0.5}
    )
    prices = {**world.prices, "ETH": 2000 * 0.7, "stETH": 1990 * 0.7}
    moved = World(model=model, prices=prices, volatility={"ETH": 0.7 * 1.5, "BTC": 0.5})
    populate(moved, vol_factor=1.5)
    expected = moved.engine.recompute_all()
    for name, column in shocked.columns().items():
        np.testing.assert_allclose(column, getattr(expected, name), rtol=1e-9, err_msg=name)
    # the engine is untouched: same results, nothing dirty, same prices
    again = world.engine.recompute_all()
    for name, column in before.columns().items():
        np.testing.assert_array_equal(column, getattr(again, name), err_msg=name)
    assert (shocked.health[:1] < before.health[:1]).all()  # the ETH holder got worse


def test_bad_shocks_are_refused() -> None:
    world = World()
    populate(world)
    with pytest.raises(MarginInputError, match="unknown asset DOGE"):
        world.engine.evaluate_under(price_shocks={"DOGE": -0.1})
    with pytest.raises(MarginInputError, match="must be > -1"):
        world.engine.evaluate_under(price_shocks={"ETH": -1.0})


def test_a_portfolio_book_valued_with_flat_weights_equals_the_weighted_model() -> None:
    portfolio, weighted = World(), World(model=MarginModel.WEIGHTED)
    populate(portfolio)
    populate(weighted)
    as_weighted, _ = portfolio.engine.evaluate_under(weighted=True)
    expected = weighted.engine.recompute_all()
    for name, column in as_weighted.columns().items():
        np.testing.assert_array_equal(column, getattr(expected, name), err_msg=name)


def test_a_volatility_shock_alone_revalues_options_at_the_shocked_implied_vol() -> None:
    # No price shock at all: ETH's vol +50 % values A's 2 calls (strike 2,100, 30 days) at
    # σ 0.9 instead of 0.6 (weighted: their market value, rounded down to a cent, is U).
    world = World(model=MarginModel.WEIGHTED)
    world.hold(ACCOUNTS[0], "usdc", 10_000)
    world.options(ACCOUNTS[0], [option(ACCOUNTS[0], size=2, right=Right.CALL, strike=2100)])
    tau = 30 * 86_400 / (365 * 86_400)
    for vol, shocks in ((0.6, {}), (0.9, {"ETH": 0.5})):
        shocked, _ = world.engine.evaluate_under(vol_shocks=shocks)
        value = 2 * oracle.black_scholes("call", 2000, 2100, vol, tau)
        assert shocked.unrealized_pnl[0] == math.floor(value * 100)


A = ACCOUNTS[0]


def test_a_price_shock_alone_moves_the_price_and_its_band() -> None:
    # ETH 2,000 in a band of 1,984–2,016, USDC 1 in 0.9375–1.0625 (exact in binary);
    # ETH −25 %, USDC +50 %, no vol shock: 10 ETH at the shocked low 1,488 = 14,880.00 of
    # collateral, 10,000 USDC of debt at the shocked high 1.59375 = 15,937.50
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "eth-main", 20_000)
    world.hold(A, "usdc-debt", 10_000)
    shocked, _ = world.engine.evaluate_under(price_shocks={"ETH": -0.25, "USDC": 0.5})
    assert (shocked.collateral_value[0], shocked.liability_value[0]) == (1_500_000, 1_500_000)
    world.engine.set_prices(
        [
            PriceInput(asset="ETH", price=2000.0, price_low=1984.0, price_high=2016.0),
            PriceInput(asset="USDC", price=1.0, price_low=0.9375, price_high=1.0625),
        ]
    )
    shocked, _ = world.engine.evaluate_under(price_shocks={"ETH": -0.25, "USDC": 0.5})
    assert (shocked.collateral_value[0], shocked.liability_value[0]) == (1_488_000, 1_593_750)


def test_a_volatility_shock_alone_widens_the_scan_range() -> None:
    # σ_ETH 0.6 at its floor 0.6: R = 15 % → 3,000.00 on 20,000; ETH's vol +50 % (no price
    # shock): σ 0.9, R = 15 % · 0.9 / 0.6 = 22.5 % → 4,500.00, as the oracle at σ 0.9 says
    params = eth_usd_groups(volatility_floors=(("ETH", 0.6), ("stETH", 0.6)))
    world = World(params=params, volatility={"ETH": 0.6})
    world.hold(A, "eth-main", 20_000)
    calm, _ = world.engine.evaluate_under()
    shocked, _ = world.engine.evaluate_under(vol_shocks={"ETH": 0.5})
    moved = World(params=params, volatility={"ETH": 0.6 * 1.5})
    moved.hold(A, "eth-main", 20_000)
    assert calm.maintenance[0] == 300_000
    assert shocked.maintenance[0] == 450_000
    assert shocked.maintenance[0] / 100 == pytest.approx(moved.expected(A).maintenance, abs=0.01)
    assert shocked.collateral_value[0] == 2_000_000  # the price did not move


@pytest.mark.parametrize("model", [MarginModel.WEIGHTED, MarginModel.TIERED])
def test_the_portfolio_result_of_a_shocked_book_is_none_unless_the_model_is_portfolio(
    model: MarginModel,
) -> None:
    flat, portfolio = World(model=model), World()
    for world in (flat, portfolio):
        populate(world)
    assert flat.engine.evaluate_under(price_shocks={"ETH": -0.1})[1] is None
    assert portfolio.engine.evaluate_under(price_shocks={"ETH": -0.1}, weighted=True)[1] is None
    assert isinstance(
        portfolio.engine.evaluate_under(price_shocks={"ETH": -0.1})[1], PortfolioResult
    )
