"""The daemon's use of venue entries, as tables: engine holdings of the unified account,
engine tokens added at run time, ORACLE_DRIFT on holders only, and the venue ranking."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from core.domain import Role
from daemon.venue_book import engine_feed, shortfall_usd, token_asset, venue_rank, venue_token
from daemon.venue_ledger import VenueLedger
from margin.engine import MarginEngine
from margin.model import ChainInput, Flag, Holding, PriceInput, TokenRisk
from venues.model import LiquidationPlan, VenueAccount, VenuePosition, VenueResult

WETH, USDC, WBTC = "0x" + "e1" * 20, "0x" + "c1" * 20, "0x" + "b1" * 20
ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20
WEIGHT = Decimal("0.825")


def entry(
    account: str,
    positions: tuple[VenuePosition, ...],
    *,
    health: int | None = None,
    liquidatable: bool = False,
    profit: Decimal | None = None,
    debt: Decimal | None = None,
    stale: bool = False,
) -> VenueAccount:
    plan = None
    if profit is not None:
        plan = LiquidationPlan(USDC, WETH, 1, 1, Decimal("0.05"), profit, 0, None, {})
    return VenueAccount(
        venue="aave",
        kind="aave_v3",
        chain="eth",
        account=account,
        block_number=7,
        block_hash="0x07",
        health_raw=health,
        liquidatable=liquidatable,
        collateral_value=None,
        debt_value=debt,
        positions=positions,
        plan=plan,
        stale=stale,
    )


def result(*entries: VenueAccount, stale: bool = False) -> VenueResult:
    return VenueResult(
        venue="aave",
        kind="aave_v3",
        chain="eth",
        block_number=7,
        block_hash="0x07",
        accounts={e.account: e for e in entries},
        stale=stale,
    )


ALICE_POSITIONS = (
    VenuePosition(WETH, "ETH", 18, collateral_raw=10**18, collateral_weight=WEIGHT),
    VenuePosition(USDC, "USDC", 6, debt_raw=2_300 * 10**6),
    VenuePosition(WBTC, None, 8, collateral_raw=10**7, collateral_weight=Decimal("0.75")),
)


def test_venue_positions_become_holdings_and_a_gone_position_becomes_zero() -> None:
    first = engine_feed(result(entry(ALICE, ALICE_POSITIONS)), {})
    eth = venue_token("aave", WETH, Role.COLLATERAL, WEIGHT)
    usdc = venue_token("aave", USDC, Role.LIABILITY, Decimal(1))
    assert eth == f"venue:aave:{WETH}:collateral:0.825"
    assert token_asset(eth) == WETH
    assert {(t.token, t.asset, t.role, t.weight, t.decimals) for t in first.tokens} == {
        (eth, "ETH", Role.COLLATERAL, 0.825, 18),
        (usdc, "USDC", Role.LIABILITY, 1.0, 6),
    }  # WBTC maps to no asset: valued in the venue's own health only
    assert {(h.token, h.raw) for h in first.holdings} == {(eth, 10**18), (usdc, 2_300 * 10**6)}
    repaid = entry(ALICE, ALICE_POSITIONS[:1])
    second = engine_feed(result(repaid), first.held)
    assert {(h.token, h.raw) for h in second.holdings} == {(eth, 10**18), (usdc, 0)}
    assert second.held == {ALICE: {eth}}
    # A stale result or a stale entry changes nothing: the engine keeps its last values.
    assert engine_feed(result(repaid, stale=True), first.held).holdings == []
    assert engine_feed(result(entry(ALICE, (), stale=True)), first.held).holdings == []


def _engine(tokens: list[TokenRisk]) -> MarginEngine:
    engine = MarginEngine(tokens=tokens, chains=[ChainInput(name="eth", liquidation_latency_s=60)])
    engine.set_prices([PriceInput(asset="ETH", price=2_700.0), PriceInput(asset="USDC", price=1.0)])
    return engine


def test_tokens_added_at_run_time_value_like_tokens_given_at_start() -> None:
    feed = engine_feed(result(entry(ALICE, ALICE_POSITIONS)), {})
    later = _engine([])
    later.add_tokens(feed.tokens)
    assert later.add_tokens(feed.tokens) == 0  # known tokens are not added twice
    later.load_holdings(feed.holdings)
    upfront = _engine(feed.tokens)
    upfront.load_holdings(feed.holdings)
    a, b = later.recompute_all(), upfront.recompute_all()
    for name, column in a.columns().items():
        assert np.array_equal(column, b.columns()[name], equal_nan=True), name
    assert Flag(int(a.flags[0])) & Flag.LIQUIDATABLE  # 2,700 · 0.825 < 2,300


def test_oracle_drift_flags_the_holders_of_a_drifting_asset_only() -> None:
    ledger = VenueLedger()
    bob = (VenuePosition(USDC, "USDC", 6, collateral_raw=10**9, collateral_weight=WEIGHT),)
    change = ledger.apply(
        VenueResult(
            venue="aave",
            kind="aave_v3",
            chain="eth",
            block_number=7,
            block_hash="0x07",
            accounts={ALICE: entry(ALICE, ALICE_POSITIONS), BOB: entry(BOB, bob)},
            drifting=frozenset({WETH}),
        )
    )
    engine = _engine([])
    engine.add_tokens(change.feed.tokens)
    engine.load_holdings(change.feed.holdings)
    engine.load_holdings(
        [Holding(account=BOB, chain="eth", token=change.feed.tokens[0].token, raw=0, block=7)]
    )
    flags = ledger.drift_flags({"aave": "eth"})
    assert set(flags.values()) == {Flag.ORACLE_DRIFT}
    assert {token_asset(t) for _, t in flags} == {WETH}
    engine.set_token_flags(flags)
    table = engine.recompute_all()
    by_account = dict(zip(engine.accounts, table.flags.tolist(), strict=True))
    assert by_account[ALICE] & Flag.ORACLE_DRIFT
    assert not by_account[BOB] & Flag.ORACLE_DRIFT  # a zero balance uses no price
    i = engine.account_index(ALICE)
    assert bool(table.actionable[i]) == bool(by_account[ALICE] & Flag.LIQUIDATABLE)  # not held
    assert [d["venue"] for d in ledger.venues_of(ALICE)] == ["aave"]
    assert {r.account for r in change.rows} == {ALICE, BOB}
    assert ledger.apply(result(entry(ALICE, ALICE_POSITIONS), entry(BOB, bob))).rows == []
    engine.set_token_flags({})
    assert not engine.recompute_all().flags[i] & Flag.ORACLE_DRIFT


def test_venue_ranking_is_by_profit_then_shortfall() -> None:
    half = 5 * 10**17
    rich = entry(ALICE, (), health=half, liquidatable=True, profit=Decimal(90), debt=Decimal(10))
    poor = entry(BOB, (), health=half, liquidatable=True, profit=Decimal(10), debt=Decimal(1000))
    unpriced_big = entry("0x" + "c0" * 20, (), health=half, liquidatable=True, debt=Decimal(9_000))
    unpriced_small = entry("0x" + "d0" * 20, (), health=half, liquidatable=True, debt=Decimal(4))
    assert shortfall_usd(poor) == Decimal(500)
    assert shortfall_usd(entry(ALICE, (), health=half, debt=Decimal(1))) is None  # healthy
    ranked = sorted([unpriced_small, poor, unpriced_big, rich], key=venue_rank)
    assert ranked == [rich, poor, unpriced_big, unpriced_small]
