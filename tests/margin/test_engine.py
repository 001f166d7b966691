"""The numpy engine against the oracle and the reference, incremental against full, and what a
change touches.

Every result is checked against the independent oracle (``tests/margin_oracle.py``, which
shares no code with ``margin``). Against the reference equality is exact: the engine is built
so that a full recompute, an incremental one and ``margin.health.evaluate_account`` agree bit
for bit (``margin.valuation``).
"""

from __future__ import annotations

import math
import random
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
from tests.margin import margin_oracle as oracle
from tests.margin.marginkit import (
    REFERENCE_MODELS,
    assert_reference_matches,
    assert_row_matches,
    oracle_market,
    oracle_perp,
)

C, L = Role.COLLATERAL, Role.LIABILITY
TIERS_A = (Tier(0.9, 1_000), Tier(0.5, 50_000), Tier(0.2))
TIERS_B = (Tier(0.8, 10_000), Tier(0.7))
TOKENS = [
    TokenRisk(
        chain="eth", token="weth", asset="ETH", role=C, weight=0.8, decimals=18, tiers=TIERS_A
    ),
    TokenRisk(
        chain="arb", token="weth", asset="ETH", role=C, weight=0.8, decimals=18, tiers=TIERS_A
    ),
    TokenRisk(
        chain="base", token="weth", asset="ETH", role=C, weight=0.75, decimals=18, tiers=TIERS_B
    ),
    TokenRisk(chain="eth", token="usdc", asset="USDC", role=C, weight=0.95, decimals=6),
    TokenRisk(
        chain="arb", token="usdc", asset="USDC", role=C, weight=0.9, decimals=6, tiers=TIERS_B
    ),
    TokenRisk(chain="eth", token="wbtc", asset="BTC", role=C, weight=0.7, decimals=8),
    TokenRisk(chain="eth", token="deth", asset="ETH", role=L, weight=1.05, decimals=18),
    TokenRisk(chain="eth", token="dusdc", asset="USDC", role=L, weight=1.0, decimals=6),
    TokenRisk(chain="arb", token="ddai", asset="DAI", role=L, weight=1.1, decimals=18),
    TokenRisk(chain="base", token="dusdc", asset="USDC", role=L, weight=1.0, decimals=6),
]
TOKEN_MAP = {t.key: t for t in TOKENS}
ASSETS = ("ETH", "USDC", "DAI", "BTC", "SOL")  # SOL: positions only
CHAINS = [
    ChainInput(name="eth", liquidation_latency_s=900),
    ChainInput(name="arb", liquidation_latency_s=3_600),
    ChainInput(name="base", liquidation_latency_s=60),
]
MMR = ((Tier(0.005, 50_000), Tier(0.01, 500_000), Tier(0.025)), (Tier(0.03),))
MONEY = (
    "collateral_value",
    "weighted_collateral",
    "liability_value",
    "weighted_liability",
    "unrealized_pnl",
    "maintenance",
    "shortfall",
)


class Mirror:
    """The test's own record of every input, evaluated with the reference."""

    def __init__(self, params: EngineParams) -> None:
        self.params = params
        self.balances: dict[str, dict[tuple[str, str], tuple[int, int]]] = {}
        self.positions: dict[str, dict[str, Position]] = {}
        self.prices: dict[str, PriceInput] = {}
        self.chains = {c.name: c for c in CHAINS}

    def health(self, account: str) -> AccountHealth:
        holdings = [
            Holding(account=account, chain=c, token=t, raw=raw, block=block)
            for (c, t), (raw, block) in self.balances.get(account, {}).items()
        ]
        return evaluate_account(
            account,
            holdings,
            list(self.positions.get(account, {}).values()),
            tokens=TOKEN_MAP,
            prices=self.prices,
            chains=self.chains,
            params=self.params,
        )


