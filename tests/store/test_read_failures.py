"""Failed reads in the store, on real PostgreSQL and SQLite: the failure and the last good
value (with its block) survive a reload and seed the engine; reorgs drop what they orphaned;
unknown health round-trips and is listed; migration 0002 upgrades and downgrades with data."""

from __future__ import annotations

import math

import sqlalchemy as sa

from chains.watcher import Reading
from core.domain import Role
from daemon.config.model import MqttConfig
from daemon.engine_loop import EngineLoop
from daemon.mqtt.publisher import MqttPublisher
from daemon.risk_inputs import price_inputs, stored_holdings
from daemon.store.engine import create_store_engine, write_transaction
from daemon.store.migrate import migrate
from daemon.store.records import StoredState
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import balances
from daemon.store.writer import HealthStore
from margin.engine import MarginEngine
from margin.model import ChainInput, Flag, PriceInput, TokenRisk
from tests.daemon.test_engine_loop import prices
from tests.storekit import (
    BOOK_CHAINS,
    BOOK_TOKENS,
    DUSDC,
    USDC_ARB,
    WETH,
    account_address,
    block,
    update,
)

A, B, C, D = (account_address(i) for i in range(4))
LOOP_WETH, LOOP_DEBT = "0x" + "e7" * 20, "0x" + "d5" * 20  # as in tests/test_engine_loop.py
LOOP_TOKENS = [
    TokenRisk(
        chain="l1", token=LOOP_WETH, asset="ETH", role=Role.COLLATERAL, weight=0.8, decimals=18
    ),
    TokenRisk(
        chain="l2", token=LOOP_DEBT, asset="USDC", role=Role.LIABILITY, weight=1.0, decimals=6
    ),
]
LOOP_CHAINS = [ChainInput(name=n, liquidation_latency_s=1) for n in ("l1", "l2")]


async def reopened_state(store: HealthStore) -> StoredState:
    url = store.engine.url.render_as_string(hide_password=False)
    async with await HealthStore.open(url) as again:
        return await again.load_state()


def seeded_engine(state: StoredState) -> MarginEngine:
    """An engine seeded the way ``daemon.service`` seeds it after a restart."""
    engine = MarginEngine(tokens=BOOK_TOKENS, chains=BOOK_CHAINS)
    engine.set_prices([PriceInput(asset="ETH", price=2_000.0), PriceInput(asset="USDC", price=1.0)])
    engine.load_holdings(stored_holdings(state, BOOK_TOKENS))
    engine.recompute_all()
    return engine


async def test_a_failed_read_keeps_the_last_good_value_across_a_reload(store: HealthStore) -> None:
    await store.apply_balance_update(
        update("eth", block(10), {(A, WETH): 10**18, (A, DUSDC): 1_700 * 10**6, (B, WETH): 10**18})
    )
    # Block 12: A's debt and B's debt cannot be read (B's was never read at all).
    await store.apply_balance_update(update("eth", block(12), {(A, DUSDC): None, (B, DUSDC): None}))

    state = await reopened_state(store)
    eth = state.balances["eth"]
    assert eth[(A, DUSDC)] == Reading(1_700 * 10**6, 10, block(10).hash)  # value and its block
    assert eth[(B, DUSDC)] == Reading(None, 12, block(12).hash)
    assert state.read_failures == {"eth": {(A, DUSDC): 12, (B, DUSDC): 12}}
    record = await store.queries.account(A)
    assert record is not None
    debt = next(b for b in record.balances if b.token == DUSDC)
    assert (debt.raw, debt.block_number, debt.failed_block_number) == (1_700 * 10**6, 10, 12)
    assert debt.read_failed

    # The engine seeded from the store: A at her last good debt, held; B unknown, held.
    engine = seeded_engine(state)
    a, b = engine.account_health(A), engine.account_health(B)
    assert a.health == 1_600 / 1_700
    assert a.flags == Flag.LIQUIDATABLE | Flag.READ_FAILED
    assert not a.actionable
    assert math.isnan(b.health)
    assert b.flags == Flag.READ_FAILED | Flag.DEBT_UNKNOWN
    assert engine.read_failures() == 2

    # A good read clears the failure; older replays (good or failed) change nothing.
    await store.apply_balance_update(update("eth", block(13), {(A, DUSDC): 1_000 * 10**6}))
    await store.apply_balance_update(update("eth", block(12), {(A, DUSDC): None}))
    await store.apply_balance_update(update("eth", block(11), {(B, DUSDC): 5}))
    state = await store.load_state()
    assert state.balances["eth"][(A, DUSDC)] == Reading(1_000 * 10**6, 13, block(13).hash)
    assert state.balances["eth"][(B, DUSDC)] == Reading(None, 12, block(12).hash)
    assert state.read_failures == {"eth": {(B, DUSDC): 12}}
    assert seeded_engine(state).account_health(A).flags == Flag.NONE


