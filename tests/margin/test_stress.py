"""Stress passes (``margin.stress``) on small books whose numbers are worked out by hand.

ETH 2,000 (volatility 50 %), USDC 1. Chains: ``eth`` (60 s to liquidate), ``arb`` (3,600 s).
Weighted book — WETH on either chain counts 0.8, USDC collateral 0.95, USDC debt 1.0:

| account | holds | owes | health now | after ETH −30 % (1,400) | shortfall | bad debt |
|---|---|---|---|---|---|---|
| A | 1 ETH (eth) | 1,000 | 1.6 | 1,120 / 1,000 = 1.12 | 0 | 0 |
| B | 1 ETH (eth) | 1,500 | 1.0667 | 1,120 / 1,500 | 380 | 100 |
| C | 2 ETH (eth) | 3,000 | 1.0667 | 2,240 / 3,000 | 760 | 200 |
| D | 1 ETH (eth) | 1,700 | 0.941 (already) | 1,120 / 1,700 | 580 | 300 |
| E | 1 ETH (eth) | — | ∞ | ∞ | 0 | 0 |
| G | 500 USDC, long 1 ETH perp @ 2,000 (mmr 5 %) | — | 4.75 | 475 − 600 < 0: 0 | 195 | 100 |
| J | 1 ETH (arb) | 1,570 | 1.0191 | 1,120 / 1,570 | 450 | 170 |

G after: U = −600, M = 70 (5 % of 1,400), so shortfall 70 − (475 − 600) = 195 and bad debt
600 − 500 = 100. Newly liquidatable, largest shortfall first: C 760, J 450, B 380, G 195
(D was already).
Total shortfall after: 2,365; bad debt after: 870.
"""

from __future__ import annotations

import math
import zlib
from decimal import Decimal

import numpy as np
import pytest

from core.domain import Role
from margin.engine import FULL_RECOMPUTE_FRACTION, MarginEngine
from margin.model import (
    ChainInput,
    EngineParams,
    MarginModel,
    Position,
    PriceInput,
    Tier,
    TokenRisk,
)
from margin.options import Right
from margin.stress import (
    GRID_MOVES,
    MAX_SHOCKS,
    Shocks,
    StressInputError,
    run_stress,
    shocked_prices,
    stress_grid,
)
from tests.margin.portfolio_kit import World, option
from tests.margin.portfolio_oracle import black_scholes

C, L = Role.COLLATERAL, Role.LIABILITY
ETH, USD = 10**18, 10**6
ARB_TIERS = (Tier(0.8, 2_000), Tier(0.5))
CHAINS = [
    ChainInput(name="eth", liquidation_latency_s=60),
    ChainInput(name="arb", liquidation_latency_s=3_600),
]
PRICES = [
    PriceInput(asset="ETH", price=2_000.0, volatility=0.5),
    PriceInput(asset="USDC", price=1.0, volatility=0.0),
]
ACCOUNTS = {name: "0x" + name.lower() * 40 for name in "ABCDEGJTU"}

A_OPT = "0x" + "a" * 40


def tokens(arb_tiers: tuple[Tier, ...] = ()) -> list[TokenRisk]:
    return [
        TokenRisk(chain="eth", token="weth", asset="ETH", role=C, weight=0.8, decimals=18),
        TokenRisk(
            chain="arb",
            token="weth",
            asset="ETH",
            role=C,
            weight=0.8,
            decimals=18,
            tiers=arb_tiers,
        ),
        TokenRisk(chain="eth", token="usdc", asset="USDC", role=C, weight=0.95, decimals=6),
        TokenRisk(chain="eth", token="dusdc", asset="USDC", role=L, weight=1.0, decimals=6),
    ]