class Both:
    """An engine and its mirror, fed the same changes."""

    def __init__(self, model: MarginModel) -> None:
        params = EngineParams(model=model)
        self.engine = MarginEngine(tokens=TOKENS, chains=CHAINS, params=params)
        self.mirror = Mirror(params)

    def balance(self, account: str, token: TokenRisk, raw: int, block: int = 1) -> None:
        self.engine.set_balance(account, token.chain, token.token, raw, block)
        self.mirror.balances.setdefault(account, {})[token.key] = (raw, block)

    def price(self, price: PriceInput) -> np.ndarray:
        self.mirror.prices[price.asset] = price
        return self.engine.set_prices([price])

    def chain(self, chain: ChainInput) -> np.ndarray:
        self.mirror.chains[chain.name] = chain
        return self.engine.set_chain_status([chain])

    def position(self, position: Position) -> None:
        self.engine.set_position(position)
        self.mirror.positions.setdefault(position.account, {})[position.asset] = position


def assert_same_table(a: HealthTable, b: HealthTable) -> None:
    for name, column in a.columns().items():
        assert np.array_equal(column, b.columns()[name]), name


def assert_matches_reference(both: Both) -> None:
    """The numpy results against the independent oracle and, bit for bit, the reference; the
    engine's breakdown (``account_health``) against its numpy results and the test's inputs."""
    table = both.engine.results
    params = both.mirror.params
    market = oracle_market(TOKENS, both.mirror.prices, both.mirror.chains, params)
    for i, account in enumerate(both.engine.accounts):
        balances = both.mirror.balances.get(account, {})
        positions = list(both.mirror.positions.get(account, {}).values())
        want = oracle.evaluate(
            market,
            {key: raw for key, (raw, _) in balances.items()},
            [oracle_perp(p) for p in positions],
        )
        assert_row_matches(table, i, want, f"engine {account}")
        ref = both.mirror.health(account)
        assert_reference_matches(ref, want, params.value_decimals)
        for name in MONEY:
            units = getattr(ref, name).scaleb(params.value_decimals)
            assert units == Decimal(float(getattr(table, name)[i])), (account, name)
        assert ref.health == table.health[i], account
        assert ref.health_latency == table.health_latency[i], account
        assert ref.flags == Flag(int(table.flags[i])), account
        assert ref.actionable == bool(table.actionable[i]), account
        # the breakdown keepers see is built from the engine's stored inputs: it must show the
        # numbers of the numpy results the daemon acts on, lines the oracle agrees with, and
        # the raws and blocks the engine was given
        shown = both.engine.account_health(account)
        assert_reference_matches(shown, want, params.value_decimals)
        for name in MONEY:
            units = getattr(shown, name).scaleb(params.value_decimals)
            assert units == Decimal(float(getattr(table, name)[i])), (account, name)
        assert (shown.health, shown.health_latency) == (table.health[i], table.health_latency[i])
        assert (shown.flags, shown.actionable) == (Flag(int(table.flags[i])), table.actionable[i])
        lines = {(h.chain, h.token): (h.raw, h.block) for h in shown.holdings}
        assert lines == {key: given for key, given in balances.items() if given[0]}, account
        assert {p.asset for p in shown.positions} == {p.asset for p in positions if p.size}
        # built from the engine's rows, the breakdown equals the reference's line for line
        assert (shown.holdings, shown.positions) == (ref.holdings, ref.positions), account


def random_price(rng: random.Random, asset: str) -> PriceInput:
    price = 10 ** rng.uniform(-3, 5)
    band = rng.choice([0.0, 0.0, 0.01])
    return PriceInput(
        asset=asset,
        price=price,
        price_low=price * (1 - band),
        price_high=price * (1 + band),
        status=rng.choice([PriceStatus.OK] * 6 + list(PriceStatus)),
        volatility=rng.uniform(0, 2),
    )


def random_raw(rng: random.Random, token: TokenRisk) -> int:
    roll = rng.random()
    if roll < 0.1:
        return 0
    if roll < 0.15:
        return rng.randrange(2**256)
    return rng.randrange(10 ** (token.decimals + rng.randrange(0, 7)))


