"""Option lines in the engine's book and the portfolio scan's edges, against the independent
oracle (``tests/margin/portfolio_oracle.py``) or numbers worked out in the comments.

Each case was added for a mutant that survived ``make mutate`` (bench/RESULTS.md, mutation
section): re-posting an account's options (shrinking, growing, reordering, closing them all),
an option on an asset new to the book, the clock, a latency move beyond −100 %, the unit P&L
cache shared by accounts on chains of different latency, and options that cannot lose.
"""

from __future__ import annotations

import math

import pytest

from margin import portfolio
from margin.latency import YEAR_S
from margin.model import ChainInput, Flag, MarginInputError, MarginModel, PriceInput
from margin.options import Right
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import CHAINS, World, eth_usd_groups, option

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40
CENT = 0.01


def _matches_oracle(world: World, account: str) -> None:
    """Value, options' value, M, M_lat and health as the oracle says (within the cents of
    rounding: one per line and one for M)."""
    book = world.book(account)
    lines = len(book.holdings) + len(book.perps) + len(book.options)
    slack = CENT * (2 + 2 * lines)
    health = world.engine.account_health(account)
    risk = world.engine.account_risk(account)
    want = world.expected(account)
    assert float(risk.options_value) == pytest.approx(want.options_value, abs=slack)
    assert float(health.unrealized_pnl) == pytest.approx(want.pnl + want.options_value, abs=slack)
    assert float(health.maintenance) == pytest.approx(want.maintenance, abs=slack)
    for group, loss in want.loss_latency.items():
        got = risk.groups[group].loss_latency if group in risk.groups else 0.0
        assert got == pytest.approx(loss, abs=slack), group
    if math.isfinite(want.health):
        assert health.health == pytest.approx(want.health, rel=1e-4)


def test_reposting_options_replaces_the_whole_set_in_the_order_posted() -> None:
    world = World(volatility={"ETH": 0.7, "BTC": 0.5})
    world.hold(A, "usdc", 50_000)
    world.hold(A, "usdc-debt", 10_000)
    three = [
        option(A, size=-4, right=Right.CALL, strike=2200),
        option(A, size=2, right=Right.PUT, strike=38_000, asset="BTC", chain="arb"),
        option(A, size=-3, right=Right.PUT, strike=1800, days=7),
    ]
    world.options(A, three)
    assert world.engine.options_of(A) == three
    _matches_oracle(world, A)
    # shrink by two: the two lines left over are closed, not kept (nor kept at size 1)
    one = [option(A, size=-5, right=Right.PUT, strike=1900, days=60)]
    world.options(A, one)
    assert world.engine.options_of(A) == one
    _matches_oracle(world, A)
    # grow again, in an order different from the rows' order
    two = [
        option(A, size=1, right=Right.CALL, strike=2500, asset="BTC", chain="slow"),
        option(A, size=-2, right=Right.CALL, strike=2100, chain="fast"),
    ]
    world.options(A, two)
    assert world.engine.options_of(A) == two
    _matches_oracle(world, A)
    world.options(A, [])
    assert world.engine.options_of(A) == []
    assert world.engine.account_risk(A).options_value == 0
    _matches_oracle(world, A)


def test_reposting_the_same_options_leaves_the_account_clean() -> None:
    world = World()
    world.hold(A, "usdc", 10_000)
    world.options(A, [option(A, size=-1), option(A, size=2, right=Right.PUT)])
    world.engine.recompute_dirty()
    assert world.engine.dirty_accounts().tolist() == []
    # equal lines, new objects: nothing changed, nothing to recompute
    world.engine.set_options(A, [option(A, size=-1), option(A, size=2, right=Right.PUT)])
    assert world.engine.dirty_accounts().tolist() == []
    world.engine.set_options(A, [option(A, size=-1)])
    assert world.engine.dirty_accounts().tolist() == [world.engine.account_index(A)]


