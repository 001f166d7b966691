"""Edge cases of the engine and the reference against the oracle, added for mutants that
survived ``make mutate`` (bench/RESULTS.md, mutation section).

Same market and helpers as ``test_oracle``; every expected number is worked out by hand in
the comments, and ``settle`` also checks the engine, the reference and the oracle agree.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest

from core.domain import Role
from margin.health import evaluate_account
from margin.kernel import FLAG_DTYPE
from margin.model import (
    AccountHealth,
    ChainInput,
    EngineParams,
    Flag,
    Holding,
    MarginInputError,
    MarginModel,
    Position,
    PriceInput,
    Tier,
    TokenRisk,
)
from tests.margin.test_oracle import ETH, HOUR, USDC, book, settle


def test_a_one_unit_tiered_bucket_keeps_its_value_after_a_zero_shock() -> None:
    # 1 cent of CAP (tier rate 1.0 up to 1,000 USD) against 1 cent of USDC debt, latency 0:
    # weighted 1 cent now, and 1 · (1 − 0) = 1 cent after the shock, so health_latency is
    # 1 / 1 too and no LATENCY_RISK (a bucket of one unit is still a bucket with value)
    b = book(EngineParams(model=MarginModel.TIERED))
    b.balance("a", "eth", "capped", USDC // 100)
    b.balance("a", "eth", "dusdc", USDC // 100)
    (a,) = settle(b).values()
    assert (a.collateral_value, a.weighted_collateral) == (Decimal("0.01"), Decimal("0.01"))
    assert (a.health, a.health_latency) == (1.0, 1.0)
    assert a.flags == frozenset()


def test_a_first_tier_narrower_than_a_unit_weighs_a_one_unit_bucket_at_the_next_rate() -> None:
    # tiers 1.0 up to 0.001 USD (0 whole cents), then 0.5: one cent counts 0.5 cent, and the
    # breakdown's effective weight is 0.5 / 1 = 0.5, not the first tier's 1.0
    tiers = (Tier(1.0, 0.001), Tier(0.5))
    token = TokenRisk(
        chain="eth",
        token="t",
        asset="USDC",
        role=Role.COLLATERAL,
        weight=1,
        decimals=6,
        tiers=tiers,
    )
    result = evaluate_account(
        "a",
        [Holding(account="a", chain="eth", token="t", raw=USDC // 100, block=1)],
        [],
        tokens={token.key: token},
        prices={"USDC": PriceInput(asset="USDC", price=1.0)},
        chains={"eth": ChainInput(name="eth", liquidation_latency_s=0)},
        params=EngineParams(model=MarginModel.TIERED),
    )
    (line,) = result.holdings
    assert (line.value, line.weighted_value, line.weight) == (Decimal("0.01"), Decimal(0), 0.5)


def test_health_exactly_one_with_a_shock_below_it_is_latency_risk_in_the_engine() -> None:
    # 10 ETH on arb · 2000 · 0.825 = 16,500 against 16,500 USDC: health exactly 1.0, which
    # counts as solvent now; a 2.33σ hour of ETH (σ 0.8) on arb takes it below 1
    b = book(chains=[ChainInput(name="arb", liquidation_latency_s=HOUR)])
    b.balance("a", "arb", "weth", 10 * ETH)
    b.balance("a", "eth", "dusdc", 16_500 * USDC)
    (a,) = settle(b).values()
    assert a.health == 1.0
    assert a.health_latency < 1.0
    assert (a.flags, a.actionable) == ({"LATENCY_RISK"}, False)


def test_the_results_keep_their_column_types_as_accounts_are_added() -> None:
    # the store writes ``actionable.tolist()`` to a boolean column and ``flags`` as a bitmask:
    # after the results table grew (it starts empty) they must still be bools and the
    # engine's flag type (16 bits: ORACLE_DRIFT is bit 8)
    b = book()
    for i in range(40):  # an underwater account among healthy ones
        b.balance(f"a{i}", "eth", "weth", 10 * ETH)
        b.balance(f"a{i}", "eth", "dusdc", (20_000 if i == 7 else 1_000) * USDC)
    rows = settle(b)
    table = b.engine.results
    assert (table.actionable.dtype, table.flags.dtype) == (np.bool_, FLAG_DTYPE)
    assert FLAG_DTYPE().itemsize * 8 > Flag.ORACLE_DRIFT.bit_length() - 1
    actionable = table.actionable.tolist()
    assert all(type(value) is bool for value in actionable)
    assert [row.actionable for row in rows.values()] == actionable
    assert actionable.count(True) == 1


def _reference(
    holdings: list[Holding], positions: list[Position], tokens: list[TokenRisk]
) -> AccountHealth:
    return evaluate_account(
        "0xa",
        holdings,
        positions,
        tokens={t.key: t for t in tokens},
        prices={
            "USDC": PriceInput(asset="USDC", price=1.0),
            "ETH": PriceInput(asset="ETH", price=2000.0),
        },
        chains={"eth": ChainInput(name="eth", liquidation_latency_s=0)},
        params=EngineParams(),
    )


def test_a_token_without_decimals_shows_its_raw_amount_whole() -> None:
    # decimals 0 (a whole-unit token): 5 raw is 5 tokens at 1 USD = 5.00 USD
    token = TokenRisk(
        chain="eth", token="t", asset="USDC", role=Role.COLLATERAL, weight=1, decimals=0
    )
    (line,) = _reference(
        [Holding(account="0xa", chain="eth", token="t", raw=5, block=1)], [], [token]
    ).holdings
    assert (line.amount, line.value) == (Decimal(5), Decimal("5.00"))


def test_unknown_inputs_and_duplicates_are_refused_by_name() -> None:
    usdc = TokenRisk(
        chain="eth", token="usdc", asset="USDC", role=Role.COLLATERAL, weight=1, decimals=6
    )
    hold = Holding(account="0xa", chain="eth", token="usdc", raw=1, block=1)
    mmr = (Tier(0.01),)
    long = Position(account="0xa", asset="ETH", chain="eth", size=1, entry_price=1, mmr_tiers=mmr)
    with pytest.raises(MarginInputError, match=r"^unknown token \('eth', 'usdc'\)$"):
        _reference([hold], [], [])
    with pytest.raises(MarginInputError, match=r"^unknown chain 'arb'$"):
        _reference([], [replace(long, chain="arb")], [usdc])
    with pytest.raises(MarginInputError, match=r"^unknown chain 'arb'$"):
        _reference([replace(hold, chain="arb")], [], [usdc, replace(usdc, chain="arb")])
    with pytest.raises(MarginInputError, match=r"^two positions of 0xa in ETH$"):
        _reference([], [long, long], [usdc])
    with pytest.raises(MarginInputError, match=r"^two holdings of eth/usdc$"):
        _reference([hold, hold], [], [usdc])


def test_a_chain_both_stale_and_with_its_sequencer_down_puts_both_flags() -> None:
    # 10 ETH on arb (16,500 weighted) against 20,000 USDC: liquidatable, but arb is stale and
    # its sequencer is down; both flags show, and the sequencer holds the liquidation
    down = ChainInput(name="arb", liquidation_latency_s=0, stale=True, sequencer_down=True)
    b = book(chains=[down])
    b.balance("a", "arb", "weth", 10 * ETH)
    b.balance("a", "eth", "dusdc", 20_000 * USDC)
    (a,) = settle(b).values()
    assert a.flags == {"LIQUIDATABLE", "STALE_CHAIN", "SEQUENCER_DOWN"}
    assert not a.actionable