def populate(both: Both, rng: random.Random, accounts: int) -> None:
    for asset in ASSETS[:-1]:
        both.price(random_price(rng, asset))
    for i in range(accounts):
        account = f"0x{i:040x}"
        for token in rng.sample(TOKENS, rng.randrange(0, 6)):
            both.balance(account, token, random_raw(rng, token), block=i)
        if rng.random() < 0.3:
            both.position(
                Position(
                    account=account,
                    asset=rng.choice(ASSETS),
                    chain=rng.choice(CHAINS).name,
                    size=rng.uniform(-50, 50),
                    entry_price=10 ** rng.uniform(-3, 5),
                    mmr_tiers=rng.choice(MMR),
                )
            )


@pytest.mark.parametrize("model", list(REFERENCE_MODELS))
def test_full_recompute_equals_the_reference_for_every_account(model: MarginModel) -> None:
    both = Both(model)
    populate(both, random.Random(7), accounts=300)
    both.chain(ChainInput(name="arb", liquidation_latency_s=7_200, sequencer_down=True))
    both.price(PriceInput(asset="BTC", price=60_000.0, volatility=0.8))
    both.price(PriceInput(asset="USDC", price=1.0, volatility=0.01))
    for k in range(5):  # just above health 1: a 15-minute BTC shock sinks them
        both.balance(f"near{k}", TOKEN_MAP[("eth", "wbtc")], 10**8)
        debt = 60_000 * 0.7 / (1.001 + k / 1000)
        both.balance(f"near{k}", TOKEN_MAP[("eth", "dusdc")], int(debt * 10**6))
    both.engine.recompute_all()
    assert_matches_reference(both)
    flags = both.engine.results.flags
    # the population exercises the interesting cases
    assert (flags & Flag.LIQUIDATABLE).any()
    assert (flags & Flag.LATENCY_RISK).any()
    assert both.engine.results.actionable.any()
    assert np.isinf(both.engine.results.health).any()


@pytest.mark.parametrize("model", list(REFERENCE_MODELS))
def test_incremental_recompute_of_a_batch_equals_full(model: MarginModel) -> None:
    both = Both(model)
    rng = random.Random(11)
    populate(both, rng, accounts=200)
    both.engine.recompute_all()
    for _ in range(20):
        for _ in range(10):
            token = rng.choice(TOKENS)
            both.balance(f"0x{rng.randrange(220):040x}", token, random_raw(rng, token))
        both.price(random_price(rng, rng.choice(ASSETS)))
        done = both.engine.recompute_dirty(full_fraction=math.inf)
        assert len(both.engine.dirty_accounts()) == 0
        assert len(done) < len(both.engine.accounts)
        incremental = both.engine.results.select(slice(None))
        assert_same_table(incremental, both.engine.recompute_all())
    assert_matches_reference(both)


# ---- hypothesis: any sequence of changes ----------------------------------------------------

ACCOUNTS = [f"0x{i:040x}" for i in range(5)]
raws = st.one_of(st.just(0), st.integers(0, 10**25), st.integers(0, 2**256 - 1))


@st.composite
def price_changes(draw: st.DrawFn) -> PriceInput:
    price = draw(st.floats(1e-3, 1e5))
    band = draw(st.sampled_from([0.0, 0.02]))
    return PriceInput(
        asset=draw(st.sampled_from(ASSETS)),
        price=price,
        price_low=price * (1 - band),
        price_high=price * (1 + band),
        status=draw(st.sampled_from(PriceStatus)),
        volatility=draw(st.floats(0, 2)),
    )