def weighted_book() -> MarginEngine:
    engine = MarginEngine(tokens=tokens(), chains=CHAINS)
    engine.set_prices(PRICES)
    a = ACCOUNTS
    for name, eth, debt in (("A", 1, 1_000), ("B", 1, 1_500), ("C", 2, 3_000), ("D", 1, 1_700)):
        engine.set_balance(a[name], "eth", "weth", eth * ETH, 1)
        engine.set_balance(a[name], "eth", "dusdc", debt * USD, 1)
    engine.set_balance(a["E"], "eth", "weth", ETH, 1)
    engine.set_balance(a["G"], "eth", "usdc", 500 * USD, 1)
    engine.set_position(
        Position(
            account=a["G"],
            asset="ETH",
            chain="eth",
            size=1.0,
            entry_price=2_000.0,
            mmr_tiers=(Tier(0.05),),
        )
    )
    engine.set_balance(a["J"], "arb", "weth", ETH, 1)
    engine.set_balance(a["J"], "eth", "dusdc", 1_570 * USD, 1)
    engine.recompute_all()
    return engine


def tiered_book(model: MarginModel) -> MarginEngine:
    """T: 2 ETH on arb (tiers 0.8 to 2,000 USD, then 0.5), owes 2,000.
    U: 1 ETH on eth (flat 0.8) + 1 ETH on arb (tiered), owes 2,000."""
    engine = MarginEngine(tokens=tokens(ARB_TIERS), chains=CHAINS, params=EngineParams(model=model))
    engine.set_prices(PRICES)
    a = ACCOUNTS
    engine.set_balance(a["T"], "arb", "weth", 2 * ETH, 1)
    engine.set_balance(a["T"], "eth", "dusdc", 2_000 * USD, 1)
    engine.set_balance(a["U"], "eth", "weth", ETH, 1)
    engine.set_balance(a["U"], "arb", "weth", ETH, 1)
    engine.set_balance(a["U"], "eth", "dusdc", 2_000 * USD, 1)
    engine.recompute_all()
    return engine


def test_weighted_book_under_an_eth_crash() -> None:
    report = run_stress(weighted_book().snapshot(), Shocks(price={"ETH": -0.3}))
    assert report.accounts == 7
    assert report.liquidatable_before == 1  # D
    assert report.liquidatable_after == 5  # B, C, D, G, J
    assert report.newly_liquidatable_count == 4
    listed = [(s.account, s.shortfall_after) for s in report.newly_liquidatable]
    assert listed == [
        (ACCOUNTS["C"], Decimal("760.00")),
        (ACCOUNTS["J"], Decimal("450.00")),
        (ACCOUNTS["B"], Decimal("380.00")),
        (ACCOUNTS["G"], Decimal("195.00")),
    ]
    b = report.newly_liquidatable[2]
    assert b.health_before == pytest.approx(1_600 / 1_500, rel=1e-12)
    assert b.health_after == pytest.approx(1_120 / 1_500, rel=1e-12)
    assert report.newly_liquidatable[3].health_after == 0.0  # G: negative equity
    assert report.total_shortfall_after == Decimal("2365.00")
    assert report.bad_debt_after == Decimal("870.00")
    assert report.health_unknown == 0


def test_a_rise_liquidates_nobody_and_leaves_no_bad_debt() -> None:
    report = run_stress(weighted_book().snapshot(), Shocks(price={"ETH": 0.5}))
    # ETH 3,000: D holds 2,400 weighted against 1,700; G's long perp gains 1,000.
    assert (report.liquidatable_before, report.liquidatable_after) == (1, 0)
    assert report.newly_liquidatable == ()
    assert report.total_shortfall_after == Decimal("0.00")
    assert report.bad_debt_after == Decimal("0.00")


