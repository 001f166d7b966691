"""A frozen book (``MarginEngine.snapshot``, ``margin.scenario``) valued at other prices and
vols: what a stress pass sees, with numbers worked out from the independent Black–Scholes of
``tests/margin/portfolio_oracle.py``. Each case was added for a mutant that survived the fifth
mutation pass (bench/RESULTS.md, "Fifth pass").
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from margin.model import ChainInput, Flag, MarginModel
from margin.options import Right
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import CHAINS, World, option

A, B = "0x" + "a" * 40, "0x" + "b" * 40
YEAR_S = 365 * 86_400
TAU30 = 30 * 86_400 / YEAR_S


def cents_down(usd: float) -> float:
    """A market value as the engine counts it in U: rounded down to a cent, in cents."""
    return float(math.floor(usd * 100))


def test_a_snapshot_moves_options_implied_vols_by_the_vol_shocks() -> None:
    # weighted: A's 2 calls (strike 2,100, 30 days, σ 0.6) count at market value in U. A vol
    # shock of +50 % on ETH values them at σ 0.9; other assets' shocks change nothing here.
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.options(A, [option(A, size=2, right=Right.CALL, strike=2100)])
    snap = world.engine.snapshot()
    calm = snap.evaluate(snap.prices)
    shocked = snap.evaluate(snap.prices, {"ETH": 0.5})
    elsewhere = snap.evaluate(snap.prices, {"BTC": 0.5})
    at = oracle.black_scholes
    assert calm.table.unrealized_pnl[0] == cents_down(2 * at("call", 2000, 2100, 0.6, TAU30))
    assert shocked.table.unrealized_pnl[0] == cents_down(2 * at("call", 2000, 2100, 0.9, TAU30))
    assert elsewhere.table.unrealized_pnl[0] == calm.table.unrealized_pnl[0]
    assert shocked.table.unrealized_pnl[0] > calm.table.unrealized_pnl[0]


@pytest.mark.parametrize("model", [MarginModel.WEIGHTED, MarginModel.PORTFOLIO])
def test_a_snapshot_reports_no_separate_options_value(model: MarginModel) -> None:
    # Options' value is inside U in every model: the stress's bad debt adds ``options_value``
    # to the equity, so a snapshot reports zeros (a number per account), now and shocked.
    world = World(model=model)
    world.hold(A, "usdc", 10_000)
    world.options(A, [option(A, size=2, right=Right.CALL, strike=2100)])
    world.hold(B, "usdc", 1_000)
    world.engine.recompute_all()
    snap = world.engine.snapshot()
    for values in (snap.current(), snap.evaluate(snap.prices, {"ETH": 0.5})):
        np.testing.assert_array_equal(values.options_value, [0.0, 0.0])
        # one row per account, from the engine's stored results as from a fresh pass
        np.testing.assert_array_equal(values.table.collateral_value, [1_000_000.0, 100_000.0])


@pytest.mark.parametrize("model", [MarginModel.WEIGHTED, MarginModel.PORTFOLIO])
def test_a_snapshot_keeps_a_tokens_own_flag(model: MarginModel) -> None:
    # USDC on main drifts from its oracle (``set_token_flags``): its holder A is flagged in
    # the snapshot's valuations too, at current and at shocked prices; B (ETH only) is not.
    world = World(model=model)
    world.hold(A, "usdc", 10_000)
    world.hold(B, "eth-main", 10_000)
    world.engine.set_token_flags({("main", "usdc"): Flag.ORACLE_DRIFT})
    snap = world.engine.snapshot()
    moved = {**snap.prices}
    for values in (snap.current(), snap.evaluate(snap.prices), snap.evaluate(moved, {"ETH": 0.2})):
        drifting = [bool(f & Flag.ORACLE_DRIFT) for f in values.table.flags.tolist()]
        assert drifting == [True, False]


def test_a_portfolio_snapshot_values_the_book_as_the_oracle_does() -> None:
    # portfolio: a snapshot's valuation at current prices is the definition's (the scan of
    # ETH held, a perp short and written puts, USDC owed), money in cents (value units).
    world = World(volatility={"ETH": 0.7})
    world.hold(A, "eth-main", 20_000)
    world.hold(A, "usdc-debt", 10_000)
    world.perp(A, "ETH", "slow", -2, 2100)
    world.options(A, [option(A, size=-3, right=Right.PUT, strike=1900)])
    snap = world.engine.snapshot()
    expected = world.expected(A)
    for values in (snap.current(), snap.evaluate(snap.prices)):
        table = values.table
        assert table.maintenance[0] / 100 == pytest.approx(expected.maintenance, abs=0.011)
        assert table.collateral_value[0] / 100 == pytest.approx(expected.collateral, abs=0.011)
        assert table.health_latency[0] == pytest.approx(expected.health_latency, rel=1e-6)


def test_a_weighted_snapshot_charges_written_options_and_carries_their_chains_flags() -> None:
    # weighted: A wrote 3 puts (strike 1,900, 30 days, σ 0.6) settled on arb and holds USDC
    # on main. M is their value after a 15 % fall (ETH's base scan range), rounded up to a
    # cent: 3 · P(1,700); U their value now, rounded down. arb goes stale: A is flagged
    # through its options alone; B (USDC only) is not.
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.options(A, [option(A, size=-3, right=Right.PUT, strike=1900, chain="arb")])
    world.hold(B, "usdc", 10_000)
    world.engine.set_chain_status(
        [ChainInput(name="arb", liquidation_latency_s=CHAINS["arb"], stale=True)]
    )
    snap = world.engine.snapshot()
    at = oracle.black_scholes
    for values in (snap.current(), snap.evaluate(snap.prices)):
        table = values.table
        assert table.maintenance[0] == math.ceil(3 * at("put", 1700, 1900, 0.6, TAU30) * 100)
        assert table.unrealized_pnl[0] == cents_down(-3 * at("put", 2000, 1900, 0.6, TAU30))
        stale = [bool(f & Flag.STALE_CHAIN) for f in table.flags.tolist()]
        assert stale == [True, False]


def test_a_snapshot_does_not_see_a_later_failed_read() -> None:
    # A's USDC read fails after the snapshot: the engine flags A READ_FAILED (keeping the
    # last good value), the snapshot does not, at current or at shocked prices.
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.hold(B, "usdc", 1_000)
    world.engine.recompute_all()
    snap = world.engine.snapshot()
    world.engine.set_read_failed(A, "main", "usdc", 2)
    world.engine.recompute_all()
    assert world.engine.results.flags[0] & Flag.READ_FAILED
    for values in (
        snap.current(),
        snap.evaluate(snap.prices),
        snap.evaluate(snap.prices, {"ETH": 0.1}),
    ):
        assert [int(f) for f in values.table.flags.tolist()] == [0, 0]


def test_a_snapshot_does_not_see_options_reposted_after_it() -> None:
    # A has written 3 puts (strike 1,900, 30 days, σ 0.6); after the snapshot A reposts 1:
    # the engine rewrites the same option row in place, the snapshot still values 3 puts:
    # U = ⌊−3 · P · 100⌋ cents (weighted: the options' market value).
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.options(A, [option(A, size=-3, right=Right.PUT, strike=1900)])
    world.engine.recompute_all()
    snap = world.engine.snapshot()
    world.options(A, [option(A, size=-1, right=Right.PUT, strike=1900)])
    put = oracle.black_scholes("put", 2000, 1900, 0.6, 30 * 86_400 / YEAR_S)
    for values in (snap.evaluate(snap.prices), snap.evaluate(snap.prices, {"ETH": 0.0})):
        assert values.table.unrealized_pnl[0] == math.floor(-3 * put * 100)
    assert world.engine.recompute_all().unrealized_pnl[0] == math.floor(-1 * put * 100)