changes = st.one_of(
    st.tuples(st.just("balance"), st.sampled_from(ACCOUNTS), st.sampled_from(TOKENS), raws),
    st.tuples(st.just("price"), price_changes()),
    st.tuples(
        st.just("chain"),
        st.builds(
            ChainInput,
            name=st.sampled_from([c.name for c in CHAINS]),
            liquidation_latency_s=st.sampled_from([0.0, 60.0, 86_400.0]),
            stale=st.booleans(),
            sequencer_down=st.booleans(),
            last_block=st.integers(0, 10),
        ),
    ),
    st.tuples(
        st.just("position"),
        st.builds(
            Position,
            account=st.sampled_from(ACCOUNTS),
            asset=st.sampled_from(ASSETS),
            chain=st.sampled_from([c.name for c in CHAINS]),
            size=st.one_of(st.just(0.0), st.floats(-1e3, 1e3)),
            entry_price=st.floats(0, 1e5),
            mmr_tiers=st.sampled_from(MMR),
        ),
    ),
)


def apply(both: Both, change: tuple[object, ...]) -> None:
    kind = change[0]
    if kind == "balance":
        _, account, token, raw = change
        both.balance(account, token, raw)  # type: ignore[arg-type]
    elif kind == "price":
        both.price(change[1])  # type: ignore[arg-type]
    elif kind == "chain":
        both.chain(change[1])  # type: ignore[arg-type]
    else:
        both.position(change[1])  # type: ignore[arg-type]


# no shrinking: a failing example is reported as drawn (its inputs are named), and a
# mutant (`make mutate`) must not keep a run shrinking for minutes
@settings(deadline=None, max_examples=50, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.sampled_from(REFERENCE_MODELS), st.lists(changes, min_size=1, max_size=25))
def test_incremental_equals_full_after_any_sequence_of_changes(
    model: MarginModel, sequence: list[tuple[object, ...]]
) -> None:
    incremental, full = Both(model), Both(model)
    for change in sequence:
        apply(incremental, change)
        apply(full, change)
        incremental.engine.recompute_dirty(full_fraction=math.inf)
        assert_same_table(incremental.engine.results, full.engine.recompute_all())
    assert_matches_reference(incremental)


# ---- what a change touches -------------------------------------------------------------------


@pytest.fixture
def small() -> Both:
    both = Both(MarginModel.TIERED)
    for asset in ("ETH", "USDC", "DAI"):
        both.price(PriceInput(asset=asset, price=2.0))
    eth_c, arb_eth, usdc, dai = (
        TOKEN_MAP[k] for k in [("eth", "weth"), ("arb", "weth"), ("eth", "usdc"), ("arb", "ddai")]
    )
    both.balance("a0", eth_c, 10**18)  # ETH collateral on eth
    both.balance("a1", arb_eth, 10**18)  # ETH collateral on arb
    both.balance("a2", usdc, 10**6)  # USDC only, on eth
    both.position(
        Position(account="a3", asset="ETH", chain="base", size=1, entry_price=1, mmr_tiers=MMR[1])
    )
    both.balance("a4", eth_c, 0)  # a zero balance still has a row
    both.balance("a5", dai, 10**18)  # DAI debt on arb
    both.engine.recompute_all()
    return both


def names(both: Both, accts: np.ndarray) -> set[str]:
    return {both.engine.accounts[i] for i in accts}


def test_a_price_change_touches_exactly_the_accounts_using_the_asset(small: Both) -> None:
    touched = small.price(PriceInput(asset="ETH", price=3.0))
    assert names(small, touched) == {"a0", "a1", "a3", "a4"}
    assert names(small, small.engine.dirty_accounts()) == {"a0", "a1", "a3", "a4"}
    assert names(small, small.engine.recompute_dirty(full_fraction=math.inf)) == {
        "a0",
        "a1",
        "a3",
        "a4",
    }
    assert len(small.price(PriceInput(asset="ETH", price=3.0))) == 0  # unchanged: nothing
    assert len(small.price(PriceInput(asset="BTC", price=3.0))) == 0  # nobody holds BTC
    assert names(small, small.engine.accounts_using(assets=["DAI"])) == {"a5"}
    assert_matches_reference(small)


