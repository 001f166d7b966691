"""Failed balance reads in the margin engine: a failed read is a state, never a value.

A holding whose latest read failed keeps its last good value and block and flags the account
``READ_FAILED`` (held); a liability never read makes the account's health unknown (NaN,
``DEBT_UNKNOWN``), never healthy. The numpy engine (full and incremental) and the reference
``margin.health`` agree on all of it, bit for bit.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from core.domain import PriceStatus, Role
from margin.engine import MarginEngine
from margin.health import evaluate_account
from margin.kernel import HealthTable
from margin.model import (
    HELD_REASONS,
    AccountHealth,
    ChainInput,
    EngineParams,
    Flag,
    Holding,
    MarginInputError,
    MarginModel,
    PriceInput,
    Tier,
    TokenRisk,
)
from tests.margin import margin_oracle as oracle
from tests.margin.marginkit import (
    REFERENCE_MODELS,
    assert_reference_matches,
    assert_row_matches,
    oracle_market,
)

C, L = Role.COLLATERAL, Role.LIABILITY
TIERS = (Tier(0.9, 1_000), Tier(0.5, 50_000), Tier(0.2))
WETH = TokenRisk(chain="eth", token="weth", asset="ETH", role=C, weight=0.8, decimals=18)
ARB_WETH = TokenRisk(
    chain="arb", token="weth", asset="ETH", role=C, weight=0.8, decimals=18, tiers=TIERS
)
USDC = TokenRisk(chain="arb", token="usdc", asset="USDC", role=C, weight=0.9, decimals=6)
DUSDC = TokenRisk(chain="eth", token="dusdc", asset="USDC", role=L, weight=1.0, decimals=6)
DDAI = TokenRisk(chain="arb", token="ddai", asset="DAI", role=L, weight=1.1, decimals=18)
GHOST = TokenRisk(chain="arb", token="ghost", asset="DAI", role=L, weight=1.0, decimals=None)
TOKENS = [WETH, ARB_WETH, USDC, DUSDC, DDAI, GHOST]
TOKEN_MAP = {t.key: t for t in TOKENS}
CHAINS = [
    ChainInput(name="eth", liquidation_latency_s=900),
    ChainInput(name="arb", liquidation_latency_s=3_600),
]
PRICES = [
    PriceInput(asset="ETH", price=2_000.0, volatility=0.6),
    PriceInput(asset="USDC", price=1.0, volatility=0.01),
    PriceInput(asset="DAI", price=1.0, volatility=0.02),
]
MONEY = (
    "collateral_value",
    "weighted_collateral",
    "liability_value",
    "weighted_liability",
    "unrealized_pnl",
    "maintenance",
    "shortfall",
)


@dataclass
class Read:
    """The test's own record of one holding's read state."""

    raw: int | None
    block: int
    failed: bool = False


@dataclass
class Both:
    """An engine and the test's mirror of its inputs, evaluated with the reference."""

    model: MarginModel = MarginModel.WEIGHTED
    reads: dict[str, dict[tuple[str, str], Read]] = field(default_factory=dict)
    prices: dict[str, PriceInput] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = EngineParams(model=self.model)
        self.engine = MarginEngine(tokens=TOKENS, chains=CHAINS, params=self.params)
        self.set_prices(PRICES)

    def set_prices(self, prices: list[PriceInput]) -> None:
        self.prices.update((p.asset, p) for p in prices)
        self.engine.set_prices(prices)

    def good(
        self, account: str, token: TokenRisk, raw: int, block: int = 1, *, engine: bool = True
    ) -> None:
        if engine:
            self.engine.set_balance(account, token.chain, token.token, raw, block)
        if token.decimals is None:  # unvaluable: every read counts as failed
            self.failed(account, token, block, engine=False)
            return
        self.reads.setdefault(account, {})[token.key] = Read(raw, block)

    def failed(
        self,
        account: str,
        token: TokenRisk,
        block: int = 2,
        *,
        orphaned_above: int | None = None,
        engine: bool = True,
    ) -> None:
        if engine:
            self.engine.set_read_failed(
                account, token.chain, token.token, block, orphaned_above=orphaned_above
            )
        read = self.reads.setdefault(account, {}).get(token.key) or Read(None, block)
        if read.raw is not None and orphaned_above is not None and read.block > orphaned_above:
            read = Read(None, block)
        if read.raw is None:
            read.block = block
        read.failed = True
        self.reads[account][token.key] = read

    def remember(self, holding: Holding, *, orphaned_above: int | None = None) -> None:
        """Mirror what ``set_holding`` means (the engine is left alone): the value if there is
        one, then the failure."""
        token = TOKEN_MAP[(holding.chain, holding.token)]
        if holding.raw is not None:
            self.good(holding.account, token, holding.raw, holding.block, engine=False)
        if holding.read_failed:
            self.failed(
                holding.account, token, holding.block, orphaned_above=orphaned_above, engine=False
            )

    def reference(self, account: str) -> AccountHealth:
        holdings = [
            Holding(
                account=account, chain=c, token=t, raw=r.raw, block=r.block, read_failed=r.failed
            )
            for (c, t), r in self.reads.get(account, {}).items()
        ]
        return evaluate_account(
            account,
            holdings,
            [],
            tokens=TOKEN_MAP,
            prices=self.prices,
            chains={c.name: c for c in CHAINS},
            params=self.params,
        )

    def health(self, account: str) -> AccountHealth:
        self.engine.recompute_dirty(full_fraction=math.inf)
        return self.engine.account_health(account)


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_same_table(a: HealthTable, b: HealthTable) -> None:
    for name, column in a.columns().items():
        assert np.array_equal(column, b.columns()[name], equal_nan=column.dtype.kind == "f"), name


