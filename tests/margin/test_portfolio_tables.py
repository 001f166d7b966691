"""The portfolio model on hand-computed examples (DESIGN §3 "Portfolio model").

Each number below is worked out in the comment beside it; the engine must give it to the cent
(M and M_lat are rounded up to a cent, holdings and option values down).
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from margin.model import Flag, MarginModel
from margin.options import Right
from margin.scenarios import scenario_grid
from tests.margin.portfolio_kit import World, eth_usd_groups, option

A = "0x" + "a" * 40


def test_a_hedge_across_chains_nets_to_zero() -> None:
    # 10 ETH spot on main, a 10 ETH perp short on arb: E_ETH = 20,000 − 20,000 = 0.
    # USDC debt 15,000: E_USD = −15,000, R = 3 % → loss 450 (USDC up 3 % grows the debt).
    world = World()
    world.hold(A, "eth-main", 20_000)
    world.perp(A, "ETH", "arb", -10, 2000)
    world.hold(A, "usdc-debt", 15_000)
    health = world.engine.account_health(A)
    risk = world.engine.account_risk(A)
    assert risk.groups["ETH"].loss == 0
    assert risk.groups["ETH"].delta == 0
    assert risk.groups["USD"].loss == pytest.approx(450)
    assert health.maintenance == Decimal("450.00")
    assert health.collateral_value == Decimal("20000.00")
    assert health.liability_value == Decimal("15000.00")
    assert health.health == pytest.approx(20_000 / 15_450)  # 1.2945
    assert not health.flags & Flag.LIQUIDATABLE


def test_the_same_hedge_is_liquidatable_under_the_weighted_model() -> None:
    # weighted: C_w = 0.8 · 20,000 = 16,000; L = 15,000; perp M = 5 % · 20,000 = 1,000 → 1.0
    # minus a cent of rounding: the perp's maintenance rounds up.
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "eth-main", 20_000)
    world.perp(A, "ETH", "arb", -10, 2000)
    world.hold(A, "usdc-debt", 15_500)
    health = world.engine.account_health(A)
    assert health.weighted_collateral == Decimal("16000.00")
    assert health.maintenance == Decimal("1000.00")
    assert health.flags & Flag.LIQUIDATABLE  # 16,000 / 16,500 < 1 …
    portfolio = World()
    portfolio.hold(A, "eth-main", 20_000)
    portfolio.perp(A, "ETH", "arb", -10, 2000)
    portfolio.hold(A, "usdc-debt", 15_500)
    # … while the portfolio model asks 15,500 + 3 % · 15,500 = 15,965 of 20,000
    assert portfolio.engine.account_health(A).health == pytest.approx(20_000 / 15_965)


@pytest.mark.parametrize(
    ("multiple", "weight", "loss"),
    [
        (2.0, 0.35, 3000.0),  # extremes: 0.35 · 2 · 15 % = 10.5 % < 15 %: the price edge wins
        (3.0, 0.35, 3150.0),  # SPAN: 0.35 · 3 · 15 % = 15.75 % of 20,000 = 3,150
        (3.0, 0.0, 3000.0),  # extremes weighted 0 count for nothing
        (3.0, 1.0, 9000.0),  # weighted fully: 45 % of 20,000
    ],
)
def test_span_extremes_count_at_their_weight(multiple: float, weight: float, loss: float) -> None:
    world = World(params=eth_usd_groups(extreme_multiple=multiple, extreme_weight=weight))
    world.hold(A, "eth-main", 20_000)
    assert world.engine.account_risk(A).groups["ETH"].loss == pytest.approx(loss)
    assert world.engine.account_health(A).maintenance == Decimal(f"{loss:.2f}")


def test_span_extreme_dominates_a_short_out_of_the_money_put() -> None:
    # A short put struck 30 % below spot, expired-style (intrinsic only, τ ≤ 0 after expiry):
    # within ±15 % the put stays worthless (no loss); at −2 · 15 % = −30 % it is still at the
    # strike (0); SPAN's point is visible with a strike 20 % below: −30 % → intrinsic 200 per
    # ETH, 10 written → P&L −2,000, counted at 35 % → 700.
    world = World(now=1_700_000_000.0)
    expired = option(A, size=-10, right=Right.PUT, strike=1600, days=-1)
    world.options(A, [expired])
    risk = world.engine.account_risk(A)
    assert risk.groups["ETH"].loss == pytest.approx(700)
    assert risk.options_value == Decimal("0.00")


def test_an_expired_call_is_worth_its_intrinsic_value_and_scans_linearly() -> None:
    # 2 calls struck 1,500, expired, spot 2,000: worth 2 · 500 = 1,000. At −15 % (1,700) they
    # are worth 400: loss 600; the extreme −30 % (1,400) makes them worthless: −1,000 · 35 % =
    # 350 < 600.
    world = World()
    world.options(A, [option(A, size=2, strike=1500, days=-3)])
    health = world.engine.account_health(A)
    risk = world.engine.account_risk(A)
    assert risk.options_value == Decimal("1000.00")
    assert risk.groups["ETH"].loss == pytest.approx(600)
    assert risk.groups["ETH"].delta == pytest.approx(2 * 2000)  # in the money: delta 1
    assert health.unrealized_pnl == Decimal("1000.00")  # U + O
    assert health.maintenance == Decimal("600.00")
    assert health.health == pytest.approx(1000 / 600)


def test_a_derive_style_grid_is_a_configuration() -> None:
    # Derive: spot × {0.85, 0.90, 0.95, 1, 1.05, 1.10, 1.15} × vol {down, none, up}: 7 × 3.
    params = eth_usd_groups(price_steps=3, extreme_weight=0.0, vol_up=0.4, vol_down=0.25)
    grid = scenario_grid(params)
    points = sorted({round(1 + 0.15 * m, 12) for m in grid.moves[:-2]})
    assert points == [0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15]
    assert sorted(set(np.round(grid.vol, 12))) == [-0.25, 0.0, 0.4]
    assert len(grid) == 7 * 3 + 2
    assert set(grid.weight[-2:]) == {0.0}
    # A short at-the-money straddle loses most at a corner of the grid: check the engine
    # against the definition (independent oracle) on it.
    world = World(params=params)
    world.options(
        A,
        [
            option(A, size=-5, right=Right.CALL, strike=2000),
            option(A, size=-5, right=Right.PUT, strike=2000),
        ],
    )
    world.hold(A, "usdc", 50_000)
    expected = world.expected(A)
    risk = world.engine.account_risk(A)
    assert risk.groups["ETH"].loss == pytest.approx(expected.loss["ETH"], abs=0.02)
    assert float(world.engine.account_health(A).maintenance) == pytest.approx(
        expected.maintenance, abs=0.011
    )


@pytest.mark.parametrize(("rho", "m"), [(1.0, "7000.00"), (0.0, "5000.00"), (0.5, "6082.77")])
def test_correlation_between_groups(rho: float, m: str) -> None:
    # ETH 20,000 at 15 % → 3,000; BTC 40,000 at its default 10 % → 4,000.
    # ρ=1: 7,000; ρ=0: √(3,000² + 4,000²) = 5,000; ρ=½: √(9e6 + 16e6 + 12e6) = 6,082.762… ↑
    world = World(params=eth_usd_groups(correlations=(("BTC", "ETH", rho),)))
    world.hold(A, "eth-main", 20_000)
    world.hold(A, "btc", 40_000)
    assert world.engine.account_health(A).maintenance == Decimal(m)


def test_volatility_widens_the_scan_range_above_the_floor() -> None:
    # σ_ETH = 0.9 with a floor of 0.6: R = 15 % · 0.9 / 0.6 = 22.5 % → 4,500 on 20,000.
    # stETH shares the group: σ_g is the largest of the two, the floor too.
    floors = (("ETH", 0.6), ("stETH", 0.5))
    world = World(params=eth_usd_groups(volatility_floors=floors), volatility={"ETH": 0.9})
    world.hold(A, "eth-main", 20_000)
    risk = world.engine.account_risk(A)
    assert risk.groups["ETH"].scan_range == pytest.approx(0.225)
    assert risk.groups["ETH"].loss == pytest.approx(4500)
    calm = World(params=eth_usd_groups(volatility_floors=floors), volatility={"ETH": 0.4})
    calm.hold(A, "eth-main", 20_000)
    assert calm.engine.account_risk(A).groups["ETH"].scan_range == pytest.approx(0.15)


def test_latency_horizon_is_the_slowest_chain_with_exposure() -> None:
    # 10 ETH on "slow" (3,600 s), σ = 0.6: shock = 2.33 · 0.6 · √(3,600 / 31,536,000)
    # = 0.0149367…, loss_lat = 20,000 · shock = 298.73…; VaR over the same horizon.
    world = World(volatility={"ETH": 0.6, "stETH": 0.6})
    world.hold(A, "eth-slow", 20_000)
    world.hold(A, "usdc-debt", 16_000)
    shock = 2.33 * 0.6 * math.sqrt(3600 / 31_536_000)
    risk = world.engine.account_risk(A)
    assert risk.groups["ETH"].horizon_s == 3600
    assert risk.groups["ETH"].loss_latency == pytest.approx(20_000 * shock)
    health = world.engine.account_health(A)
    expected = world.expected(A)
    assert health.health_latency == pytest.approx(expected.health_latency, rel=1e-6)
    assert risk.var_99 == pytest.approx(expected.var_99)
    assert risk.es_975 == pytest.approx(expected.es_975)


def test_zero_balances_give_no_horizon() -> None:
    world = World()
    world.hold(A, "eth-slow", 0)
    world.hold(A, "eth-fast", 20_000)
    assert world.engine.account_risk(A).groups["ETH"].horizon_s == 10


def test_an_account_without_anything_owed_has_infinite_health() -> None:
    world = World()
    world.hold(A, "usdc", 1000)
    health = world.engine.account_health(A)
    assert health.maintenance == Decimal("30.00")  # 3 % of 1,000: the USD group still scans
    assert health.health == pytest.approx(1000 / 30)
    empty = World()
    empty.engine.set_balance(A, "main", "usdc", 0, 1)
    assert empty.engine.account_health(A).health == math.inf
