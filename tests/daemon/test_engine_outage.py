"""The engine loop loses PostgreSQL (a TCP proxy cuts it) in the middle of a price crash:
cycles go on in memory, nothing is lost, and the writer's retry stores every transition
exactly once when the database is back, although nothing changes after the crash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest
import sqlalchemy as sa

from chains.blocks import BlockRef
from chains.watcher import BalanceUpdate, Reading
from core.domain import Role
from daemon.config.model import MqttConfig
from daemon.cycle_writer import CycleWriter
from daemon.engine_loop import EngineEvent, EngineLoop, PositionsChanged, PricesChanged
from daemon.mqtt.publisher import MqttPublisher
from daemon.store.migrate import migrate
from daemon.store.writer import HealthStore
from margin.engine import MarginEngine
from margin.model import ChainInput, Flag, Position, Tier, TokenRisk
from oracles.aggregate import AssetAggregator
from oracles.model import OracleParams, SourceQuote
from tests.storekit import postgres_database
from tests.tcpproxy import TcpProxy

WETH = "0x" + "e7" * 20  # collateral on l1
DEBT = "0x" + "d5" * 20  # debt on l2
ACCOUNTS = [f"0x{i:040x}" for i in range(1, 6)]
WAIT_S = 30.0


def update(chain: str, token: str, raw: int, number: int) -> BalanceUpdate:
    block = BlockRef(number=number, hash=f"0x{number:064x}", parent_hash="0x0", timestamp=0)
    readings = {(a, token): Reading(raw, number, block.hash) for a in ACCOUNTS}
    return BalanceUpdate(chain=chain, block=block, readings=readings)


def prices(eth: int) -> PricesChanged:
    now = time.time()
    result = {}
    for symbol, answer in (("ETH", eth), ("USDC", 1)):
        aggregator = AssetAggregator(symbol=symbol, params=OracleParams(min_sources=1))
        quote = SourceQuote.chainlink(
            "feed", answer=answer * 10**8, decimals=8, updated_at=int(now), max_age_s=60
        )
        result[symbol] = aggregator.round([quote], now)
    return PricesChanged(result)


def engine() -> MarginEngine:
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
            ChainInput(name="l1", liquidation_latency_s=1),
            ChainInput(name="l2", liquidation_latency_s=1),
        ],
    )


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[HealthStore, TcpProxy]]:
    async with postgres_database() as url:
        await migrate(url)
        direct = sa.make_url(url)
        assert direct.host is not None
        assert direct.port is not None
        async with TcpProxy(direct.host, direct.port) as proxy:
            through = direct.set(port=proxy.port).render_as_string(hide_password=False)
            async with await HealthStore.open(through) as store:
                yield store, proxy


def readiness_loop(store: HealthStore, publisher: MqttPublisher) -> EngineLoop:
    """An engine loop on ``engine()`` that needs both chains and both assets for a complete
    valuation."""
    return EngineLoop(
        engine=engine(),
        store=store,
        publisher=publisher,
        value_decimals=2,
        required_chains=["l1", "l2"],
        required_assets=["ETH", "USDC"],
    )


async def test_a_cut_database_loses_nothing_and_stores_each_transition_once(
    proxied: tuple[HealthStore, TcpProxy],
) -> None:
    store, proxy = proxied
    async with MqttPublisher(MqttConfig()) as publisher:  # MQTT off
        loop = readiness_loop(store, publisher)
        # 1 WETH x 2000 x 0.8 = 1600 against 1500: healthy, stored, silent.
        await loop.cycle(
            [prices(2000), update("l1", WETH, 10**18, 10), update("l2", DEBT, 1500 * 10**6, 10)]
        )
        assert not loop.writer.pending
        assert await store.queries.transitions() == []

        # A position stored just before the cut: its reload fails, and is retried later.
        short = Position(
            account=ACCOUNTS[-1],
            asset="ETH",
            chain="l1",
            size=-0.01,
            entry_price=2000.0,
            mmr_tiers=(Tier(0.01),),
        )
        await store.replace_positions(ACCOUNTS[-1], [short])

        proxy.cut()
        await loop.cycle([PositionsChanged(ACCOUNTS[-1])])  # must not stop the engine
        await loop.cycle([prices(1800)])  # 1440 against 1500: all five under water
        assert loop.writer.failing
        assert loop.writer.pending.accounts == len(ACCOUNTS)
        assert (await _health(loop, ACCOUNTS[0])) & Flag.LIQUIDATABLE  # memory moved on
        # A new block with the same readings: applied in memory, kept for the store.
        await loop.cycle([update("l1", WETH, 10**18, 11)])
        assert loop.writer.pending.balances == len(ACCOUNTS)
        assert loop.writer.pending.rounds == 2
        assert loop.writer.stats.failures >= 1

        await proxy.restore()
        retry = asyncio.create_task(loop.writer.retry())
        try:
            deadline = time.monotonic() + WAIT_S
            while loop.writer.failing or loop.writer.pending:
                assert time.monotonic() < deadline, f"still failing: {loop.writer.stats}"
                await asyncio.sleep(0.1)
        finally:
            retry.cancel()

        stored = await store.queries.transitions()
        assert sorted(t.account for t in stored) == ACCOUNTS
        assert {(t.from_flags, t.to_flags) for t in stored} == {(Flag.NONE, Flag.LIQUIDATABLE)}
        assert (await store.queries.liquidatable_page()).total == len(ACCOUNTS)
        balances = (await store.queries.balances("l1"))["l1"]
        assert {r.block_number for r in balances.values()} == {11}
        eth = await store.queries.price_history("ETH")
        assert [p.price for p in eth] == [Decimal(1800), Decimal(2000)]

        # Nothing changes any more: nothing more is written, nothing twice; the position
        # whose reload failed is applied now.
        await loop.cycle([update("l1", WETH, 10**18, 12)])
        assert await store.queries.transitions() == stored
        positions = loop.engine.account_health(ACCOUNTS[-1]).positions
        assert [(p.asset, p.size) for p in positions] == [("ETH", -0.01)]


async def _health(loop: EngineLoop, account: str) -> Flag:
    index = loop.engine.account_index(account)
    return Flag(int(loop.engine.results.flags[index]))


async def test_a_write_counts_as_unanswered_only_beyond_its_rows_allowance(
    proxied: tuple[HealthStore, TcpProxy],
) -> None:
    """A stalled database: the write in flight is unanswered (``/readyz`` 503) after the wait
    plus an allowance per row written, so a first write of every account and balance at
    start-up is not mistaken for a black hole while a small one still is within seconds."""
    store, proxy = proxied
    wait_s, per_row_s = 0.2, 0.5

    async def written(_accounts: object, _transitions: int) -> None:
        return None

    writer = CycleWriter(
        store,
        build=lambda _accounts: (None, None),
        written=written,
        write_wait_s=wait_s,
        row_allowance_s=per_row_s,
        write_timeout_s=WAIT_S,
    )
    writer.pending.add_balances([update("l1", WETH, 10**18, 10)])
    proxy.pause()
    try:
        assert not await writer.write()  # waited wait_s, the write goes on in the background
        since = writer.stats.writing_since
        assert since is not None
        assert writer.stats.writing_rows == len(ACCOUNTS)
        allowed = wait_s + len(ACCOUNTS) * per_row_s
        assert writer.stalled_s(now=since + allowed - 0.01) == 0.0
        assert writer.stalled_s(now=since + allowed + 0.01) == pytest.approx(allowed + 0.01)
    finally:
        proxy.resume()
    deadline = time.monotonic() + WAIT_S
    while writer.stats.writing_since is not None:
        assert time.monotonic() < deadline, f"write still in flight: {writer.stats}"
        await asyncio.sleep(0.05)
    assert not writer.failing
    assert not writer.pending
    assert writer.stats.writing_rows == 0
    balances = (await store.queries.balances("l1"))["l1"]
    assert {r.block_number for r in balances.values()} == {10}


async def first_valuation_under_a_stall(
    loop: EngineLoop, proxy: TcpProxy, then: Sequence[EngineEvent]
) -> None:
    """The first complete valuation, its write stalled by the paused proxy, then the cycle
    ``then`` while it still stalls; the proxy is resumed before returning."""
    proxy.pause()
    try:
        await loop.cycle(
            [prices(2000), update("l1", WETH, 10**18, 10), update("l2", DEBT, 1500 * 10**6, 10)]
        )  # waits WRITE_WAIT_S, then the write goes on in the background
        assert not loop.valuation_stored
        await loop.cycle(then)
    finally:
        proxy.resume()


async def writes_done(loop: EngineLoop, writes: int, deadline: float) -> None:
    """Wait until the loop's writer completed ``writes`` writes (fail at ``deadline``)."""
    while loop.writer.stats.writes < writes:
        assert time.monotonic() < deadline, f"{writes} writes not done: {loop.writer.stats}"
        await asyncio.sleep(0)