def assert_matches_reference(both: Both) -> None:
    """The engine equals the reference bit for bit, and both agree with the independent oracle."""
    table = both.engine.results
    market = oracle_market(TOKENS, both.prices, {c.name: c for c in CHAINS}, both.params)
    for i, account in enumerate(both.engine.accounts):
        reads = {
            key: oracle.Read(r.raw, r.failed) for key, r in both.reads.get(account, {}).items()
        }
        want = oracle.evaluate(market, reads)
        assert_row_matches(table, i, want, f"engine {account}")
        ref = both.reference(account)
        assert_reference_matches(ref, want, both.params.value_decimals)
        for name in MONEY:
            units = getattr(ref, name).scaleb(both.params.value_decimals)
            assert units == Decimal(float(getattr(table, name)[i])), (account, name)
        assert same_float(ref.health, float(table.health[i])), account
        assert same_float(ref.health_latency, float(table.health_latency[i])), account
        assert ref.flags == Flag(int(table.flags[i])), account
        assert ref.actionable == bool(table.actionable[i]), account
        assert both.engine.account_health(account) == ref


# ---- tables -----------------------------------------------------------------------------------


def test_a_failed_debt_read_keeps_the_last_good_debt_and_holds_the_account() -> None:
    both = Both()
    both.good("bob", WETH, 10**18, block=10)  # 2000 x 0.8 = 1600
    both.good("bob", DUSDC, 1_700 * 10**6, block=10)  # under water: 1600 / 1700
    before = both.health("bob")
    assert before.flags == Flag.LIQUIDATABLE
    assert before.actionable

    both.failed("bob", DUSDC, block=12)
    after = both.health("bob")
    assert after.health == before.health  # the last good debt, never zero
    assert after.shortfall == before.shortfall == Decimal("100.00")
    assert after.flags == Flag.LIQUIDATABLE | Flag.READ_FAILED
    assert after.held_reasons == Flag.READ_FAILED
    assert not after.actionable
    assert after.health_known
    line = next(h for h in after.holdings if h.token == "dusdc")
    assert (line.raw, line.block, line.flags) == (1_700 * 10**6, 10, Flag.READ_FAILED)

    both.good("bob", DUSDC, 1_700 * 10**6, block=13)  # the same value, read again: flag clears
    again = both.health("bob")
    assert again.flags == Flag.LIQUIDATABLE
    assert again.actionable
    assert_matches_reference(both)


def test_a_failed_collateral_read_keeps_its_value_and_holds() -> None:
    both = Both()
    both.good("ann", WETH, 10**18)
    both.good("ann", DUSDC, 1_700 * 10**6)
    both.failed("ann", WETH)
    result = both.health("ann")
    assert result.weighted_collateral == Decimal("1600.00")
    assert result.flags == Flag.LIQUIDATABLE | Flag.READ_FAILED
    assert not result.actionable
    assert_matches_reference(both)