def test_a_volatility_shock_moves_latency_risk_only() -> None:
    """J's ETH sits on arb (3,600 s): shock = 2.33 · σ · sqrt(3,600 / 31,536,000).
    σ 0.5: 1.24 %, 1,600 · 0.9876 = 1,580.1 ≥ 1,570; σ doubled: 2.49 %, 1,560.2 < 1,570."""
    engine = weighted_book()
    report = run_stress(engine.snapshot(), Shocks(vol={"ETH": 1.0}))
    assert (report.latency_risk_before, report.latency_risk_after) == (0, 1)
    assert report.liquidatable_after == report.liquidatable_before == 1
    assert report.newly_liquidatable == ()
    assert report.total_shortfall_after == Decimal("100.00")  # D: 1,700 − 1,600, unchanged
    assert report.bad_debt_after == Decimal("0.00")
    shocked = shocked_prices(engine.snapshot().prices, Shocks(vol={"ETH": 1.0}))
    assert shocked["ETH"].volatility == 1.0
    assert shocked["ETH"].price == 2_000.0


def test_tiered_slices_the_shocked_value() -> None:
    """ETH −40 % (1,200). T: 2,400 → 2,000 · 0.8 + 400 · 0.5 = 1,800 against 2,000: short 200
    (weighted: 0.8 · 2,400 = 1,920, short 80). U: 960 flat + 960 tiered = 1,920: short 80
    under both. Nobody's collateral falls below the debt: no bad debt."""
    shocks = Shocks(price={"ETH": -0.4})
    tiered = run_stress(tiered_book(MarginModel.TIERED).snapshot(), shocks)
    weighted = run_stress(tiered_book(MarginModel.WEIGHTED).snapshot(), shocks)
    assert tiered.liquidatable_before == weighted.liquidatable_before == 0
    assert [(s.account, s.shortfall_after) for s in tiered.newly_liquidatable] == [
        (ACCOUNTS["T"], Decimal("200.00")),
        (ACCOUNTS["U"], Decimal("80.00")),
    ]
    assert tiered.newly_liquidatable[0].health_before == pytest.approx(2_600 / 2_000)
    assert tiered.newly_liquidatable[0].health_after == pytest.approx(0.9)
    assert tiered.total_shortfall_after == Decimal("280.00")
    assert weighted.total_shortfall_after == Decimal("160.00")
    assert tiered.bad_debt_after == weighted.bad_debt_after == Decimal("0.00")


def test_tiered_boundary_is_not_liquidatable() -> None:
    """ETH −30 %: T's 2,800 slices to 1,600 + 400 = 2,000 against 2,000: health exactly 1."""
    report = run_stress(tiered_book(MarginModel.TIERED).snapshot(), Shocks(price={"ETH": -0.3}))
    assert ACCOUNTS["T"] not in [s.account for s in report.newly_liquidatable]


def test_the_engine_is_left_alone() -> None:
    engine = weighted_book()
    results = {k: v.copy() for k, v in engine.results.columns().items()}
    snapshot = engine.snapshot()
    run_stress(snapshot, Shocks(price={"ETH": -0.9}))
    stress_grid(snapshot, "ETH")
    for name, column in engine.results.columns().items():
        np.testing.assert_array_equal(column, results[name])
    assert len(engine.dirty_accounts()) == 0
    assert engine.snapshot().prices["ETH"].price == 2_000.0


def test_a_snapshot_does_not_see_later_inputs() -> None:
    engine = weighted_book()
    snapshot = engine.snapshot()
    engine.set_balance(ACCOUNTS["A"], "eth", "dusdc", 5_000 * USD, 2)  # A under water
    engine.set_balance("0x" + "f" * 40, "eth", "weth", ETH, 2)  # a new account
    engine.set_position(
        Position(
            account=ACCOUNTS["G"],
            asset="ETH",
            chain="eth",
            size=100.0,
            entry_price=2_000.0,
            mmr_tiers=(Tier(0.05),),
        )
    )
    engine.recompute_all()
    report = run_stress(snapshot, Shocks(price={"ETH": -0.3}))
    assert report.accounts == 7
    assert report.total_shortfall_after == Decimal("2365.00")


def test_a_dirty_engine_is_valued_afresh() -> None:
    engine = weighted_book()
    engine.set_balance(ACCOUNTS["A"], "eth", "dusdc", 1_700 * USD, 2)  # not recomputed
    report = run_stress(engine.snapshot(), Shocks())
    assert report.liquidatable_before == report.liquidatable_after == 2  # A and D
    assert report.total_shortfall_after == Decimal("200.00")