def test_an_option_on_an_asset_new_to_the_book_is_flagged_until_priced() -> None:
    # SOL: no token, no position, no price. Its option line counts for nothing while SOL
    # has no price (and flags the account); once priced it is valued like any other.
    world = World()
    world.hold(A, "usdc", 10_000)
    world.hold(A, "usdc-debt", 1_000)
    line = option(A, size=-10, right=Right.PUT, strike=100, asset="SOL")
    world.engine.set_options(A, [line])
    health = world.engine.account_health(A)
    assert health.flags & Flag.STALE_PRICE
    assert world.engine.account_risk(A).options_value == 0
    world.prices["SOL"] = 95.0
    world.engine.set_prices([PriceInput(asset="SOL", price=95.0, volatility=0.0)])
    world.options(A, [line])
    assert not world.engine.account_health(A).flags & Flag.STALE_PRICE
    _matches_oracle(world, A)
    # −10 × put(95, 100, 60 %, 30 days): written, so a negative value
    tau = 30 * 86_400 / YEAR_S
    value = -10 * oracle.black_scholes("put", 95.0, 100.0, 0.6, tau)
    assert float(world.engine.account_risk(A).options_value) == pytest.approx(value, abs=CENT)


def test_an_option_of_another_account_is_refused_by_name() -> None:
    world = World()
    with pytest.raises(MarginInputError, match=f"set_options: an option of {B}"):
        world.engine.set_options(A, [option(B, size=1)])


def test_the_clock_revalues_options_and_marks_only_their_holders() -> None:
    world = World()
    world.hold(A, "usdc", 10_000)
    world.options(A, [option(A, size=1, right=Right.CALL, strike=2100)])  # size exactly 1
    world.hold(B, "usdc", 10_000)  # no options
    world.hold(C, "usdc", 10_000)
    world.options(C, [option(C, size=-2)])
    world.options(C, [])  # closed: its row stays, at size 0
    world.engine.recompute_dirty()
    later = world.now + 10 * 86_400
    marked = world.engine.set_clock(later)
    assert marked.tolist() == [world.engine.account_index(A)]
    assert world.engine.now == later
    assert world.engine.set_clock(later).tolist() == []  # the same time again: nothing
    world.now = later  # the oracle values at the new time: 20 days left
    world.engine.recompute_dirty()
    _matches_oracle(world, A)
    tau = 20 * 86_400 / YEAR_S
    value = oracle.black_scholes("call", 2000.0, 2100.0, 0.6, tau)
    assert float(world.engine.account_risk(A).options_value) == pytest.approx(value, abs=CENT)


def test_a_latency_move_beyond_minus_100_percent_stops_at_a_price_of_zero() -> None:
    # A chain a year from liquidation at σ = 150 %: shock = 2.33 · 1.5 · √1 ≈ 3.5, so the
    # latency grid's lowest moves are below −100 %: the price stops at 0. 10,000 USD of ETH on
    # that chain and a put on ETH: M_lat's ETH loss is at most the 10,000 of ETH (less the
    # put's gain), never 2 × 10,000.
    world = World(volatility={"ETH": 1.5})
    world.engine.set_chain_status([ChainInput(name="slow", liquidation_latency_s=YEAR_S)])
    world.hold(A, "eth-slow", 10_000)
    world.hold(A, "usdc-debt", 1_000)
    world.options(A, [option(A, size=1, right=Right.PUT, strike=1500, chain="slow")])
    setup = world.setup()
    setup.latency = {**CHAINS, "slow": YEAR_S}
    want = oracle.evaluate(setup, world.book(A))
    got = world.engine.account_risk(A).groups["ETH"]
    assert got.horizon_s == YEAR_S
    # at a price of 0: −10,000 of ETH, +1,500 − value now of the put
    assert want.loss_latency["ETH"] < 10_000
    assert got.loss_latency == pytest.approx(want.loss_latency["ETH"], abs=4 * CENT)


def test_accounts_sharing_a_contract_on_chains_of_different_latency() -> None:
    """One contract, two latency horizons: each account's latency loss uses its own shock,
    also when it is evaluated alone after both were (the unit P&L cache)."""
    world = World(volatility={"ETH": 0.8})
    for account, chain in ((A, "fast"), (B, "slow")):
        world.hold(account, "usdc", 20_000)
        world.options(account, [option(account, size=-5, right=Right.PUT, chain=chain)])
    world.engine.recompute_all()
    for account in (A, B, A):
        _matches_oracle(world, account)
    fast = world.engine.account_risk(A).groups["ETH"].loss_latency
    slow = world.engine.account_risk(B).groups["ETH"].loss_latency
    assert 0 < fast < slow


