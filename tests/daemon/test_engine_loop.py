"""The engine loop on a real SQLite store: no false events before every chain was read."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chains.blocks import BlockRef
from chains.watcher import BalanceUpdate, Reading
from core.domain import Role
from daemon.config.model import MqttConfig
from daemon.engine_loop import EngineLoop, PricesChanged, largest_shortfalls
from daemon.mqtt.publisher import MqttPublisher
from daemon.risk_inputs import steady_volatility
from daemon.store.migrate import migrate
from daemon.store.writer import HealthStore
from margin.engine import MarginEngine
from margin.model import ChainInput, Flag, PriceInput, TokenRisk
from oracles.aggregate import AssetAggregator
from oracles.model import OracleParams, SourceQuote

WETH = "0x" + "e7" * 20  # collateral on l1
DEBT = "0x" + "d5" * 20  # debt on l2
ACCOUNTS = [f"0x{i:040x}" for i in range(1, 6)]


def update(chain: str, token: str, raw: int, number: int) -> BalanceUpdate:
    block = BlockRef(number=number, hash=f"0x{number:064x}", parent_hash="0x0", timestamp=0)
    readings = {(a, token): Reading(raw, number, block.hash) for a in ACCOUNTS}
    return BalanceUpdate(chain=chain, block=block, readings=readings)


def prices() -> PricesChanged:
    now = time.time()
    result = {}
    for symbol, answer in (("ETH", 2000), ("USDC", 1)):
        aggregator = AssetAggregator(symbol=symbol, params=OracleParams(min_sources=1))
        quote = SourceQuote.chainlink(
            "feed", answer=answer * 10**8, decimals=8, updated_at=int(now), max_age_s=60
        )
        result[symbol] = aggregator.round([quote], now)
    return PricesChanged(result)


async def sqlite_store(tmp_path: Path) -> str:
    """A migrated SQLite store in ``tmp_path``; its URL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    await migrate(url)
    return url


def two_chain_engine(latency_s: float = 1) -> MarginEngine:
    """WETH collateral (weight 0.8) on l1, USDC debt on l2, one second of latency each."""
    return MarginEngine(
        tokens=[
            TokenRisk(
                chain="l1", token=WETH, asset="ETH", role=Role.COLLATERAL, weight=0.8, decimals=18
            ),
            TokenRisk(
                chain="l2", token=DEBT, asset="USDC", role=Role.LIABILITY, weight=1.0, decimals=6
            ),
        ],
        chains=[
            ChainInput(name="l1", liquidation_latency_s=latency_s),
            ChainInput(name="l2", liquidation_latency_s=latency_s),
        ],
    )


@contextlib.asynccontextmanager
async def engine_loop(
    url: str,
    engine: MarginEngine,
    *,
    required_chains: Sequence[str] = ("l1", "l2"),
    **options: Any,
) -> AsyncIterator[tuple[EngineLoop, HealthStore]]:
    """An engine loop on the store at ``url`` with MQTT off (nothing to connect to)."""
    async with (
        await HealthStore.open(url) as store,
        MqttPublisher(MqttConfig()) as publisher,
    ):
        yield (
            EngineLoop(
                engine=engine,
                store=store,
                publisher=publisher,
                value_decimals=2,
                required_chains=list(required_chains),
                required_assets=["ETH", "USDC"],
                **options,
            ),
            store,
        )