def test_grid_points_match_single_stresses() -> None:
    snapshot = weighted_book().snapshot()
    report = stress_grid(snapshot, "ETH")
    assert (report.asset, report.accounts, report.liquidatable_before) == ("ETH", 7, 1)
    grid = report.points
    assert [p.move for p in grid] == list(GRID_MOVES)
    assert len(grid) == 21
    assert (grid[0].move, grid[10].move, grid[-1].move) == (-0.5, 0.0, 0.5)
    assert (grid[10].liquidatable, grid[10].newly_liquidatable) == (1, 0)
    crash = grid[4]  # −30 %
    assert crash.move == pytest.approx(-0.3)
    assert (crash.liquidatable, crash.newly_liquidatable) == (5, 4)
    assert (crash.total_shortfall, crash.bad_debt) == (Decimal("2365.00"), Decimal("870.00"))
    liquidatable = [p.liquidatable for p in grid]
    assert liquidatable == sorted(liquidatable, reverse=True)  # falls as ETH rises
    for point in grid:
        report = run_stress(snapshot, Shocks(price={"ETH": point.move}))
        assert report.liquidatable_after == point.liquidatable
        assert report.total_shortfall_after == point.total_shortfall
        assert report.bad_debt_after == point.bad_debt


def test_top_accounts_are_the_deepest_with_ties_by_index() -> None:
    engine = MarginEngine(tokens=tokens(), chains=CHAINS)
    engine.set_prices(PRICES)
    debts = [1_500, 1_500, 1_600, 1_550, 1_500]
    names = [f"0x{i:040x}" for i in range(len(debts))]
    for name, debt in zip(names, debts, strict=True):
        engine.set_balance(name, "eth", "weth", ETH, 1)
        engine.set_balance(name, "eth", "dusdc", debt * USD, 1)
    report = run_stress(engine.snapshot(), Shocks(price={"ETH": -0.3}), top=3)
    assert report.newly_liquidatable_count == 5
    assert [s.account for s in report.newly_liquidatable] == [names[2], names[3], names[0]]


@pytest.mark.parametrize(
    ("shocks", "field"),
    [
        ({"price": {"ETH": -1.0}}, "price_shocks.ETH"),
        ({"price": {"ETH": 10.5}}, "price_shocks.ETH"),
        ({"price": {"ETH": math.nan}}, "price_shocks.ETH"),
        ({"vol": {"ETH": math.inf}}, "vol_shocks.ETH"),
        ({"vol": {"USDC": -0.995}}, "vol_shocks.USDC"),
        ({"price": {f"A{i}": 0.1 for i in range(MAX_SHOCKS + 1)}}, "price_shocks"),
    ],
)
def test_bad_shocks_name_their_field(shocks: dict[str, dict[str, float]], field: str) -> None:
    with pytest.raises(StressInputError) as info:
        Shocks(**shocks)
    assert info.value.field == field


def test_unknown_asset_is_named_and_an_unpriced_one_moves_nothing() -> None:
    shocks = Shocks(price={"ETH": -0.1}, vol={"DOGE": 0.5})
    with pytest.raises(StressInputError) as info:
        shocks.check_assets({"ETH", "USDC"})
    assert info.value.field == "vol_shocks.DOGE"
    snapshot = weighted_book().snapshot()
    calm = run_stress(snapshot, Shocks())
    assert run_stress(snapshot, Shocks(price={"DOGE": -0.9})) == calm
    flat = stress_grid(snapshot, "DOGE").points
    assert {(p.liquidatable, p.total_shortfall) for p in flat} == {(1, Decimal("100.00"))}