def test_a_chain_status_change_touches_the_accounts_on_that_chain(small: Both) -> None:
    touched = small.chain(ChainInput(name="arb", liquidation_latency_s=3_600, stale=True))
    assert names(small, touched) == {"a1", "a5"}
    # a new block alone changes no result
    assert (
        len(
            small.chain(
                ChainInput(name="arb", liquidation_latency_s=3_600, stale=True, last_block=9)
            )
        )
        == 0
    )
    assert names(small, small.chain(ChainInput(name="base", liquidation_latency_s=1))) == {"a3"}
    small.engine.recompute_dirty(full_fraction=math.inf)
    assert_matches_reference(small)


def test_a_balance_change_touches_only_its_account(small: Both) -> None:
    small.balance("a2", TOKEN_MAP[("eth", "usdc")], 5 * 10**6, block=3)
    assert names(small, small.engine.dirty_accounts()) == {"a2"}
    small.balance("a0", TOKEN_MAP[("eth", "weth")], 10**18, block=4)  # same raw, new block
    assert names(small, small.engine.dirty_accounts()) == {"a2"}
    assert names(small, small.engine.recompute_dirty(full_fraction=math.inf)) == {"a2"}
    assert small.engine.account_health("a0").holdings[0].block == 4


def test_recompute_dirty_switches_to_a_full_pass_when_most_accounts_changed(small: Both) -> None:
    small.price(PriceInput(asset="ETH", price=5.0))
    assert len(small.engine.recompute_dirty(full_fraction=0.5)) == len(small.engine.accounts)
    assert_matches_reference(small)


# ---- storage ---------------------------------------------------------------------------------


def test_bulk_load_equals_one_by_one_and_keeps_raw_balances_exact() -> None:
    rng = random.Random(3)
    accounts = [f"0x{i:040x}" for i in range(50)]
    small_raws = np.array([rng.randrange(2**52) for _ in accounts], dtype=np.uint64)
    huge_raws = [rng.randrange(2**256) for _ in accounts]
    bulk, single = Both(MarginModel.TIERED), Both(MarginModel.TIERED)
    for both in (bulk, single):
        both.price(PriceInput(asset="ETH", price=1234.5))
        both.price(PriceInput(asset="USDC", price=0.999))
    weth, usdc = TOKEN_MAP[("arb", "weth")], TOKEN_MAP[("arb", "usdc")]
    bulk.engine.load_balances("arb", "usdc", accounts, small_raws, block=5)
    bulk.engine.load_balances("arb", "weth", accounts, huge_raws, block=5)
    bulk.engine.load_balances("arb", "weth", accounts[:3], [0, 1, 2], block=6)  # existing rows
    for account, small_raw, huge_raw in zip(accounts, small_raws.tolist(), huge_raws, strict=True):
        single.balance(account, usdc, int(small_raw), block=5)
        single.balance(account, weth, huge_raw, block=5)
    for i, account in enumerate(accounts[:3]):
        single.balance(account, weth, i, block=6)
    assert_same_table(bulk.engine.recompute_all(), single.engine.recompute_all())
    bulk.mirror = single.mirror  # the bulk engine was fed behind its mirror's back
    assert_matches_reference(bulk)
    line = {h.token: h for h in bulk.engine.account_health(accounts[10]).holdings}["weth"]
    assert line.raw == huge_raws[10]
    bulk.engine.set_balance(accounts[10], "arb", "weth", 2**256 - 1, 7)
    assert {h.token: h.raw for h in bulk.engine.account_health(accounts[10]).holdings}[
        "weth"
    ] == 2**256 - 1