async def test_nothing_is_valued_or_published_before_every_chain_was_read(
    tmp_path: Path,
) -> None:
    url = await sqlite_store(tmp_path)
    engine = two_chain_engine()
    async with engine_loop(
        url,
        engine,
        write_chunk_accounts=2,  # the first valuation's 5 accounts in 3 transactions
    ) as (loop, store):
        # The debt chain and the prices arrive first: 1,500 of debt and no collateral yet.
        await loop.cycle([prices(), update("l2", DEBT, 1500 * 10**6, 10)])
        assert not loop.warm()
        assert await store.queries.transitions() == []
        assert await store.queries.health(ACCOUNTS[0]) is None
        # ... but the inputs are stored: nothing read is lost while warming up.
        stored = await store.queries.balances("l2")
        assert stored["l2"][(ACCOUNTS[0], DEBT)].raw == 1500 * 10**6
        assert set(await store.queries.latest_prices()) == {"ETH", "USDC"}

        # The collateral chain: 1 WETH x 2000 x 0.8 = 1600 against 1500. Healthy, no event.
        # A large sweep comes in parts (``sweep_parts``): the chain is read after the last.
        whole = update("l1", WETH, 10**18, 20)
        first, rest = ACCOUNTS[:2], ACCOUNTS[2:]
        part = {p: r for p, r in whole.readings.items() if p[0] in first}
        await loop.cycle([dataclasses.replace(whole, readings=part, partial=True)])
        assert not loop.warm()
        assert await store.queries.health(ACCOUNTS[0]) is None
        stored = await store.queries.balances("l1")
        assert (ACCOUNTS[0], WETH) in stored["l1"]
        last = {p: r for p, r in whole.readings.items() if p[0] in rest}
        writes = loop.writer.stats.writes
        await loop.cycle([dataclasses.replace(whole, readings=last)])
        assert loop.warm()
        assert loop.valuation_stored  # every chunk of the first valuation is in
        assert loop.writer.stats.writes - writes == 3  # 2 + 2 + 1 accounts
        for account in ACCOUNTS:
            assert await store.queries.health(account) is not None
        health = await store.queries.health(ACCOUNTS[0])
        assert health is not None
        assert health.flags == Flag.NONE
        # The collateral balances went in with the health they produced (one transaction).
        assert (await store.queries.balances("l1"))["l1"][(ACCOUNTS[0], WETH)].raw == 10**18
        assert all(t.to_flags == Flag.NONE for t in await store.queries.transitions())


async def test_a_timed_out_warm_up_is_not_a_stored_valuation(tmp_path: Path) -> None:
    """At a million accounts the first read of a chain outlasts the warm-up: the cycle that
    times it out values nobody, and the daemon must not call that its first valuation."""
    url = await sqlite_store(tmp_path)
    engine = two_chain_engine()
    async with engine_loop(
        url,
        engine,
        warmup_timeout_s=0.0,
    ) as (loop, store):
        await loop.cycle([prices(), update("l2", DEBT, 1500 * 10**6, 10)])
        assert loop.warm()  # timed out: l1 is still being read
        assert not loop.valuation_stored
        await loop.cycle([update("l1", WETH, 10**18, 20)])
        assert loop.valuation_stored
        health = await store.queries.health(ACCOUNTS[0])
        assert health is not None
        assert health.flags == Flag.NONE


async def test_the_warm_up_waits_longer_for_more_pairs(tmp_path: Path) -> None:
    """A first sweep of millions of pairs is not a dead chain: the warm-up's deadline grows
    with the watched pairs, so the first valuation waits for it."""
    url = await sqlite_store(tmp_path)
    engine = MarginEngine(
        tokens=[
            TokenRisk(
                chain="l1", token=WETH, asset="ETH", role=Role.COLLATERAL, weight=0.8, decimals=18
            ),
        ],
        chains=[ChainInput(name="l1", liquidation_latency_s=1)],
    )
    async with engine_loop(
        url,
        engine,
        required_chains=["l1"],
        warmup_timeout_s=0.0,
        watched_pairs=10_000_000,  # 1,000 s of allowance
    ) as (loop, _store):
        await loop.cycle([prices()])
        assert not loop.warm()  # l1 is still being read: not timed out
        await loop.cycle([update("l1", WETH, 10**18, 20)])
        assert loop.warm()


async def test_breakdowns_go_to_the_largest_shortfalls(tmp_path: Path) -> None:
    """More accounts flagged in one write than get a breakdown: the stored breakdowns are
    those of the largest shortfalls (what keepers go for), not of the first accounts."""
    url = await sqlite_store(tmp_path)
    engine = two_chain_engine()
    # 1 WETH x 2,000 x 0.8 = 1,600 against debts of 1,700 … 2,100: all liquidatable, the
    # shortfall growing with the debt. The largest debts are not the first accounts.
    debts = dict(zip(ACCOUNTS, (2_000, 1_700, 2_100, 1_800, 1_900), strict=True))
    block = BlockRef(number=10, hash=f"0x{10:064x}", parent_hash="0x0", timestamp=0)
    debt_update = BalanceUpdate(
        chain="l2",
        block=block,
        readings={(a, DEBT): Reading(d * 10**6, 10, block.hash) for a, d in debts.items()},
    )
    async with engine_loop(url, engine) as (loop, store):
        loop.breakdown_limit = 2
        await loop.cycle([prices(), debt_update, update("l1", WETH, 10**18, 20)])
        stored = {a: await store.queries.health(a) for a in ACCOUNTS}
        assert all(h is not None and Flag.LIQUIDATABLE in h.flags for h in stored.values())
        with_breakdown = {a for a, h in stored.items() if h is not None and h.breakdown}
        assert with_breakdown == {ACCOUNTS[0], ACCOUNTS[2]}  # debts 2,000 and 2,100