def test_bounds_are_inclusive() -> None:
    report = run_stress(weighted_book().snapshot(), Shocks(price={"ETH": -0.99, "USDC": 10}))
    # ETH 20, USDC 11: every debtor is under water; G's 500 USDC are now worth 5,225
    # weighted, far more than its perp loses (1,980).
    assert report.liquidatable_after == 5
    assert ACCOUNTS["G"] not in [s.account for s in report.newly_liquidatable]


@pytest.mark.parametrize("model", list(MarginModel))
def test_a_fresh_pass_at_current_prices_is_the_engines_results(model: MarginModel) -> None:
    """``current()`` of a clean engine is its results; of a dirty one a fresh pass: the two
    must be the same numbers, or "before" would depend on the engine's timing."""
    engine = tiered_book(model)
    engine.set_position(
        Position(
            account=ACCOUNTS["T"],
            asset="ETH",
            chain="arb",
            size=-0.5,
            entry_price=1_900.0,
            mmr_tiers=(Tier(0.02, 1_000), Tier(0.05)),
        )
    )
    engine.recompute_all()
    snapshot = engine.snapshot()
    assert snapshot.current_table is not None
    fresh = snapshot.evaluate(snapshot.prices).table
    for name, column in snapshot.current_table.columns().items():
        np.testing.assert_array_equal(getattr(fresh, name), column, err_msg=name)


def random_book(model: MarginModel, seed: int, accounts: int = 300) -> MarginEngine:
    """Accounts with ETH on two chains, USDC and USDC debt; every fourth an ETH perp."""
    rng = np.random.default_rng(seed)
    engine = MarginEngine(tokens=tokens(ARB_TIERS), chains=CHAINS, params=EngineParams(model=model))
    engine.set_prices(PRICES)
    for i in range(accounts):
        account = f"0x{i:040x}"
        engine.set_balance(account, "eth", "weth", int(rng.uniform(0, 3) * ETH), 1)
        engine.set_balance(account, "arb", "weth", int(rng.uniform(0, 3) * ETH), 1)
        engine.set_balance(account, "eth", "usdc", int(rng.uniform(0, 2_000) * USD), 1)
        engine.set_balance(account, "eth", "dusdc", int(rng.uniform(0, 6_000) * USD), 1)
        if i % 4 == 0:
            engine.set_position(
                Position(
                    account=account,
                    asset="ETH",
                    chain="arb",
                    size=float(rng.uniform(-3, 3)),
                    entry_price=float(rng.uniform(1_500, 2_500)),
                    mmr_tiers=(Tier(0.05),),
                )
            )
    return engine


@pytest.mark.parametrize("model", list(MarginModel))
@pytest.mark.parametrize("shocks", [{"ETH": -0.37}, {"ETH": 0.21, "USDC": -0.05}, {"USDC": 2.5}])
def test_a_stress_is_what_the_engine_says_once_prices_move(
    model: MarginModel, shocks: dict[str, float]
) -> None:
    """On a random book: the stress pass equals the engine itself after ``set_prices`` at the
    shocked prices and a recompute — the pass is the live model, not a copy of it."""
    engine = random_book(model, zlib.crc32(repr((model.value, shocks)).encode()))
    engine.recompute_all()
    snapshot = engine.snapshot()
    report = run_stress(snapshot, Shocks(price=shocks), top=1_000)
    before = engine.results.health.copy()
    engine.set_prices(shocked_prices(snapshot.prices, Shocks(price=shocks)).values())
    after = engine.recompute_all()
    newly = np.flatnonzero((after.health < 1) & ~(before < 1))
    assert report.liquidatable_after == int(np.count_nonzero(after.health < 1))
    assert report.newly_liquidatable_count == len(newly)
    assert {s.account for s in report.newly_liquidatable} == {engine.accounts[i] for i in newly}
    assert report.total_shortfall_after == Decimal(int(after.shortfall.sum())) / 100
    bad = np.maximum(after.liability_value - (after.collateral_value + after.unrealized_pnl), 0.0)
    assert report.bad_debt_after == Decimal(int(bad.sum())) / 100
    assert report.liquidatable_after != report.liquidatable_before  # the shock does something


