"""The book's and the market vectors' edges (``margin.book``, ``margin.market``), with numbers
worked out in the comments. Each case was added for mutants that survived the fourth mutation
pass (bench/RESULTS.md, "Fourth pass"): a single token's own flag (``set_token_flags``), the
refusals' messages, a book started without tokens, a failed read's line flags, …
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import replace
from decimal import Decimal

import pytest

from core.domain import Role
from margin.engine import MarginEngine
from margin.model import (
    ChainInput,
    Flag,
    MarginInputError,
    MarginModel,
    PriceInput,
    Tier,
    TokenRisk,
)
from margin.tiers import IndexArray
from tests.margin.portfolio_kit import CHAINS, World

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


@pytest.mark.parametrize("model", [MarginModel.WEIGHTED, MarginModel.PORTFOLIO])
def test_a_tokens_own_flag_reaches_its_holders_with_a_balance(model: MarginModel) -> None:
    # USDC on main drifts from its oracle: A (10,000 of it) is flagged; B (a zero balance of
    # it) is marked but not flagged; C (ETH only) is neither. Clearing the flag unflags A.
    world = World(model=model)
    world.hold(A, "usdc", 10_000)
    world.engine.set_balance(B, "main", "usdc", 0, 1)
    world.hold(C, "eth-main", 10_000)
    world.engine.recompute_all()

    def marked(found: IndexArray) -> set[str]:
        return {world.engine.accounts[i] for i in found.tolist()}

    def drifting(account: str) -> bool:
        return bool(world.engine.account_health(account).flags & Flag.ORACLE_DRIFT)

    assert marked(world.engine.set_token_flags({("main", "usdc"): Flag.ORACLE_DRIFT})) == {A, B}
    world.engine.recompute_dirty()
    assert [drifting(a) for a in (A, B, C)] == [True, False, False]
    assert marked(world.engine.set_token_flags({})) == {A, B}
    world.engine.recompute_dirty()
    assert not drifting(A)


def test_bad_inputs_are_refused_naming_what_is_wrong() -> None:
    world = World()
    engine = world.engine
    usdc = TokenRisk(chain="main", token="usdc", asset="USDC", role=Role.COLLATERAL, weight=0.8,
                     decimals=6)  # fmt: skip
    main = ChainInput(name="main", liquidation_latency_s=60.0)

    def refused(message: str) -> AbstractContextManager[pytest.ExceptionInfo[MarginInputError]]:
        return pytest.raises(MarginInputError, match=f"^{re.escape(message)}$")

    with refused("chain main given twice"):
        MarginEngine(tokens=[], chains=[main, main])
    with refused("token main/usdc given twice"):
        MarginEngine(tokens=[usdc, usdc], chains=[main])
    with refused("unknown chain moon"):
        MarginEngine(tokens=[replace(usdc, chain="moon")], chains=[main])
    with refused("unknown token main/nope"):
        engine.set_balance(A, "main", "nope", 1, 1)
    with refused("unknown account nobody"):
        engine.account_index("nobody")
    with refused(f"raw balance out of uint256 range: {2**256}"):
        engine.set_balance(A, "main", "usdc", 2**256, 1)
    with refused("load_balances: accounts and raws differ in length"):
        engine.load_balances("main", "usdc", [A, B], [1], block=1)
    with refused("load_balances: accounts and blocks differ in length"):
        engine.load_balances("main", "usdc", [A, B], [1, 2], block=[1])
    with refused("load_balances: an account appears twice"):
        engine.load_balances("main", "usdc", [A, A], [1, 2], block=1)
    with refused("load_balances: raw balance out of uint256 range"):
        engine.load_balances("main", "usdc", [A], [2**256], block=1)
    with refused("token main/usdc given twice"):
        engine.add_tokens([replace(usdc, weight=0.5)])
    with refused("token main/new: added tokens are flat"):
        engine.add_tokens([replace(usdc, token="new", tiers=(Tier(rate=0.9),))])


def test_a_refused_bulk_load_changes_nothing() -> None:
    """Refused for a duplicate or an out-of-range raw, ``load_balances`` has registered no
    account and recorded no balance, not even those of accounts that already hold the token."""
    usdc = TokenRisk(chain="main", token="usdc", asset="USDC", role=Role.COLLATERAL, weight=0.8,
                     decimals=6)  # fmt: skip
    main = ChainInput(name="main", liquidation_latency_s=60.0)
    engine = MarginEngine(tokens=[usdc], chains=[main])
    engine.set_prices([PriceInput(asset="USDC", price=1.0)])
    engine.load_balances("main", "usdc", [A], [100 * 10**6], block=1)
    before = engine.account_health(A).weighted_collateral
    assert before == Decimal("80.00")
    for accounts, raws in (([A, B, B], [5 * 10**6, 1, 2]), ([A, B, C], [5 * 10**6, 1, 2**256])):
        with pytest.raises(MarginInputError):
            engine.load_balances("main", "usdc", accounts, raws, block=2)
        for newcomer in (B, C):
            with pytest.raises(MarginInputError, match="unknown account"):
                engine.account_index(newcomer)
        assert engine.account_health(A).weighted_collateral == before  # A's row untouched


def test_a_book_started_without_tokens_values_tokens_added_later() -> None:
    # No token at start (a venue's reserves are learned later): 10,000 USDC at weight 0.8.
    engine = MarginEngine(tokens=[], chains=[ChainInput(name="main", liquidation_latency_s=60.0)])
    usdc = TokenRisk(chain="main", token="usdc", asset="USDC", role=Role.COLLATERAL, weight=0.8,
                     decimals=6)  # fmt: skip
    assert engine.add_tokens([usdc]) == 1
    engine.set_prices([PriceInput(asset="USDC", price=1.0)])
    engine.set_balance(A, "main", "usdc", 10_000 * 10**6, 1)
    engine.recompute_all()
    health = engine.account_health(A)
    assert health.weighted_collateral == Decimal("8000.00")


def test_tokens_added_after_start_count_once_whatever_else_the_call_holds() -> None:
    # USDC is known from the start and the prices are in before the other tokens are learned:
    # adding [USDC, DAI, WETH] adds two, adding DAI again adds nothing, a different DAI is
    # refused. 10,000 USDC at 0.8 + 1 WETH at 2,000 · 0.5 = 9,000.00 weighted collateral;
    # 500 DAI owed at 1.1: 550.00 weighted debt.
    usdc = TokenRisk(chain="main", token="usdc", asset="USDC", role=Role.COLLATERAL, weight=0.8,
                     decimals=6)  # fmt: skip
    dai = TokenRisk(chain="main", token="dai", asset="DAI", role=Role.LIABILITY, weight=1.1,
                    decimals=18)  # fmt: skip
    weth = replace(usdc, token="weth", asset="ETH", weight=0.5, decimals=18)
    engine = MarginEngine(
        tokens=[usdc], chains=[ChainInput(name="main", liquidation_latency_s=60.0)]
    )
    engine.set_prices(
        [PriceInput(asset=a, price=p) for a, p in (("USDC", 1.0), ("DAI", 1.0), ("ETH", 2000.0))]
    )
    assert engine.add_tokens([usdc, dai, weth]) == 2
    assert engine.add_tokens([dai]) == 0
    with pytest.raises(MarginInputError, match=r"^token main/dai given twice$"):
        engine.add_tokens([replace(dai, weight=1.2)])
    engine.set_balance(A, "main", "usdc", 10_000 * 10**6, 1)
    engine.set_balance(A, "main", "dai", 500 * 10**18, 1)
    engine.set_balance(A, "main", "weth", 10**18, 1)
    engine.recompute_all()
    health = engine.account_health(A)
    assert (health.weighted_collateral, health.weighted_liability) == (
        Decimal("9000.00"),
        Decimal("550.00"),
    )


@pytest.mark.parametrize("model", [MarginModel.WEIGHTED, MarginModel.PORTFOLIO])
def test_a_failed_read_of_a_balance_never_read_shows_only_its_own_flags(
    model: MarginModel,
) -> None:
    # A's ETH on arb was never read (the read failed): its line shows READ_FAILED alone, not
    # arb's STALE_CHAIN (no amount, no exposure there), like the account's flags.
    world = World(model=model)
    world.hold(A, "usdc", 10_000)
    world.engine.set_read_failed(A, "arb", "eth-arb", 5)
    world.engine.set_chain_status(
        [ChainInput(name="arb", liquidation_latency_s=CHAINS["arb"], stale=True)]
    )
    world.engine.recompute_all()
    health = world.engine.account_health(A)
    (line,) = [h for h in health.holdings if h.token == "eth-arb"]
    assert line.flags == Flag.READ_FAILED  # a collateral: no DEBT_UNKNOWN
    assert line.raw is None  # never read: no raw amount, and an amount of 0
    assert line.amount == 0
    assert not health.flags & Flag.STALE_CHAIN


def test_a_token_without_decimals_shows_its_raw_amount_whole_in_the_breakdown() -> None:
    # 7 units of a 0-decimal token at 3 USD: amount 7, value 21.00 (not 0.7 and 2.10).
    engine = MarginEngine(
        tokens=[
            TokenRisk(
                chain="main", token="pts", asset="PTS", role=Role.COLLATERAL, weight=0.5, decimals=0
            ),
        ],
        chains=[ChainInput(name="main", liquidation_latency_s=60.0)],
    )
    engine.set_prices([PriceInput(asset="PTS", price=3.0)])
    engine.set_balance(A, "main", "pts", 7, 1)
    (line,) = engine.account_health(A).holdings
    assert line.amount == 7
    assert line.value == Decimal("21.00")


def test_a_long_below_one_unit_is_marked_low_in_its_breakdown_line() -> None:
    # ETH 2,000 in a band [1,990, 2,010]: a long of 0.5 from 1,900 is marked at 1,990 (a size
    # below one unit is long too): PnL 0.5 · (1,990 − 1,900) = 45.00.
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.perp(A, "ETH", "arb", 0.5, 1900)
    world.engine.set_prices([PriceInput(asset="ETH", price=2000, price_low=1990, price_high=2010)])
    (line,) = world.engine.account_health(A).positions
    assert line.mark == 1990
    assert line.unrealized_pnl == Decimal("45.00")


def test_a_good_value_read_at_the_fork_block_survives_a_reorg_above_it() -> None:
    # USDC read at block 10; a reorg orphans the blocks above 10 and the next read fails: the
    # value read at block 10 itself is kept (flagged READ_FAILED), not forgotten.
    world = World(model=MarginModel.WEIGHTED)
    world.engine.set_balance(A, "main", "usdc", 10_000 * 10**6, 10)
    world.engine.set_read_failed(A, "main", "usdc", 12, orphaned_above=10)
    health = world.engine.account_health(A)
    assert health.collateral_value == Decimal("10000.00")
    assert health.flags & Flag.READ_FAILED


def test_a_balance_read_again_after_a_reorg_forgot_it_counts_whole() -> None:
    # 5 units of a 0-decimal token at 3 USD read at block 10; a reorg orphans the blocks above
    # 5 (the value is forgotten), then 1 unit is read at block 13: worth 3.00, not 0.
    engine = MarginEngine(
        tokens=[
            TokenRisk(
                chain="main", token="pts", asset="PTS", role=Role.COLLATERAL, weight=0.5, decimals=0
            ),
        ],
        chains=[ChainInput(name="main", liquidation_latency_s=60.0)],
    )
    engine.set_prices([PriceInput(asset="PTS", price=3.0)])
    engine.set_balance(A, "main", "pts", 5, 10)
    engine.set_read_failed(A, "main", "pts", 12, orphaned_above=5)
    assert engine.account_health(A).collateral_value == 0
    engine.set_balance(A, "main", "pts", 1, 13)
    assert engine.account_health(A).collateral_value == Decimal("3.00")


def test_a_price_or_flag_change_touches_only_the_holders_even_of_the_first_token() -> None:
    # A, the book's first account, holds USDC only; B holds ETH on "fast" (the book's first
    # token). A change of ETH's price or of that token's flags concerns B alone.
    world = World()
    world.hold(A, "usdc", 10_000)
    world.hold(B, "eth-fast", 10_000)
    world.engine.recompute_all()
    touched = world.engine.set_prices([PriceInput(asset="ETH", price=2100.0)])
    assert [world.engine.accounts[i] for i in touched.tolist()] == [B]
    flagged = world.engine.set_token_flags({("fast", "eth-fast"): Flag.ORACLE_DRIFT})
    assert [world.engine.accounts[i] for i in flagged.tolist()] == [B]


def test_a_block_number_is_kept_exactly_whatever_its_size() -> None:
    # blocks are stored as int64: one past 2**53 (where a float64 would round it) shows whole
    world = World()
    block = 2**53 + 1
    world.engine.set_balance(A, "main", "usdc", 5_000_000, block)
    [line] = world.engine.account_health(A).holdings
    assert line.block == block


def test_latency_risk_is_added_to_an_accounts_other_flags() -> None:
    # A: 20,000 of ETH on "slow" (3,600 s) at weight 0.8 = 16,000.00 against 15,900.00 owed:
    # health 1.006 now; after the latency shock 2.33 · 0.6 · √(3,600 s / year) = 1.49 % the
    # collateral is 15,761: below 1. Its token drifts from its oracle: both flags show.
    world = World(model=MarginModel.WEIGHTED, volatility={"ETH": 0.6})
    world.hold(A, "eth-slow", 20_000)
    world.hold(A, "usdc-debt", 15_900)
    world.engine.set_token_flags({("slow", "eth-slow"): Flag.ORACLE_DRIFT})
    world.engine.recompute_all()
    shown = world.engine.account_health(A)
    assert shown.health == pytest.approx(16_000 / 15_900)
    assert shown.flags == Flag.LATENCY_RISK | Flag.ORACLE_DRIFT