def test_a_liability_never_read_makes_health_unknown_not_healthy() -> None:
    both = Both()
    both.good("carol", WETH, 10**18)
    both.failed("carol", DUSDC, block=7)  # never read successfully
    result = both.health("carol")
    assert math.isnan(result.health)
    assert math.isnan(result.health_latency)
    assert not result.health_known
    assert result.flags == Flag.READ_FAILED | Flag.DEBT_UNKNOWN
    assert not result.actionable
    assert result.held_reasons == Flag.READ_FAILED
    line = next(h for h in result.holdings if h.token == "dusdc")
    assert (line.raw, line.block, line.amount) == (None, 7, Decimal(0))
    assert_matches_reference(both)

    both.good("carol", DUSDC, 0, block=8)  # she owes nothing after all
    known = both.health("carol")
    assert known.health == math.inf
    assert known.flags == Flag.NONE
    assert known.health_known


def test_collateral_never_read_counts_as_zero_with_health_still_known() -> None:
    both = Both()
    both.failed("dan", USDC)
    both.good("dan", DUSDC, 100 * 10**6)
    result = both.health("dan")
    assert result.health == 0.0  # nothing known to back the debt: the conservative side
    assert result.flags == Flag.LIQUIDATABLE | Flag.READ_FAILED
    assert result.health_known
    assert not result.actionable
    assert_matches_reference(both)


def test_a_failed_read_of_a_zero_balance_still_flags() -> None:
    both = Both()
    both.good("eve", WETH, 10**18)
    both.good("eve", DUSDC, 0)
    both.failed("eve", DUSDC)  # zero before, maybe not now
    result = both.health("eve")
    assert result.health == math.inf
    assert result.flags == Flag.READ_FAILED
    assert [h.token for h in result.holdings if h.flags & Flag.READ_FAILED] == ["dusdc"]
    assert_matches_reference(both)


def test_a_reorg_forgets_a_last_good_value_read_on_an_orphaned_block() -> None:
    both = Both()
    both.good("bob", WETH, 10**18, block=5)
    both.good("bob", DUSDC, 100 * 10**6, block=5)
    both.good("ann", DUSDC, 100 * 10**6, block=12)
    # Blocks above 10 were orphaned; both re-reads fail.
    both.failed("bob", DUSDC, block=11, orphaned_above=10)
    both.failed("ann", DUSDC, block=11, orphaned_above=10)
    assert both.health("bob").flags == Flag.READ_FAILED  # block 5 survives the reorg
    ann = both.health("ann")
    assert ann.flags == Flag.READ_FAILED | Flag.DEBT_UNKNOWN  # block 12 did not
    assert next(h.raw for h in ann.holdings) is None
    assert_matches_reference(both)


def test_a_token_with_unknown_decimals_counts_as_never_read() -> None:
    both = Both()
    both.good("bob", WETH, 10**18)
    both.good("bob", GHOST, 10**18)  # read, but cannot be valued
    result = both.health("bob")
    assert not result.health_known
    assert result.flags == Flag.READ_FAILED | Flag.DEBT_UNKNOWN
    both.engine.load_balances("arb", "ghost", ["ann"], [5], 3)
    both.failed("ann", GHOST, 3, engine=False)
    both.engine.recompute_all()
    assert_matches_reference(both)


def test_a_holding_without_a_value_must_be_a_failed_read() -> None:
    with pytest.raises(MarginInputError, match="without a value"):
        Holding(account="a", chain="eth", token="weth", raw=None, block=1)
    with pytest.raises(MarginInputError, match="decimals"):
        TokenRisk(chain="eth", token="x", asset="X", role=C, weight=0.5, decimals=78)


def test_set_holding_restores_a_stored_failure_with_its_last_value() -> None:
    both = Both()
    stored = Holding(
        account="bob", chain="eth", token="dusdc", raw=1_700 * 10**6, block=10, read_failed=True
    )
    both.engine.set_holding(stored)
    both.engine.set_holding(Holding(account="bob", chain="eth", token="weth", raw=10**18, block=10))
    result = both.health("bob")
    assert result.flags == Flag.LIQUIDATABLE | Flag.READ_FAILED
    line = next(h for h in result.holdings if h.token == "dusdc")
    assert (line.raw, line.block) == (1_700 * 10**6, 10)
    assert both.engine.read_failures() == 1