@pytest.mark.parametrize("model", list(MarginModel))
def test_a_few_dirty_accounts_are_revalued_alone(model: MarginModel) -> None:
    """A snapshot of an engine with a few dirty accounts carries the engine's results and the
    dirty accounts' rows: "before" re-values those alone (not a second full pass) and equals a
    full recompute bit for bit, even after the engine changes them again."""
    engine = random_book(model, 41)
    engine.recompute_all()
    engine.set_balance(f"0x{3:040x}", "eth", "dusdc", 30_000 * USD, 2)  # under water now
    engine.set_balance(f"0x{50:040x}", "arb", "weth", 0, 2)
    engine.set_position(
        Position(
            account=f"0x{297:040x}",
            asset="ETH",
            chain="eth",
            size=-2.0,
            entry_price=1_500.0,
            mmr_tiers=(Tier(0.05),),
        )
    )
    engine.set_balance("0x" + "e" * 40, "eth", "weth", ETH, 2)  # a new account
    dirty = engine.dirty_accounts()
    snapshot = engine.snapshot()
    assert snapshot.pending is not None
    np.testing.assert_array_equal(snapshot.pending.index, dirty)
    engine.set_balance(f"0x{3:040x}", "eth", "dusdc", 0, 3)  # after the snapshot: not seen
    before = snapshot.current().table
    fresh = snapshot.evaluate(snapshot.prices).table
    engine.set_balance(f"0x{3:040x}", "eth", "dusdc", 30_000 * USD, 4)  # back as snapshotted
    full = engine.recompute_all()
    assert len(before) == len(full) == 301
    for name, column in full.columns().items():
        np.testing.assert_array_equal(getattr(before, name), column, err_msg=name)
        np.testing.assert_array_equal(getattr(fresh, name), column, err_msg=name)
    assert before.health[engine.account_index(f"0x{3:040x}")] < 1  # the change counted


def test_many_dirty_accounts_are_valued_in_a_full_pass() -> None:
    """Above ``FULL_RECOMPUTE_FRACTION`` of dirty accounts the snapshot carries no results:
    "before" is a full pass, as ``recompute_dirty`` would do."""
    engine = random_book(MarginModel.PORTFOLIO, 43)
    engine.recompute_all()
    engine.set_prices([PriceInput(asset="ETH", price=1_900.0, volatility=0.6)])
    assert len(engine.dirty_accounts()) > FULL_RECOMPUTE_FRACTION * len(engine.accounts)
    snapshot = engine.snapshot()
    assert snapshot.current_table is None
    assert snapshot.pending is None
    before = snapshot.current().table
    for name, column in engine.recompute_all().columns().items():
        np.testing.assert_array_equal(getattr(before, name), column, err_msg=name)


def test_a_volatility_shock_revalues_written_options_in_the_stress() -> None:
    """A holds 100.00 of USDC and has written 2 calls (ETH, strike 2,100, 30 days, σ 0.6).
    ETH's vol +50 %: the 2 calls are worth C(σ 0.9) each to their buyer, so A's bad debt is
    −(100.00 + ⌊−2 · C(0.9)⌋ cents), not the smaller figure at σ 0.6."""
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A_OPT, "usdc", 100)
    world.options(A_OPT, [option(A_OPT, size=-2, right=Right.CALL, strike=2100)])
    tau = 30 / 365
    owed = [
        -(10_000 + math.floor(-2 * black_scholes("call", 2000, 2100, v, tau) * 100))
        for v in (0.6, 0.9)
    ]
    assert owed[0] > 0  # already short at σ 0.6, more so at 0.9
    calm = run_stress(world.engine.snapshot(), Shocks())
    shocked = run_stress(world.engine.snapshot(), Shocks(vol={"ETH": 0.5}))
    assert calm.bad_debt_after == Decimal(owed[0]) / 100
    assert shocked.bad_debt_after == Decimal(owed[1]) / 100