def test_options_that_cannot_lose_add_no_margin() -> None:
    # An expired call out of the money (worth 0) loses nothing in any scenario: its group's
    # loss and latency loss are exactly 0, not a cent.
    world = World(volatility={"ETH": 0.8})
    world.hold(A, "usdc", 10_000)
    world.hold(A, "usdc-debt", 1_000)
    world.options(A, [option(A, size=3, strike=5000, days=-1)])
    eth = world.engine.account_risk(A).groups["ETH"]
    assert (eth.loss, eth.loss_latency) == (0.0, 0.0)
    # M is the USD group's alone: 3 % of the 10,000 − 1,000 net USDC
    assert float(world.engine.account_health(A).maintenance) == pytest.approx(270.0)


def test_each_option_lines_pnl_is_rounded_to_whole_value_units() -> None:
    """``_scan_options`` rounds each line's scenario P&L to a cent before summing (exact sums
    in any order): with no linear exposure in the group, its loss is a whole number of cents."""
    world = World(params=eth_usd_groups(extreme_weight=0.0), volatility={"ETH": 0.8})
    world.hold(A, "usdc", 100_000)
    lines = [
        option(A, size=-1.37, strike=2113.0, days=13),
        option(A, size=0.71, right=Right.PUT, strike=1931.0, days=41, vol=0.77),
        option(A, size=-2.09, right=Right.PUT, strike=1777.0, days=3, vol=1.1),
    ]
    world.options(A, lines)
    eth = world.engine.account_risk(A).groups["ETH"]
    assert eth.loss > 0
    for loss in (eth.loss, eth.loss_latency):
        cents = loss * 100
        assert cents == pytest.approx(round(cents), abs=1e-6), loss