def held(
    account: str, token: TokenRisk, raw: int | None, block: int, *, failed: bool = False
) -> Holding:
    return Holding(
        account=account, chain=token.chain, token=token.token, raw=raw, block=block,
        read_failed=failed,
    )  # fmt: skip


@pytest.mark.parametrize("model", list(REFERENCE_MODELS))
def test_load_holdings_records_every_kind_of_holding_as_the_oracle_reads_it(
    model: MarginModel,
) -> None:
    # Three loads (a first sync, a later sweep, failed reads after a reorg above block 25),
    # each checked against the independent oracle and, for the lines' raws and blocks, by hand.
    both = Both(model)

    def load(holdings: list[Holding], orphaned_above: int | None = None) -> None:
        both.engine.load_holdings(holdings, orphaned_above=orphaned_above)
        for holding in holdings:
            both.remember(holding, orphaned_above=orphaned_above)
        both.engine.recompute_dirty(full_fraction=math.inf)
        assert_matches_reference(both)

    def line(account: str, token: TokenRisk) -> tuple[int | None, int, Flag]:
        found = both.engine.account_health(account).holdings
        (h,) = [h for h in found if (h.chain, h.token) == token.key]
        return h.raw, h.block, h.flags

    # first sync, every token fresh: weth's good reads go in vectorized, bob's stored failure
    # keeps its last good value (read at 20), cat's holding was never read, eve's debt is given
    # twice (row by row: the later wins), ghost's decimals are unknown (a failed read)
    load(
        [
            held("ann", WETH, 3 * 10**18, 20),
            held("bob", WETH, 5 * 10**17, 20, failed=True),
            held("cat", WETH, None, 21, failed=True),
            held("dan", WETH, 10**18, 14, failed=True),
            held("ann", DUSDC, 1_000 * 10**6, 20),
            held("eve", DUSDC, 2 * 10**6, 20),
            held("eve", DUSDC, 3 * 10**6, 21),
            held("ann", GHOST, 7, 20),
            held("fay", USDC, 0, 20),
        ]
    )
    assert line("ann", WETH) == (3 * 10**18, 20, Flag.NONE)
    assert line("bob", WETH) == (5 * 10**17, 20, Flag.READ_FAILED)
    assert line("cat", WETH) == (None, 21, Flag.READ_FAILED)
    assert line("eve", DUSDC) == (3 * 10**6, 21, Flag.NONE)
    assert line("ann", GHOST) == (None, 20, Flag.READ_FAILED | Flag.DEBT_UNKNOWN)
    assert both.engine.read_failures() == 4  # bob, cat, dan (weth) and ann (ghost)
    # a later sweep: weth has rows now (row by row); gus is new, cat is read at last
    load(
        [
            held("ann", WETH, 4 * 10**18, 30),
            held("gus", WETH, 10**18, 30),
            held("cat", WETH, 2 * 10**18, 31),
            held("fay", DDAI, 5 * 10**18, 30),
        ]
    )
    assert line("cat", WETH) == (2 * 10**18, 31, Flag.NONE)
    assert line("gus", WETH) == (10**18, 30, Flag.NONE)
    # a reorg orphaned the blocks above 25, and the reads fail: ann's weth (read at 30) is
    # forgotten, eve's debt (read at 21) and dan's weth (14) are kept; a stored failure whose
    # last good value is above the fork is forgotten too: on a fresh token (arb weth, loaded)
    # and through set_holding (ddai of gus)
    load(
        [
            held("ann", WETH, None, 32, failed=True),
            held("eve", DUSDC, None, 32, failed=True),
            held("dan", WETH, None, 32, failed=True),
        ],
        orphaned_above=25,
    )
    assert line("ann", WETH) == (None, 32, Flag.READ_FAILED)
    assert line("eve", DUSDC) == (3 * 10**6, 21, Flag.READ_FAILED)
    assert line("dan", WETH) == (10**18, 14, Flag.READ_FAILED)
    load([held("gus", ARB_WETH, 10**18, 30, failed=True)], orphaned_above=25)
    assert line("gus", ARB_WETH) == (None, 30, Flag.READ_FAILED)
    both.engine.set_holding(held("gus", DDAI, 10**18, 30, failed=True), orphaned_above=25)
    both.remember(held("gus", DDAI, 10**18, 30, failed=True), orphaned_above=25)
    assert line("gus", DDAI) == (None, 30, Flag.READ_FAILED | Flag.DEBT_UNKNOWN)
    both.engine.recompute_dirty(full_fraction=math.inf)
    assert_matches_reference(both)