def test_positions_of_several_accounts_in_an_asset_first_seen_by_a_position() -> None:
    # SOL has no token and no price when three accounts open perps in it, one at a time (each
    # evaluated alone: the first one's market must know SOL), two of them under the same
    # three-tier MMR schedule: unpriced (as the oracle says), then priced at 100 from an entry
    # of 90: PnL 2 · 10 = 20.00, −1.5 · 10 = −15.00 and 4 · 10 = 40.00, each on its own account.
    both = Both(MarginModel.WEIGHTED)
    both.price(PriceInput(asset="USDC", price=1.0))
    for i, (size, mmr) in enumerate([(2.0, MMR[0]), (-1.5, MMR[1]), (4.0, MMR[0])]):
        both.balance(f"p{i}", TOKEN_MAP[("eth", "usdc")], 1_000 * 10**6)
        both.position(
            Position(
                account=f"p{i}", asset="SOL", chain="arb", size=size, entry_price=90.0,
                mmr_tiers=mmr,
            )
        )  # fmt: skip
        both.engine.recompute_dirty(full_fraction=math.inf)
        assert_matches_reference(both)
    both.price(PriceInput(asset="SOL", price=100.0))
    both.engine.recompute_dirty(full_fraction=math.inf)
    assert_matches_reference(both)
    pnl = [both.engine.account_health(f"p{i}").unrealized_pnl for i in range(3)]
    assert pnl == [Decimal("20.00"), Decimal("-15.00"), Decimal("40.00")]


def test_the_first_accounts_two_tokens_of_one_tier_schedule_share_one_bucket() -> None:
    # The first account (its bucket is number 0) holds 1 WETH on eth and 1 on arb, both under
    # TIERS_A: one bucket of 4,000 USD weighs 1,000 · 0.9 + 3,000 · 0.5 = 2,400.00 (two buckets
    # would weigh 2 · (900 + 1,000 · 0.5) = 2,800.00).
    both = Both(MarginModel.TIERED)
    both.price(PriceInput(asset="ETH", price=2_000.0))
    both.balance("t0", TOKEN_MAP[("eth", "weth")], 10**18)
    both.balance("t0", TOKEN_MAP[("arb", "weth")], 10**18)
    both.engine.recompute_all()
    assert_matches_reference(both)
    assert both.engine.account_health("t0").weighted_collateral == Decimal("2400.00")


def test_an_empty_part_of_a_sweep_leaves_the_rows_of_the_token_as_they_are() -> None:
    # ann holds 100 USDC of debt; an empty load of the token, then ann read again at 120: one
    # row, 120.00 owed (not 220.00 in two rows).
    both = Both(MarginModel.WEIGHTED)
    both.price(PriceInput(asset="USDC", price=1.0))
    both.engine.load_balances("eth", "dusdc", ["ann"], [100 * 10**6], 5)
    both.engine.load_balances("eth", "dusdc", [], [], 6)
    both.engine.load_balances("eth", "dusdc", ["ann"], [120 * 10**6], 7)
    both.mirror.balances["ann"] = {("eth", "dusdc"): (120 * 10**6, 7)}
    both.engine.recompute_all()
    assert_matches_reference(both)
    assert both.engine.account_health("ann").liability_value == Decimal("120.00")


def test_a_closed_position_stops_counting() -> None:
    both = Both(MarginModel.WEIGHTED)
    both.price(PriceInput(asset="SOL", price=100.0))
    opened = Position(
        account="a", asset="SOL", chain="eth", size=-10, entry_price=90, mmr_tiers=MMR[1]
    )
    both.position(opened)
    both.engine.recompute_dirty()
    assert both.engine.results.flags[0] & Flag.LIQUIDATABLE  # −100 PnL, nothing else
    both.position(
        Position(account="a", asset="SOL", chain="eth", size=0, entry_price=90, mmr_tiers=MMR[1])
    )
    both.engine.recompute_dirty()
    assert both.engine.results.health[0] == math.inf
    assert both.engine.account_health("a").positions == ()