async def test_a_failure_that_persists_moves_forward_and_keeps_the_value(
    store: HealthStore,
) -> None:
    await store.apply_balance_update(update("eth", block(5), {(A, DUSDC): 7}))
    for number in (6, 9):
        await store.apply_balance_update(update("eth", block(number), {(A, DUSDC): None}))
    state = await store.load_state()
    assert state.balances["eth"][(A, DUSDC)] == Reading(7, 5, block(5).hash)
    assert state.read_failures["eth"][(A, DUSDC)] == 9


async def test_a_reorg_drops_failures_and_values_from_orphaned_blocks(store: HealthStore) -> None:
    await store.apply_balance_update(
        update("eth", block(8), {(A, DUSDC): 1, (B, DUSDC): 2, (C, DUSDC): 3})
    )
    await store.apply_balance_update(update("eth", block(9), {(C, DUSDC): None}))  # below
    await store.apply_balance_update(
        update("eth", block(12), {(A, DUSDC): None, (B, DUSDC): 22, (D, DUSDC): None})
    )
    await store.apply_balance_update(update("arb", block(12), {(A, USDC_ARB): None}))
    # Blocks above 10 were orphaned; the watcher re-read only A on the new chain (failed).
    await store.apply_balance_update(update("eth", block(11, "f"), {(A, DUSDC): None}, dropped=10))
    state = await store.load_state()
    assert state.balances["eth"] == {
        (A, DUSDC): Reading(1, 8, block(8).hash),  # value from block 8 survives
        (C, DUSDC): Reading(3, 8, block(8).hash),
        # B's value came from block 12 and D never had one: both orphaned, gone
    }
    assert state.read_failures == {
        "eth": {(A, DUSDC): 11, (C, DUSDC): 9},  # A failed again on the new chain, C untouched
        "arb": {(A, USDC_ARB): 12},  # other chains untouched
    }


async def test_unknown_health_round_trips_and_is_listed_held(store: HealthStore) -> None:
    engine = MarginEngine(tokens=BOOK_TOKENS, chains=BOOK_CHAINS)
    engine.set_prices([PriceInput(asset="ETH", price=2_000.0), PriceInput(asset="USDC", price=1.0)])
    engine.set_balance(A, "eth", WETH, 10**18, 10)
    engine.set_balance(A, "eth", DUSDC, 1_700 * 10**6, 10)  # liquidatable, shortfall 100
    engine.set_balance(B, "arb", USDC_ARB, 1_000 * 10**6, 10)
    engine.set_read_failed(B, "eth", DUSDC, 12)  # debt never read: unknown
    engine.set_balance(C, "eth", WETH, 10**18, 10)  # healthy, owes nothing
    healths = [engine.account_health(x) for x in (A, B, C)]
    rows = HealthRows.from_accounts(healths, value_decimals=2)
    written = await store.write_cycle(rows, CycleContext(at=1.0, blocks={"eth": 12}))
    held = {(A, WETH): 10**18, (A, DUSDC): 1_700 * 10**6, (B, DUSDC): None}
    await store.apply_balance_update(update("eth", block(12), held))
    await store.apply_balance_update(update("arb", block(12), {(B, USDC_ARB): 1_000 * 10**6}))

    unknown = await store.queries.health(B)
    assert unknown is not None
    assert math.isnan(unknown.health)
    assert not unknown.health_known
    assert unknown.flags == Flag.READ_FAILED | Flag.DEBT_UNKNOWN
    assert unknown.held_reasons == Flag.READ_FAILED
    assert not unknown.actionable
    no_debt = await store.queries.health(C)
    assert no_debt is not None
    assert no_debt.health == math.inf  # NULL still means infinite without DEBT_UNKNOWN
    assert no_debt.health_known

    listed = await store.queries.liquidatable_page()
    assert [h.account for h in listed.accounts] == [A, B]  # held, listed, never called healthy
    assert listed.total == 2
    actionable = await store.queries.liquidatable_page(actionable_only=True)
    assert actionable.accounts == [listed.accounts[0]]
    # On eth B holds only a debt never read: it may be anything, so B counts as holding there.
    on_eth = await store.queries.liquidatable_page(chain="eth")
    assert [h.account for h in on_eth.accounts] == [A, B]
    on_arb = await store.queries.liquidatable_page(chain="arb")
    assert [h.account for h in on_arb.accounts] == [B]
    transition = next(t for t in written if t.account == B)
    assert math.isnan(transition.health)
    assert transition.to_flags == Flag.READ_FAILED | Flag.DEBT_UNKNOWN

    engine.set_balance(B, "eth", DUSDC, 0, 13)  # read at last: B owes nothing
    healths = [engine.account_health(B)]
    rows = HealthRows.from_accounts(healths, value_decimals=2)
    await store.write_cycle(rows, CycleContext(at=2.0, blocks={"eth": 13}))
    known = await store.queries.health(B)
    assert known is not None
    assert (known.health, known.flags) == (math.inf, Flag.NONE)
    assert [h.account for h in (await store.queries.liquidatable_page()).accounts] == [A]


