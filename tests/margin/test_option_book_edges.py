"""The option book's edges (``margin.option_book``), against the independent oracle
(``tests/margin/portfolio_oracle.py``) or numbers worked out in the comments.

Each case was added for a mutant that survived the fourth mutation pass (bench/RESULTS.md,
"Fourth pass"): the clock a book starts with, a correlation set to the value it already had
by default, …
"""

from __future__ import annotations

import pytest

from core.domain import Role
from margin.engine import MarginEngine
from margin.model import ChainInput, EngineParams, MarginModel, PriceInput, TokenRisk
from margin.options import OptionPosition, Right
from margin.scenarios import PortfolioParams
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import World, eth_usd_groups

A = "0x" + "a" * 40
YEAR = 31_536_000.0


def test_a_book_without_a_clock_values_options_at_time_zero() -> None:
    # No `now` given: options are valued at t = 0. A call at the money expiring at t = 1 s
    # is then still alive: BS(2000, 2000, σ 1, τ 1 s) = 2000 · (2Φ(√τ / 2) − 1) = 0.14208 USD,
    # 14.20 for 100 (rounded down to a cent). A clock at 1 s would value it expired: 0.
    engine = MarginEngine(
        tokens=[
            TokenRisk(chain="main", token="usdc", asset="USDC", role=Role.COLLATERAL, weight=1.0,
                      decimals=6),
        ],  # fmt: skip
        chains=[ChainInput(name="main", liquidation_latency_s=60.0)],
        params=EngineParams(model=MarginModel.PORTFOLIO),
        portfolio=PortfolioParams(),
    )
    assert engine.now == 0.0
    engine.set_prices([PriceInput(asset="ETH", price=2000.0, volatility=0.0)])
    engine.set_options(
        A,
        [
            OptionPosition(account=A, asset="ETH", chain="main", size=100.0, right=Right.CALL,
                           strike=2000.0, expiry=1, implied_vol=1.0),
        ],  # fmt: skip
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