def with_volatility(changed: PricesChanged, symbol: str, volatility: float) -> PricesChanged:
    """``changed`` with ``symbol``'s round carrying another volatility (a later round)."""
    price = changed.prices[symbol]
    later = dataclasses.replace(price, volatility=volatility, round_at=price.round_at + 1)
    return PricesChanged({**changed.prices, symbol: later})


async def test_a_volatility_decay_below_a_step_revalues_nobody(tmp_path: Path) -> None:
    """After a move the volatility decays a little every round while the price stands still:
    below ``VOLATILITY_DECAY_STEP`` no account is revalued or rewritten (at a million accounts
    that was every account every round); a larger decay or any rise is taken."""
    url = await sqlite_store(tmp_path)
    engine = two_chain_engine(latency_s=3600)  # a shock of ~1 %: cents move with σ
    async with engine_loop(url, engine) as (loop, store):
        start = with_volatility(prices(), "ETH", 0.5)
        await loop.cycle([start, update("l2", DEBT, 1500 * 10**6, 10)])
        await loop.cycle([update("l1", WETH, 10**18, 20)])
        first = await store.queries.health(ACCOUNTS[0])
        assert first is not None
        assert first.health_latency is not None
        cycle = await store.queries.last_cycle()
        assert cycle is not None

        async def stored_after(volatility: float) -> tuple[int, float | None]:
            await loop.cycle([with_volatility(start, "ETH", volatility)])
            last, health = await store.queries.last_cycle(), await store.queries.health(ACCOUNTS[0])
            assert last is not None
            assert health is not None
            return last.id, health.health_latency

        assert await stored_after(0.5 * 0.995) == (cycle.id, first.health_latency)
        assert engine.dirty_accounts().size == 0
        later, latency = await stored_after(0.5 * 0.98)  # a decay past the step: taken
        assert later > cycle.id
        assert latency is not None
        assert latency > first.health_latency  # a smaller shock: more latency health
        risen, _ = await stored_after(0.6)  # a rise: taken
        assert risen > later


def test_steady_volatility_keeps_a_small_decay_only() -> None:
    held = PriceInput(asset="ETH", price=2_000.0, volatility=0.5)
    applied = {"ETH": held}

    def vol(new: float, price: float = 2_000.0) -> float:
        given = PriceInput(asset="ETH", price=price, volatility=new)
        (out,) = steady_volatility([given], applied, step=0.01)
        assert out.price == price
        return out.volatility

    assert vol(0.5 * 0.99) == 0.5  # a decay of exactly the step: kept
    assert vol(0.5 * 0.9899) == 0.5 * 0.9899
    assert vol(0.5 * 0.999, price=1_800.0) == 0.5  # the price moves on, the volatility is kept
    assert vol(0.51) == 0.51
    other = PriceInput(asset="BTC", price=1.0, volatility=0.1)
    assert steady_volatility([other], applied) == [other]  # never applied: as given


def test_largest_shortfalls_keeps_row_order_and_breaks_ties_by_row() -> None:
    rows = np.array([1, 3, 4, 7, 9], dtype=np.intp)
    shortfall = np.zeros(10)
    shortfall[[1, 3, 4, 7, 9]] = [5.0, 9.0, 5.0, 1.0, 9.0]
    assert largest_shortfalls(rows, shortfall, 3).tolist() == [1, 3, 9]
    assert largest_shortfalls(rows, shortfall, 5).tolist() == [1, 3, 4, 7, 9]
    assert largest_shortfalls(rows, shortfall, 0).tolist() == []