async def test_token_decimals_are_remembered(store: HealthStore) -> None:
    await store.record_token_decimals("eth", {WETH: 18, DUSDC: 6})
    await store.record_token_decimals("arb", {USDC_ARB: 6})
    await store.record_token_decimals("eth", {DUSDC: 8})  # re-established differently
    await store.record_token_decimals("eth", {})
    state = await reopened_state(store)
    assert state.token_decimals == {"eth": {WETH: 18, DUSDC: 8}, "arb": {USDC_ARB: 6}}


# ---- migration 0002 with data ----------------------------------------------------------------


async def test_migration_0002_turns_old_null_reads_into_failures_and_back(
    database_url: str,
) -> None:
    await migrate(database_url, "0001")
    engine = create_store_engine(database_url)
    try:
        async with write_transaction(engine) as conn:
            # Only 0001's columns: a failed read was stored as raw NULL.
            for account, raw in ((A, None), (B, 5)):
                await conn.execute(
                    sa.insert(balances).values(
                        chain="eth",
                        token=DUSDC,
                        account=account,
                        raw=raw,
                        block_number=7,
                        block_hash=block(7).hash,
                        updated_at=1.0,
                    )
                )
    finally:
        await engine.dispose()

    await migrate(database_url, "0002")
    async with await HealthStore.open(database_url, check_schema=False) as store:
        # Read the parts 0002 holds (``load_state`` also reads tables of later revisions).
        stored, failures = await store.queries.balances(), await store.queries.read_failures()
        assert stored["eth"] == {
            (A, DUSDC): Reading(None, 7, block(7).hash),
            (B, DUSDC): Reading(5, 7, block(7).hash),
        }
        assert failures == {"eth": {(A, DUSDC): 7}}  # a failed read without a value
        await store.record_token_decimals("eth", {DUSDC: 6})
        await store.apply_balance_update(update("eth", block(8), {(B, DUSDC): None}))

    await migrate(database_url, "0001")
    engine = create_store_engine(database_url)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("balances")}
            )
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            rows = (
                await conn.execute(sa.text("SELECT account, raw FROM balances ORDER BY account"))
            ).all()
    finally:
        await engine.dispose()
    assert "failed_block_number" not in columns
    assert "token_decimals" not in tables
    # B's last good value stays: 0001 reads it as a value, closer than nothing.
    assert [(account, None if raw is None else int(raw)) for account, raw in rows] == [
        (A, None),
        (B, 5),
    ]


# ---- the engine loop and a restart agree -----------------------------------------------------


async def test_engine_loop_and_a_restart_agree_after_a_reorg_with_failed_reads(
    store: HealthStore,
) -> None:
    def fresh_engine() -> MarginEngine:
        return MarginEngine(tokens=LOOP_TOKENS, chains=LOOP_CHAINS)

    async with MqttPublisher(MqttConfig()) as publisher:  # MQTT off: nothing to connect to
        loop = EngineLoop(
            engine=fresh_engine(),
            store=store,
            publisher=publisher,
            value_decimals=2,
            required_chains=["l1", "l2"],
            required_assets=["ETH", "USDC"],
        )
        collateral = {(x, LOOP_WETH): 10**18 for x in (A, B, C)}
        market = prices()
        await loop.cycle([market, update("l1", block(5), collateral)])
        await loop.cycle([update("l2", block(5), {(C, LOOP_DEBT): 1_500 * 10**6})])
        debts = {(A, LOOP_DEBT): 1_700 * 10**6, (B, LOOP_DEBT): 1_700 * 10**6}
        await loop.cycle([update("l2", block(12), debts)])
        # Blocks above 10 were orphaned: A's re-read fails (her value came from block 12: gone),
        # B's succeeds, C's fails too (her value from block 5 stands).
        reread = {(A, LOOP_DEBT): None, (B, LOOP_DEBT): 1_400 * 10**6, (C, LOOP_DEBT): None}
        await loop.cycle([update("l2", block(11, "f"), reread, dropped=10)])

    live = {x: loop.engine.account_health(x) for x in (A, B, C)}
    assert live[A].flags == Flag.READ_FAILED | Flag.DEBT_UNKNOWN
    assert live[B].flags == Flag.NONE
    assert live[C].flags == Flag.READ_FAILED
    assert live[C].health == 1_600 / 1_500

    restarted = fresh_engine()
    state = await store.load_state()
    restarted.load_holdings(stored_holdings(state, LOOP_TOKENS))
    restarted.set_prices(price_inputs(market.prices.values()))  # the same market
    restarted.recompute_all()
    for x in (A, B, C):
        assert restarted.account_health(x) == live[x], x
    stored = {x: await store.queries.health(x) for x in (A, C)}
    assert stored[A] is not None
    assert not stored[A].health_known
    assert stored[C] is not None
    assert stored[C].flags == Flag.READ_FAILED