@pytest.mark.parametrize("columns", [False, True], ids=["ints", "uint64"])
def test_a_later_part_of_a_sweep_replaces_the_rows_held_and_adds_the_new_ones(
    columns: bool,
) -> None:
    # A debt token (dusdc, key side 1) swept in two parts: ann and bob hold it after the first,
    # cat holds only weth; the second part reads ann and bob again (one row each, the new
    # value) and cat and dan for the first time, in one call. Four accounts come first (ann is
    # account 4, bob 5), so that no row key but the right one names them.
    both = Both()
    for i in range(4):
        both.engine.set_balance(f"x{i}", "eth", "weth", 10**18, 5)
        both.good(f"x{i}", WETH, 10**18, 5, engine=False)
    both.engine.load_balances("eth", "dusdc", ["ann", "bob"], [100 * 10**6, 200 * 10**6], 5)
    both.engine.set_balance("cat", "eth", "weth", 10**18, 5)
    for account, raw in (("ann", 100 * 10**6), ("bob", 200 * 10**6)):
        both.good(account, DUSDC, raw, 5, engine=False)
    both.good("cat", WETH, 10**18, 5, engine=False)
    accounts, ints = ["ann", "bob", "cat", "dan"], [120 * 10**6, 250 * 10**6, 50 * 10**6, 3 * 10**6]
    raws = np.array(ints, dtype=np.uint64) if columns else ints
    both.engine.load_balances("eth", "dusdc", accounts, raws, [6, 6, 7, 7])
    for account, raw, block in zip(accounts, ints, [6, 6, 7, 7], strict=True):
        both.good(account, DUSDC, raw, block, engine=False)
    both.engine.recompute_dirty(full_fraction=math.inf)
    assert_matches_reference(both)
    for account, raw, block in zip(accounts, ints, [6, 6, 7, 7], strict=True):
        lines = [h for h in both.engine.account_health(account).holdings if h.token == "dusdc"]
        assert [(h.raw, h.block) for h in lines] == [(raw, block)], account


def test_load_balances_takes_every_uint256_raw_and_refuses_the_rest() -> None:
    # 0 and 2**256 − 1 go in exactly (a list of ints: the exact path); a negative raw, given
    # as a list or as a signed column, and 2**256 are refused, not wrapped around.
    both = Both()
    both.engine.load_balances("eth", "weth", ["ann", "bob"], [0, 2**256 - 1], 3)
    both.good("ann", WETH, 0, 3, engine=False)
    both.good("bob", WETH, 2**256 - 1, 3, engine=False)
    both.engine.recompute_dirty(full_fraction=math.inf)
    assert_matches_reference(both)
    (line,) = both.engine.account_health("bob").holdings
    assert (line.raw, line.block) == (2**256 - 1, 3)
    for bad in ([-1], np.array([5, -1], dtype=np.int64), [2**256]):
        with pytest.raises(
            MarginInputError, match=r"^load_balances: raw balance out of uint256 range$"
        ):
            both.engine.load_balances("arb", "usdc", ["cat", "dan"][: len(bad)], bad, 3)


# ---- the engine agrees with the reference -----------------------------------------------------


def populate(both: Both, rng: random.Random, accounts: int) -> None:
    for i in range(accounts):
        account = f"0x{i:040x}"
        for token in rng.sample(TOKENS, rng.randrange(0, len(TOKENS))):
            roll = rng.random()
            if roll < 0.6:
                both.good(account, token, rng.randrange(10 ** ((token.decimals or 6) + 4)), i)
            elif roll < 0.8:
                both.good(account, token, rng.randrange(10**20), i)
                both.failed(account, token, i + 1)
            else:
                both.failed(account, token, i + 1)