async def test_the_first_valuation_counts_once_its_accounts_are_stored_whatever_else_waits(
    proxied: tuple[HealthStore, TcpProxy],
) -> None:
    """The database stalls under the first valuation's write while price rounds keep coming:
    once that write lands, every account is stored and the daemon may say so, although the
    rounds staged meanwhile are still to be written."""
    store, proxy = proxied
    async with MqttPublisher(MqttConfig()) as publisher:  # MQTT off
        loop = readiness_loop(store, publisher)
        # The round is staged: the write in flight holds the lock.
        await first_valuation_under_a_stall(loop, proxy, [prices(2000)])
        assert loop.writer.pending.rounds == 2
        await writes_done(loop, 1, time.monotonic() + WAIT_S)  # the valuation's, not the rounds'
        assert loop.valuation_stored
        assert loop.writer.pending.accounts == 0
        assert (await store.queries.health(ACCOUNTS[0])) is not None


async def test_accounts_changed_after_the_first_valuation_do_not_hold_readiness_back(
    proxied: tuple[HealthStore, TcpProxy],
) -> None:
    """While the first valuation's write stalls, a price round changes every account: once
    that write lands the valuation is stored (the daemon may say it is ready), although the
    accounts the round changed are still pending (at a million accounts they kept readiness
    back for minutes)."""
    store, proxy = proxied
    async with MqttPublisher(MqttConfig()) as publisher:  # MQTT off
        loop = readiness_loop(store, publisher)
        # 0.8 x 1,800 < 1,500: the round changes every account.
        await first_valuation_under_a_stall(loop, proxy, [prices(1800)])
        assert loop.writer.pending.accounts == len(ACCOUNTS)
        assert not loop.valuation_stored
        deadline = time.monotonic() + WAIT_S
        await writes_done(loop, 1, deadline)
        # The round's accounts are being written now, after the valuation's write.
        assert loop.writer.stats.writes == 1
        assert loop.valuation_stored
        await writes_done(loop, 2, deadline)
        stored = await store.queries.health(ACCOUNTS[0])
        assert stored is not None
        assert stored.flags & Flag.LIQUIDATABLE