def test_more_contracts_than_the_cache_holds_are_valued_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beyond ``CACHED_CONTRACTS`` distinct contracts unit P&Ls are computed without the
    cache: the same numbers either way."""
    world = World(volatility={"ETH": 0.8, "BTC": 0.6})
    world.hold(A, "usdc", 100_000)
    world.options(
        A,
        [
            option(A, size=-1, strike=2000 + 50 * i, days=5 + 7 * i, chain=chain)
            for i, chain in enumerate(CHAINS)
        ],
    )
    cached = world.engine.account_risk(A)
    monkeypatch.setattr(portfolio, "CACHED_CONTRACTS", 2)
    world.engine.set_prices([PriceInput(asset="ETH", price=2000.0, volatility=0.81)])
    world.engine.set_prices([PriceInput(asset="ETH", price=2000.0, volatility=0.8)])  # fresh
    uncached = world.engine.account_risk(A)
    assert uncached == cached
    _matches_oracle(world, A)


def test_the_risk_documents_dollar_gamma_and_vega_per_group() -> None:
    """gamma: change of dollar delta for a 1 % move, Σ size · Γ · S² · 1 %; vega: per vol
    point, Σ size · ∂V/∂σ · 1 % (Γ and ∂V/∂σ by central differences of the oracle's value)."""
    world = World(volatility={"ETH": 0.7})
    world.hold(A, "usdc", 50_000)
    lines = [
        option(A, size=-4, strike=2200, days=20, vol=0.65),
        option(A, size=3, right=Right.PUT, strike=1850, days=45, vol=0.8),
    ]
    world.options(A, lines)
    gamma = vega = 0.0
    spot, h, k = 2000.0, 0.2, 1e-5
    for line in lines:
        right, strike, vol = line.right.value, line.strike, line.implied_vol
        tau = (line.expiry - world.now) / YEAR_S
        up, mid, down = (oracle.black_scholes(right, s, strike, vol, tau) for s in
                         (spot + h, spot, spot - h))  # fmt: skip
        gamma += line.size * (up - 2 * mid + down) / (h * h) * spot * spot * 0.01
        more, less = (oracle.black_scholes(right, spot, strike, v, tau) for v in
                      (vol + k, vol - k))  # fmt: skip
        vega += line.size * (more - less) / (2 * k) * 0.01
    eth = world.engine.account_risk(A).groups["ETH"]
    assert eth.gamma == pytest.approx(gamma, rel=1e-4)
    assert eth.vega == pytest.approx(vega, rel=1e-5)


def test_options_under_the_weighted_model_count_at_market_value() -> None:
    """``weighted``: each option line adds its market value (rounded down to a cent) to U, and
    a written one its value after an adverse move of its group's base scan range (ETH: 15 %;
    calls up, puts down), rounded up, to M."""
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.hold(A, "usdc-debt", 2_000)
    world.options(
        A,
        [
            option(A, size=2, right=Right.CALL, strike=2100),
            option(A, size=-3, right=Right.PUT, strike=1900),
            option(A, size=-1, right=Right.CALL, strike=2300, days=60, vol=0.5),
        ],
    )
    tau30, tau60 = 30 * 86_400 / YEAR_S, 60 * 86_400 / YEAR_S
    bs = oracle.black_scholes
    values = [
        2 * bs("call", 2000, 2100, 0.6, tau30),
        -3 * bs("put", 2000, 1900, 0.6, tau30),
        -1 * bs("call", 2000, 2300, 0.5, tau60),
    ]
    charges = [3 * bs("put", 1700, 1900, 0.6, tau30), 1 * bs("call", 2300, 2300, 0.5, tau60)]
    health = world.engine.account_health(A)
    assert float(health.unrealized_pnl) == pytest.approx(
        sum(math.floor(v * 100) for v in values) / 100, abs=1e-9
    )
    assert float(health.maintenance) == pytest.approx(
        sum(math.ceil(c * 100) for c in charges) / 100, abs=1e-9
    )
    assert health.weighted_collateral == 8_000
    assert world.engine.account_risk(A).model is MarginModel.WEIGHTED
    under_portfolio = World()
    under_portfolio.hold(A, "usdc", 10_000)
    assert under_portfolio.engine.account_risk(A).model is MarginModel.PORTFOLIO


def test_a_group_with_a_loss_but_no_delta_horizon_or_vega_is_reported() -> None:
    # On a chain liquidated at once (latency 0, so no horizon): a written call that expired
    # 100 in the money (delta −1, vega 0) hedged by a 1 ETH perp long (delta +1): net delta 0.
    # Down 15 %: the perp loses 300, the call's debt shrinks from 100 to 0: a loss of 200.
    world = World()
    world.engine.set_chain_status([ChainInput(name="main", liquidation_latency_s=0.0)])
    world.hold(A, "usdc", 10_000)
    world.perp(A, "ETH", "main", 1, 2000)
    world.options(A, [option(A, size=-1, strike=1900, days=-1, chain="main")])
    eth = world.engine.account_risk(A).groups["ETH"]
    assert (eth.delta, eth.vega, eth.horizon_s) == (0.0, 0.0, 0.0)
    assert eth.loss == pytest.approx(200.0)


def test_many_accounts_valued_at_once_equal_each_valued_alone() -> None:
    """``account_healths`` (one vectorised pass for the breakdowns of a market-wide move)
    gives each account exactly what ``account_health`` gives it alone: rows taken in sorted
    order are handed back in the order asked, a repeat included, a dirty account recomputed."""
    world = World(volatility={"ETH": 0.7, "BTC": 0.5})
    for account, scale in ((A, 1), (B, 3), (C, 7)):
        world.hold(account, "usdc", 20_000 * scale)
        world.hold(account, "usdc-debt", 4_000 * scale)
        world.options(
            account,
            [
                option(account, size=-scale, right=Right.CALL, strike=2000 + 100 * scale),
                option(account, size=scale, right=Right.PUT, strike=30_000, asset="BTC"),
            ],
        )
    world.engine.recompute_all()
    world.hold(B, "usdc-debt", 50_000)  # B is dirty when asked
    asked = [C, A, B, C]
    batch = world.engine.account_healths(asked)
    alone = [world.engine.account_health(a) for a in asked]
    assert [h.account for h in batch] == asked
    assert batch == alone
    assert [h.risk for h in batch] == [world.engine.account_risk(a) for a in asked]
    assert batch[2].liability_value > batch[0].liability_value  # B's 50,000 > C's 28,000
    assert world.engine.account_healths([]) == []