@pytest.mark.parametrize("model", list(REFERENCE_MODELS))
def test_engine_full_and_incremental_equal_the_reference_with_failed_reads(
    model: MarginModel,
) -> None:
    both = Both(model)
    rng = random.Random(8)
    populate(both, rng, accounts=200)
    both.engine.recompute_all()
    assert_matches_reference(both)
    flags = both.engine.results.flags
    assert (flags & Flag.DEBT_UNKNOWN).any()
    assert ((flags & Flag.READ_FAILED) & ~(flags & Flag.DEBT_UNKNOWN)).any()
    for _ in range(10):
        for _ in range(10):
            account, token = f"0x{rng.randrange(220):040x}", rng.choice(TOKENS)
            if rng.random() < 0.5:
                both.failed(account, token, orphaned_above=rng.choice([None, 100]))
            else:
                both.good(account, token, rng.randrange(10**22), rng.randrange(200))
        both.engine.recompute_dirty(full_fraction=math.inf)
        incremental = both.engine.results.select(slice(None))
        assert_same_table(incremental, both.engine.recompute_all())
    assert_matches_reference(both)


# ---- properties --------------------------------------------------------------------------------

raws = st.one_of(st.just(0), st.integers(1, 10**24), st.integers(0, 2**256 - 1))
VALUED = [t for t in TOKENS if t.decimals is not None]


@st.composite
def books(draw: st.DrawFn) -> dict[tuple[str, str], int]:
    tokens = draw(st.lists(st.sampled_from(VALUED), unique=True, min_size=1))
    return {t.key: draw(raws) for t in tokens}


@st.composite
def markets(draw: st.DrawFn) -> list[PriceInput]:
    return [
        PriceInput(
            asset=asset,
            price=draw(st.floats(1e-3, 1e5)),
            status=draw(st.sampled_from([PriceStatus.OK, PriceStatus.OK, PriceStatus.STALE])),
            volatility=draw(st.floats(0, 2)),
        )
        for asset in ("ETH", "USDC", "DAI")
    ]


# no shrinking: a failing example is reported as drawn (its inputs are named), and a
# mutant (`make mutate`) must not keep a run shrinking for minutes
PROPERTY = settings(
    deadline=None, max_examples=80, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


@PROPERTY
@given(books(), markets(), st.data())
def test_failed_reads_never_make_an_account_healthier_nor_actionable(
    book: dict[tuple[str, str], int], market: list[PriceInput], data: st.DataObject
) -> None:
    both = Both(data.draw(st.sampled_from(REFERENCE_MODELS)))
    both.set_prices(market)
    for key, raw in book.items():
        both.good("acct", TOKEN_MAP[key], raw, block=1)
    before = both.health("acct")
    failing = data.draw(st.lists(st.sampled_from(sorted(book)), unique=True, min_size=1))
    for key in failing:
        both.failed("acct", TOKEN_MAP[key], block=2)
    after = both.health("acct")
    # Every failed holding had a good value: the account is valued exactly as before.
    assert same_float(after.health, before.health)
    assert after.shortfall == before.shortfall
    assert after.flags == before.flags | Flag.READ_FAILED
    assert not after.actionable
    assert Flag.READ_FAILED in after.held_reasons
    assert_matches_reference(both)


@PROPERTY
@given(books(), markets(), st.sampled_from([DUSDC, DDAI]))
def test_a_liability_never_read_is_unknown_whatever_else_is_held(
    book: dict[tuple[str, str], int], market: list[PriceInput], debt: TokenRisk
) -> None:
    both = Both()
    both.set_prices(market)
    for key, raw in book.items():
        if key != debt.key:
            both.good("acct", TOKEN_MAP[key], raw)
    both.failed("acct", debt)
    result = both.health("acct")
    assert math.isnan(result.health)
    assert not result.health_known
    assert not result.flags & (Flag.LIQUIDATABLE | Flag.LATENCY_RISK)
    assert result.flags & Flag.DEBT_UNKNOWN
    assert result.flags & HELD_REASONS
    assert not result.actionable
    assert_matches_reference(both)
