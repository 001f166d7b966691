"""The option book's and the portfolio kernel's edges (``margin.option_book``,
``margin.portfolio_kernel``, ``margin.portfolio``), against the independent oracle
(``tests/margin/portfolio_oracle.py``) or numbers worked out in the comments.

Each case was added for mutants that survived the fourth mutation pass (bench/RESULTS.md,
"Fourth pass"): the clock a book starts with, a correlation set to the value it already had
by default, closed option lines and perps on a stale chain, which accounts a chain or price
change touches when some hold options, a written call under ``weighted``, an unpriced perp,
the latency equity, VaR per account of a batch and without a horizon or a delta, the sparse
contract numbering, latency and extreme moves beyond −100 %, a second scan chunk of
three-line pairs, horizons of zero balances and of 256 chains.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.domain import Role
from margin.engine import MarginEngine
from margin.model import ChainInput, EngineParams, Flag, MarginModel, PriceInput, TokenRisk
from margin.options import OptionPosition, Right
from margin.scenarios import PortfolioParams, RiskGroup
from margin.tiers import IndexArray
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import CHAINS, World, eth_usd_groups, option

A = "0x" + "a" * 40
B = "0x" + "b" * 40
C = "0x" + "c" * 40
YEAR = 31_536_000.0


def test_a_book_without_a_clock_values_options_at_time_zero() -> None:
    # No `now` given: options are valued at t = 0. A call at the money expiring at t = 1 s
    # is then still alive: BS(2000, 2000, σ 1, τ 1 s) = 2000 · (2Φ(√τ / 2) − 1) = 0.14208 USD,
    # 14.20 for 100 (rounded down to a cent). A clock at 1 s would value it expired: 0.
    engine = MarginEngine(
        tokens=[
            TokenRisk(
                chain="main",
                token="usdc",
                asset="USDC",
                role=Role.COLLATERAL,
                weight=1.0,
                decimals=6,
            ),
        ],
        chains=[ChainInput(name="main", liquidation_latency_s=60.0)],
        params=EngineParams(model=MarginModel.PORTFOLIO),
        portfolio=PortfolioParams(),
    )
    assert engine.now == 0.0
    engine.set_prices([PriceInput(asset="ETH", price=2000.0, volatility=0.0)])
    engine.set_options(
        A,
        [
            OptionPosition(
                account=A,
                asset="ETH",
                chain="main",
                size=100.0,
                right=Right.CALL,
                strike=2000.0,
                expiry=1,
                implied_vol=1.0,
            ),
        ],
    )
    want = 100 * oracle.black_scholes("call", 2000.0, 2000.0, 1.0, 1 / YEAR)
    assert want == pytest.approx(14.208, abs=5e-4)
    assert float(engine.account_risk(A).options_value) == pytest.approx(14.20, abs=1e-9)


def test_setting_a_pair_to_the_default_correlation_it_already_has_changes_nothing() -> None:
    # ETH/BTC is not listed: its ρ is the default (1.0). Setting it to 1.0 moves nothing.
    world = World(params=eth_usd_groups(correlations=(("ETH", "USD", 0.2),)))
    world.hold(A, "eth-main", 20_000)
    world.hold(A, "btc", 8_000)
    world.engine.recompute_all()
    before = world.engine.portfolio
    assert len(world.engine.set_correlations({("ETH", "BTC"): 1.0})) == 0
    assert world.engine.portfolio == before
    assert len(world.engine.dirty_accounts()) == 0


@pytest.mark.parametrize("model", [MarginModel.PORTFOLIO, MarginModel.WEIGHTED])
def test_only_open_option_lines_carry_their_chains_flags(model: MarginModel) -> None:
    # A closed its option on arb (its row stays, at size 0); B still holds one (of size 1:
    # any size but 0 is exposure). Both hold USDC on main only. arb goes stale: B is
    # flagged, A is not (no exposure there).
    world = World(model=model)
    for account in (A, B):
        world.hold(account, "usdc", 10_000)
        world.options(account, [option(account, size=1, chain="arb")])
    world.options(A, [])
    world.engine.set_chain_status(
        [ChainInput(name="arb", liquidation_latency_s=CHAINS["arb"], stale=True)]
    )
    world.engine.recompute_all()
    assert world.engine.account_health(A).flags & Flag.STALE_CHAIN == Flag.NONE
    assert world.engine.account_health(B).flags & Flag.STALE_CHAIN == Flag.STALE_CHAIN


def test_a_chain_or_price_change_touches_the_option_holders_too() -> None:
    # A: ETH held on arb (no option). B: a call on ETH settled on arb, USDC on main.
    # C: a put on BTC on slow, USDC on main. Each change must mark exactly its accounts.
    world = World()
    world.hold(A, "eth-arb", 20_000)
    world.hold(B, "usdc", 10_000)
    world.options(B, [option(B, size=1, chain="arb")])
    world.hold(C, "usdc", 10_000)
    world.options(
        C, [option(C, size=-1, right=Right.PUT, strike=38_000, asset="BTC", chain="slow")]
    )
    world.engine.recompute_all()

    def marked(found: IndexArray) -> set[str]:
        return {world.engine.accounts[i] for i in found.tolist()}

    stale = ChainInput(name="arb", liquidation_latency_s=CHAINS["arb"], stale=True)
    assert marked(world.engine.set_chain_status([stale])) == {A, B}
    world.engine.recompute_dirty()
    slow = ChainInput(name="slow", liquidation_latency_s=7_200.0)
    assert marked(world.engine.set_chain_status([slow])) == {C}
    world.engine.recompute_dirty()
    assert marked(world.engine.set_prices([PriceInput(asset="BTC", price=41_000.0)])) == {C}
    world.engine.recompute_dirty()
    assert marked(world.engine.set_prices([PriceInput(asset="ETH", price=2_010.0)])) == {A, B}


def test_a_written_call_is_charged_its_value_after_a_rise_under_the_weighted_model() -> None:
    # weighted: a written call is charged its value after ETH's base range (15 %) up:
    # BS(call, 2,300, 2,200, σ 0.5, 60 days) = 235.99… (a put there, 135.99…, would be
    # charged instead if the right were lost: the call is 100 in the money).
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.options(A, [option(A, size=-1, right=Right.CALL, strike=2200, days=60, vol=0.5)])
    tau = 60 * 86_400 / YEAR
    charge = oracle.black_scholes("call", 2300, 2200, 0.5, tau)
    assert charge - oracle.black_scholes("put", 2300, 2200, 0.5, tau) == pytest.approx(100)
    health = world.engine.account_health(A)
    assert float(health.maintenance) == pytest.approx(math.ceil(charge * 100) / 100, abs=1e-9)


def test_perps_flag_their_accounts_and_an_unpriced_one_counts_nothing() -> None:
    # Under the portfolio model. ON_ARB: a 1 ETH perp settled on arb, which goes stale.
    # CLOSED: its ETH perp on arb closed (size 0). UNPRICED: a perp on SOL, which has no price:
    # its PnL counts 0 (not a cent) and its account is flagged STALE_PRICE; both the asset's
    # and the chain's flags reach the account.
    on_arb, closed, unpriced = A, B, C
    world = World()
    for account in (on_arb, closed, unpriced):
        world.hold(account, "usdc", 10_000)
    world.perp(on_arb, "ETH", "arb", 1, 1900)
    world.perp(closed, "ETH", "arb", 0, 1900)
    world.perp(unpriced, "SOL", "main", 10, 150)
    world.engine.set_chain_status(
        [ChainInput(name="arb", liquidation_latency_s=CHAINS["arb"], stale=True)]
    )
    world.engine.recompute_all()
    flags = {a: world.engine.account_health(a).flags for a in (on_arb, closed, unpriced)}
    assert flags[on_arb] & Flag.STALE_CHAIN == Flag.STALE_CHAIN
    assert flags[closed] & (Flag.STALE_CHAIN | Flag.STALE_PRICE) == Flag.NONE
    assert flags[unpriced] & (Flag.STALE_CHAIN | Flag.STALE_PRICE) == Flag.STALE_PRICE
    assert world.engine.account_health(unpriced).unrealized_pnl == 0
    assert world.engine.account_health(on_arb).unrealized_pnl == 100  # 1 · (2,000 − 1,900)
    risk = world.engine.account_risk(unpriced)
    assert "SOL" not in risk.groups  # no exposure, no loss: not even a value unit's worth


def test_the_latency_equity_counts_perps_and_options_as_worth() -> None:
    # health_latency = max(0, C + U + O − M_lat) / (L + M): a perp's gain and an option's
    # value add to the equity, as the oracle has it (DESIGN §3).
    world = World(volatility={"ETH": 0.8})
    world.hold(A, "usdc", 10_000)
    world.hold(A, "usdc-debt", 4_000)
    world.perp(A, "ETH", "slow", 2, 1900)  # U = 200
    world.options(A, [option(A, size=3, right=Right.PUT, strike=1900, chain="slow")])
    health = world.engine.account_health(A)
    want = world.expected(A)
    assert want.pnl + want.options_value > 300
    assert health.health_latency == pytest.approx(want.health_latency, rel=1e-5)
    assert health.health == pytest.approx(want.health, rel=1e-5)


def test_each_account_of_a_batch_has_var_over_its_own_horizon() -> None:
    # Breakdowns of several accounts come from one vectorised pass: A's VaR is over its own
    # horizon (ETH on "fast", 10 s), not over B's (ETH on "slow", an hour), as the oracle
    # computes it for A alone.
    world = World(volatility={"ETH": 0.8})
    world.hold(A, "eth-fast", 20_000)
    world.hold(B, "eth-slow", 20_000)
    a, b = world.engine.account_healths([A, B])
    for got, account in ((a, A), (b, B)):
        want = world.expected(account).var_99
        assert got.risk is not None
        assert got.risk.var_99 == pytest.approx(want, rel=1e-6)
    assert a.risk is not None
    assert b.risk is not None
    assert b.risk.var_99 > 10 * a.risk.var_99  # √(3,600 / 10) = 19


def test_var_is_zero_without_a_horizon_or_without_a_net_delta() -> None:
    # A: 20,000 of ETH on a chain liquidated at once (latency 0): no horizon, VaR 0 (not
    # over one second: 2.3263 · 20,000 · 0.8 · √(1 s / year) = 6.63). B: 20,000 of ETH on
    # "slow" hedged by a 10 ETH perp short: net delta 0, VaR 0 (not 2.3263 · √(1 h / year)).
    world = World(volatility={"ETH": 0.8})
    world.engine.set_chain_status([ChainInput(name="fast", liquidation_latency_s=0.0)])
    world.hold(A, "eth-fast", 20_000)
    world.hold(B, "eth-slow", 20_000)
    world.perp(B, "ETH", "slow", -10, 2000)
    for account in (A, B):
        assert world.engine.account_risk(account).var_99 == pytest.approx(0.0, abs=1e-12)
    world.engine.set_chain_status([ChainInput(name="fast", liquidation_latency_s=1.0)])
    one_second = 2.3263 * 20_000 * 0.8 * math.sqrt(1 / YEAR)
    assert world.engine.account_risk(A).var_99 == pytest.approx(one_second, rel=1e-6)


def test_an_account_holding_a_late_contract_of_a_large_book_is_valued_alone() -> None:
    # A holds 4,200 distinct contracts, so B's two lines get contract ids 4,200 and 4,201:
    # valuing B alone numbers two rows against ids up to 4,201 (the sparse path of the
    # contract numbering). B's figures are the oracle's all the same.
    world = World(volatility={"ETH": 0.7})
    world.hold(A, "usdc", 1_000_000)
    world.options(A, [option(A, size=1, strike=1000 + 0.5 * i) for i in range(4_200)])
    world.hold(B, "usdc", 10_000)
    world.options(
        B,
        [
            option(B, size=-2, right=Right.CALL, strike=2_150, days=45),
            option(B, size=3, right=Right.PUT, strike=1_850, days=20),
        ],
    )
    health, risk, want = (
        world.engine.account_health(B),
        world.engine.account_risk(B),
        world.expected(B),
    )
    assert float(risk.options_value) == pytest.approx(want.options_value, abs=0.02)
    assert float(health.maintenance) == pytest.approx(want.maintenance, abs=0.03)
    assert risk.groups["ETH"].loss_latency == pytest.approx(want.loss_latency["ETH"], abs=0.03)


def test_a_latency_shock_beyond_100_percent_loses_a_linear_holding_once() -> None:
    # "slow" liquidates a year after the fact: shock = 2.33 · 0.8 · √1 = 1.864 > 100 %.
    # A price stops at 0, so 20,000 of ETH (no options) loses at most 20,000 (not 37,280).
    world = World(volatility={"ETH": 0.8})
    world.engine.set_chain_status([ChainInput(name="slow", liquidation_latency_s=YEAR)])
    world.hold(A, "eth-slow", 20_000)
    eth = world.engine.account_risk(A).groups["ETH"]
    assert eth.loss_latency == pytest.approx(20_000, abs=0.01)


def test_a_second_scan_chunk_of_three_line_pairs_is_summed_per_pair() -> None:
    # 2,048 accounts with one option line, then 2,048 with three: the full pass scans two
    # chunks of 2,048 pairs (one-line pairs first), the second holding 6,144 lines. Each
    # account's M is the one it has when valued alone (a slice of one account).
    world = World(volatility={"ETH": 0.7})
    accounts = [f"0x{i:040x}" for i in range(4_096)]
    for i, account in enumerate(accounts):
        world.engine.set_balance(account, "main", "usdc", 10_000 * 10**6, 1)
        sizes = [-1.0] if i < 2_048 else [-1.0, 2.0, -3.0]
        lines = [option(account, size=s, strike=1_900 + 100 * k) for k, s in enumerate(sizes)]
        world.engine.set_options(account, lines)
    full = world.engine.recompute_all().maintenance.copy()
    picked = np.array([0, 2_047, 2_048, 3_000, 4_095])
    world.engine.recompute(picked)
    assert np.array_equal(world.engine.results.maintenance[picked], full[picked])
    assert full[2_048] > full[0] > 0


def test_a_group_of_zero_balances_has_no_horizon_and_is_not_reported() -> None:
    # A zero ETH balance on "slow" is no exposure: no horizon (0 s, not 1 s), so the ETH
    # group has nothing to report; USD (1,000 on main) does.
    world = World()
    world.hold(A, "eth-slow", 0)
    world.hold(A, "usdc", 1_000)
    groups = world.engine.account_risk(A).groups
    assert set(groups) == {"USD"}
    assert groups["USD"].horizon_s == 60


def test_an_extreme_move_beyond_minus_100_percent_stops_at_a_price_of_zero() -> None:
    # ETH's range 0.4 with extremes at 3 · 0.4 = 120 % weighted fully: the fall stops at
    # −100 %, so 20,000 of ETH loses 20,000 (not 24,000), as the oracle has it.
    params = eth_usd_groups(
        groups=(
            RiskGroup(name="ETH", assets=("ETH", "stETH"), scan_range=0.4),
            RiskGroup(name="USD", assets=("USDC",), scan_range=0.03),
        ),
        extreme_multiple=3.0,
        extreme_weight=1.0,
    )
    world = World(params=params)
    world.hold(A, "eth-main", 20_000)
    assert world.expected(A).loss["ETH"] == pytest.approx(20_000)
    assert world.engine.account_risk(A).groups["ETH"].loss == pytest.approx(20_000, abs=0.01)


def test_the_slowest_of_256_chains_sets_the_horizon() -> None:
    # Chain k liquidates after 10 · (k + 1) s; ETH held on the last (2,560 s), the slowest
    # of 256 (more chains than a byte of horizon levels holds).
    chains = [ChainInput(name=f"c{k}", liquidation_latency_s=10.0 * (k + 1)) for k in range(256)]
    engine = MarginEngine(
        tokens=[
            TokenRisk(
                chain="c255",
                token="eth",
                asset="ETH",
                role=Role.COLLATERAL,
                weight=0.8,
                decimals=6,
            )
        ],
        chains=chains,
        params=EngineParams(model=MarginModel.PORTFOLIO),
        portfolio=PortfolioParams(),
    )
    engine.set_prices([PriceInput(asset="ETH", price=2000.0, volatility=0.5)])
    engine.set_balance(A, "c255", "eth", 10 * 10**6, 1)
    eth = engine.account_risk(A).groups["ETH"]
    assert eth.horizon_s == 2_560
    shock = 2.33 * 0.5 * math.sqrt(2_560 / YEAR)
    assert eth.loss_latency == pytest.approx(20_000 * shock, rel=1e-9)


def test_options_count_alike_now_and_after_a_latency_shock_of_zero() -> None:
    # No volatility: the latency shock is 0, so the health after it equals the health now, the
    # options' value (2 long calls, 3 written puts: U ≠ 0) and charge (M > 0) included in both.
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.hold(A, "usdc-debt", 5_000)
    world.options(
        A,
        [
            option(A, size=2, right=Right.CALL, strike=2100),
            option(A, size=-3, right=Right.PUT, strike=1900),
        ],
    )
    table = world.engine.recompute_all()
    assert table.unrealized_pnl[0] != 0
    assert table.maintenance[0] > 0
    assert math.isfinite(table.health[0])
    assert table.health_latency[0] == table.health[0]