def test_unknown_inputs_are_refused() -> None:
    engine = MarginEngine(tokens=TOKENS, chains=CHAINS)
    with pytest.raises(MarginInputError):
        engine.set_balance("a", "eth", "nope", 1, 1)
    with pytest.raises(MarginInputError):
        engine.set_balance("a", "eth", "weth", 2**256, 1)
    with pytest.raises(MarginInputError):
        engine.set_position(
            Position(account="a", asset="X", chain="moon", size=1, entry_price=1, mmr_tiers=MMR[1])
        )
    with pytest.raises(MarginInputError):
        engine.account_index("nobody")
    with pytest.raises(MarginInputError):
        MarginEngine(tokens=[TOKENS[0]], chains=CHAINS[1:])  # its chain is not configured
    with pytest.raises(MarginInputError):
        engine.load_balances("eth", "weth", ["a", "a"], [1, 2], block=1)
    with pytest.raises(MarginInputError):
        engine.recompute([99])


def test_dirty_tracking_survives_a_bulk_mark_beyond_the_pending_set() -> None:
    from margin.rows import PENDING_LIMIT

    both = Both(MarginModel.TIERED)
    both.price(PriceInput(asset="USDC", price=1.0))
    accounts = [f"0x{i:040x}" for i in range(PENDING_LIMIT + 100)]
    both.engine.load_balances("arb", "usdc", accounts, [10**6] * len(accounts), block=1)
    assert len(both.engine.dirty_accounts()) == len(accounts)  # found by scanning
    both.engine.recompute(np.arange(10))  # part of them: the rest stays dirty
    assert len(both.engine.dirty_accounts()) == len(accounts) - 10
    assert len(both.engine.recompute_dirty(full_fraction=math.inf)) == len(accounts) - 10
    assert len(both.engine.dirty_accounts()) == 0
    both.engine.set_balance(accounts[7], "eth", "dusdc", 5 * 10**6, 2)
    assert both.engine.dirty_accounts().tolist() == [7]  # tracked one by one again
    both.engine.recompute_dirty()
    assert both.engine.results.health[7] == pytest.approx(0.8 / 5)  # first TIERS_B slice


def test_recompute_takes_any_indices_once_and_rejects_unknown_ones() -> None:
    # found by mutation testing (bench/RESULTS.md): the range check's bound was untested
    engine = MarginEngine(tokens=TOKENS, chains=CHAINS)
    for account in ("a", "b"):
        engine.set_balance(account, "eth", "weth", 10**18, 1)
    assert engine.recompute([1, 0, 1]).tolist() == [0, 1]  # a list, sorted, de-duplicated
    assert engine.recompute(np.array([1], dtype=np.int64)).tolist() == [1]
    for bad in ([2], [-1]):
        with pytest.raises(MarginInputError, match=r"^recompute: account index out of range$"):
            engine.recompute(bad)


def test_tiered_and_flat_collateral_both_count_after_the_latency_shock() -> None:
    # One account, a tiered bucket (1 WETH on eth, TIERS_A) and flat collateral (USDC on eth,
    # 0.95) against a debt: its health after the latency shock counts both (the oracle).
    both = Both(MarginModel.TIERED)
    both.price(PriceInput(asset="ETH", price=2_000.0, volatility=0.6))
    both.price(PriceInput(asset="USDC", price=1.0))
    both.balance("t0", TOKEN_MAP[("eth", "weth")], 10**18)
    both.balance("t0", TOKEN_MAP[("eth", "usdc")], 3_000 * 10**6)
    both.balance("t0", TOKEN_MAP[("eth", "dusdc")], 3_500 * 10**6)
    both.engine.recompute_all()
    assert_matches_reference(both)
    shown = both.engine.account_health("t0")
    # 1,000 · 0.9 + 1,000 · 0.5 + 3,000 · 0.95 = 4,250.00 now; 3,500 owed
    assert (shown.weighted_collateral, shown.weighted_liability) == (
        Decimal("4250.00"),
        Decimal("3500.00"),
    )
    assert 1.0 < shown.health_latency < shown.health
