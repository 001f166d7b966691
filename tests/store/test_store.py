"""The store against real PostgreSQL and SQLite: exact values, idempotent cycles, restart,
reorg roll-back, a reader racing a writer, the read queries, and a 100k-row cycle."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from chains.watcher import Reading
from daemon.store.cycle_transactions import SPLIT_CYCLE_ROWS
from daemon.store.engine import write_transaction
from daemon.store.migrate import migrate
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import (
    account_health,
    balances,
    health_listing,
    health_transitions,
)
from daemon.store.schema import listed as listed_flags  # a test's loop counts `listed`
from daemon.store.writer import HealthStore
from margin.model import Flag, Position, PriceInput, Tier
from tests.storekit import (
    DUSDC,
    USDC_ARB,
    WETH,
    account_address,
    asset_price,
    block,
    book,
    book_rows,
    fresh_database,
    update,
)

UINT256_MAX = 2**256 - 1


def context(at: float, **blocks: int) -> CycleContext:
    return CycleContext(at=at, blocks=blocks or {"eth": 100, "arb": 200}, prices={"ETH": "2000"})


async def table_dump(store: HealthStore, table: sa.Table) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(table).order_by(*table.primary_key.columns))
        return [tuple(r) for r in rows]


# ---- exact values ---------------------------------------------------------------------------


async def test_uint256_balances_round_trip_exactly(store: HealthStore) -> None:
    a, b, c, d = (account_address(i) for i in range(4))
    values: dict[tuple[str, str], int | None] = {
        (a, WETH): UINT256_MAX,
        (b, WETH): 0,
        (c, WETH): None,  # a failed read
        (d, WETH): 10**77 + 1,
    }
    await store.apply_balance_update(update("eth", block(7), values))
    stored = (await store.load_state()).balances["eth"]
    assert {pair: r.raw for pair, r in stored.items()} == values
    assert stored[(a, WETH)] == Reading(UINT256_MAX, 7, block(7).hash)
    async with store.engine.connect() as conn:
        raw = await conn.scalar(sa.select(balances.c.raw).where(balances.c.account == a))
    assert raw == UINT256_MAX


async def test_money_and_infinite_health_round_trip(store: HealthStore) -> None:
    engine = book(3)
    engine.load_balances("eth", DUSDC, [account_address(10)], [0], 100)  # owes nothing
    engine.load_balances("eth", WETH, [account_address(11)], [12_345_678 * 10**18], 100)
    engine.set_balance(account_address(11), "eth", DUSDC, 10**15, 100)
    await store.write_cycle(book_rows(engine), context(1.0))
    table = engine.results
    for i, account in enumerate(engine.accounts):
        got = await store.queries.health(account)
        assert got is not None
        assert got.health == table.health[i]  # inf stays inf, floats are exact
        assert got.collateral_value == Decimal(int(table.collateral_value[i])).scaleb(-2)
        assert got.shortfall == Decimal(int(table.shortfall[i])).scaleb(-2)
    rich = await store.queries.health(account_address(11))
    assert rich is not None
    assert rich.collateral_value == Decimal("24691356000.00")
    async with store.engine.connect() as conn:
        null = await conn.scalar(
            sa.select(account_health.c.health).where(
                account_health.c.account == account_address(10)
            )
        )
    assert null is None


# ---- cycles, transitions, idempotency -------------------------------------------------------


async def test_same_cycle_twice_changes_nothing(store: HealthStore) -> None:
    engine = book(50)
    rows, ctx = book_rows(engine), context(10.0)
    first = await store.write_cycle(rows, ctx)
    assert sorted(t.account for t in first) == [account_address(i) for i in range(0, 50, 10)]
    assert all(t.from_flags == Flag.NONE and t.to_flags == Flag.LIQUIDATABLE for t in first)
    assert first[0].shortfall == Decimal("110.00")
    health, transitions = (
        await table_dump(store, account_health),
        await table_dump(store, health_transitions),
    )
    assert await store.write_cycle(rows, ctx) == []
    assert await table_dump(store, account_health) == health
    assert await table_dump(store, health_transitions) == transitions
    last = await store.queries.last_cycle()
    assert last is not None
    assert last.id == first[0].cycle_id
    assert last.accounts == 50


def test_a_cycle_stages_each_account_once() -> None:
    # With a cycle's id new to its transaction, this is what keeps (account, cycle) unique on
    # transitions since the schema stopped checking it (migration 0009).
    rows = book_rows(book(3))
    columns = {name: getattr(rows, name) for name in rows.__dataclass_fields__}
    twice = {k: v + v[:1] if isinstance(v, list) else v for k, v in columns.items()}
    with pytest.raises(ValueError, match="appears twice"):
        HealthRows(**twice)


async def test_transitions_follow_flag_changes_only(store: HealthStore) -> None:
    engine = book(20)
    await store.write_cycle(book_rows(engine), context(1.0))
    engine.set_prices([PriceInput(asset="ETH", price=1_000.0)])  # everyone under water
    down = await store.write_cycle(book_rows(engine), context(2.0))
    assert len(down) == 18  # the two already liquidatable do not transition again
    assert {(t.from_flags, t.to_flags) for t in down} == {(Flag.NONE, Flag.LIQUIDATABLE)}
    same_flags = await store.write_cycle(book_rows(engine), context(3.0))
    assert same_flags == []
    engine.set_prices([PriceInput(asset="ETH", price=2_000.0)])
    up = await store.write_cycle(book_rows(engine), context(4.0))
    assert len(up) == 18
    assert all(t.to_flags == Flag.NONE for t in up)
    history = await store.queries.transitions(account=account_address(1), limit=10)
    assert [(t.from_flags, t.to_flags) for t in history] == [
        (Flag.NONE, Flag.LIQUIDATABLE),
        (Flag.LIQUIDATABLE, Flag.NONE),
    ]
    cycle = await store.queries.cycle(history[0].cycle_id)
    assert cycle is not None
    assert cycle.at == 2.0
    assert cycle.blocks == {"eth": 100, "arb": 200}


async def test_replaying_an_old_cycle_is_ignored(store: HealthStore) -> None:
    engine = book(10)
    healthy = book_rows(engine)
    engine.set_prices([PriceInput(asset="ETH", price=1_000.0)])
    sinking = book_rows(engine)
    await store.write_cycle(healthy, context(1.0))
    first = await store.write_cycle(sinking, context(2.0))
    back = await store.write_cycle(healthy, context(3.0))
    health = await table_dump(store, account_health)
    replay = await store.write_cycle(sinking, context(2.0))  # same key as the second cycle
    assert len(first) == len(back) == 9
    assert replay == []
    assert await table_dump(store, account_health) == health  # the newer state stays
    assert len(await store.queries.transitions(limit=100)) == 1 + 9 + 9


async def test_overlapping_cycle_writers_report_a_change_once(store: HealthStore) -> None:
    engine = book(20)
    await store.write_cycle(book_rows(engine), context(1.0))
    engine.set_prices([PriceInput(asset="ETH", price=1_000.0)])
    sinking = book_rows(engine)
    # Hold writes to account_health back until both writers have started: without a lock
    # between them both would compare against the same stored flags.
    async with write_transaction(store.engine) as blocker:
        if store.engine.dialect.name == "postgresql":
            await blocker.execute(sa.text("LOCK TABLE account_health IN EXCLUSIVE MODE"))
        writes = asyncio.gather(
            store.write_cycle(sinking, context(2.0)), store.write_cycle(sinking, context(3.0))
        )
        await asyncio.sleep(0.5)
    first, second = await writes
    assert sorted([len(first), len(second)]) == [0, 18]


async def test_outbox_lists_unpublished_transitions(store: HealthStore) -> None:
    written = await store.write_cycle(book_rows(book(30)), context(1.0))
    pending = await store.queries.transitions(unpublished_only=True)
    assert [t.id for t in pending] == sorted(t.id for t in written)
    await store.mark_published([t.id for t in pending[:2]], at=5.0)
    left = await store.queries.transitions(unpublished_only=True)
    assert [t.id for t in left] == [t.id for t in pending[2:]]
    published = await store.queries.transitions(limit=2)
    assert all(t.published_at == 5.0 for t in published)
    outbox = await store.queries.outbox(limit=2)
    assert [e.id for e in outbox] == [t.id for t in pending[2:4]]
    assert all(e.blocks == {"arb": 200, "eth": 100} for e in outbox)  # the cycle's blocks


async def test_a_market_wide_move_is_marked_published_in_bounded_statements(
    store: HealthStore,
) -> None:
    # 40,000 transitions in one cycle: more ids than asyncpg (32,767) or SQLite bind at once.
    count = 40_000
    written = await store.write_cycle(book_rows(book(count, underwater_every=1)), context(1.0))
    assert len(written) == count
    outbox = await store.queries.outbox(limit=count)
    assert [e.id for e in outbox] == sorted(t.id for t in written)
    assert await store.mark_published([t.id for t in written], at=5.0) == count
    assert await store.queries.outbox(limit=10) == []
    assert await store.mark_published([t.id for t in written]) == 0  # already marked


# ---- restart --------------------------------------------------------------------------------


async def test_restart_resumes_from_stored_state(store: HealthStore) -> None:
    engine = book(40)
    a0, a1 = account_address(0), account_address(1)
    await store.apply_balance_update(update("eth", block(100), {(a0, WETH): 10**18}))
    await store.apply_balance_update(update("arb", block(200, "b"), {(a1, USDC_ARB): 5}))
    position = Position(
        account=a0,
        asset="ETH",
        chain="eth",
        size=-2.5,
        entry_price=1_900.0,
        mmr_tiers=(Tier(0.01, 100_000.0), Tier(0.02)),
    )
    await store.upsert_position(position)
    await store.write_cycle(book_rows(engine), context(1.0))
    await store.record_prices([asset_price("ETH", "2000.5", 50.0)])
    before = await store.load_state()

    reopened = await HealthStore.open(store.engine.url.render_as_string(hide_password=False))
    async with reopened:
        after = await reopened.load_state()
        assert after == before
        assert after.cursors["eth"].block_number == 100
        assert after.cursors["arb"].block_hash == block(200, "b").hash
        assert after.balances["arb"][(a1, USDC_ARB)].raw == 5
        assert after.positions == [position]
        assert after.health_flags[a0] == Flag.LIQUIDATABLE
        assert after.latest_prices["ETH"].price == Decimal("2000.5")
        # The first cycle after the restart recomputes the same flags: nothing to announce.
        assert await reopened.write_cycle(book_rows(engine), context(2.0)) == []


# ---- reorgs ---------------------------------------------------------------------------------


async def test_reorg_drops_orphaned_balances_and_rolls_the_cursor_back(store: HealthStore) -> None:
    a, b, c = (account_address(i) for i in range(3))
    await store.apply_balance_update(update("eth", block(10), {(a, WETH): 1, (b, WETH): 2}))
    await store.apply_balance_update(update("eth", block(12), {(a, WETH): 3, (c, WETH): 4}))
    await store.apply_balance_update(update("arb", block(12), {(a, USDC_ARB): 9}))
    # Blocks 11 and 12 were orphaned; the watcher re-read a at the new block 11.
    await store.apply_balance_update(update("eth", block(11, "f"), {(a, WETH): 5}, dropped=10))
    state = await store.load_state()
    assert state.balances["eth"] == {
        (a, WETH): Reading(5, 11, block(11, "f").hash),
        (b, WETH): Reading(2, 10, block(10).hash),
    }
    assert state.balances["arb"][(a, USDC_ARB)].raw == 9  # other chains untouched
    assert state.cursors["eth"].block_number == 11
    assert state.cursors["eth"].block_hash == block(11, "f").hash
    # A replay of an update from before the reorg moves nothing back.
    await store.apply_balance_update(update("eth", block(10), {(a, WETH): 1, (b, WETH): 2}))
    replayed = await store.load_state()
    assert replayed.balances == state.balances
    assert replayed.cursors["eth"].block_number == 11


# ---- concurrency and volume -----------------------------------------------------------------


async def test_reader_never_sees_half_a_cycle(store: HealthStore) -> None:
    n, cycles = 30_000, 3
    accounts = [account_address(i) for i in range(n)]

    def cycle_rows(k: int) -> HealthRows:
        return HealthRows(
            value_decimals=2,
            accounts=accounts,
            health=[1.5] * n,
            health_latency=[1.5] * n,
            collateral_value=[k] * n,
            weighted_collateral=[k] * n,
            liability_value=[0] * n,
            weighted_liability=[0] * n,
            unrealized_pnl=[0] * n,
            maintenance=[0] * n,
            shortfall=[0] * n,
            flags=[0] * n,
            actionable=[False] * n,
            breakdowns=[None] * n,
        )

    done = asyncio.Event()
    seen: list[dict[Any, int]] = []

    query = sa.select(account_health.c.collateral_value, sa.func.count()).group_by(
        account_health.c.collateral_value
    )

    async def snapshot() -> dict[Any, int]:
        async with store.engine.connect() as conn:
            return {row[0]: row[1] for row in await conn.execute(query)}

    async def read() -> None:
        while not done.is_set():
            seen.append(await snapshot())
            await asyncio.sleep(0)

    async def write() -> None:
        try:
            for k in range(1, cycles + 1):
                await store.write_cycle(cycle_rows(k), context(float(k)))
        finally:
            done.set()

    await asyncio.gather(read(), write())
    assert len(seen) >= 2
    whole_cycles = [{}, *({Decimal(k).scaleb(-2): n} for k in range(1, cycles + 1))]
    assert all(counts in whole_cycles for counts in seen)
    assert await snapshot() == {Decimal(cycles).scaleb(-2): n}


async def test_a_large_cycle_commits_its_transitions_before_its_other_rows(
    store: HealthStore,
) -> None:
    """A market-wide move rewrites every account; its events and listing need only the
    accounts whose flags moved. Those rows and their transitions are committed first (a
    reader sees all of them, and none of the other rows' new figures yet); the breakdowns
    are built after that, and stored with the rest (both dialects)."""
    n = max(2_000, SPLIT_CYCLE_ROWS)
    engine = book(n, eth_price=2_500.0, underwater_every=4)  # all healthy at 2,500
    await store.write_cycle(book_rows(engine), context(1.0))
    engine.set_prices([PriceInput(asset="ETH", price=2_000.0)])  # every 4th sinks
    url = store.engine.url.render_as_string(hide_password=False)
    t, h = health_transitions.c, account_health.c
    flipped = sa.case((h.flags != 0, "flipped"), else_="other")

    async def look() -> dict[str, Any]:
        async with await HealthStore.open(url) as other, other.engine.connect() as conn:
            appended = await conn.scalar(
                sa.select(sa.func.count()).select_from(health_transitions).where(t.at == 2.0)
            )
            collateral = await conn.execute(
                sa.select(flipped, h.collateral_value, sa.func.count()).group_by(
                    flipped, h.collateral_value
                )
            )
            with_breakdown = await conn.execute(
                sa.select(h.account).where(h.breakdown.is_not(None)).order_by(h.account)
            )
            return {
                "appended": appended,
                "listed": (await other.queries.liquidatable_page()).total,
                "collateral": {(k, v): c for k, v, c in collateral},
                "breakdowns": list(with_breakdown.scalars()),
            }

    calls: list[tuple[str, int | dict[str, Any]]] = []

    def committed(count: int) -> None:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            calls.append(("committed", pool.submit(asyncio.run, look()).result()))
        calls.append(("count", count))

    breakdown: dict[str, list[object]] = {"holdings": [], "positions": []}

    async def breakdowns() -> list[tuple[str, str]]:
        calls.append(("breakdowns", len(calls)))
        return [(account_address(i), json.dumps(breakdown)) for i in (0, 4)]

    count = await store.write_engine_cycle(
        balances=(),
        prices=(),
        rows=book_rows(engine),
        context=context(2.0),
        on_committed=committed,
        breakdowns=breakdowns,
    )
    sinking = n // 4
    assert count == sinking
    before, after = Decimal(2600), Decimal(2100)  # 1 ETH + 100 USDC, ETH 2,500 → 2,000
    whole = {
        "appended": sinking,
        "listed": sinking,
        "collateral": {("flipped", after): sinking, ("other", after): n - sinking},
        "breakdowns": [account_address(0), account_address(4)],
    }
    first = {
        "appended": sinking,
        "listed": sinking,
        "collateral": {("flipped", after): sinking, ("other", before): n - sinking},
        "breakdowns": [],
    }
    assert calls == [("committed", first), ("count", sinking), ("breakdowns", 2)]
    assert await look() == whole
    stored = await store.queries.health(account_address(4))
    assert stored is not None
    assert stored.breakdown == breakdown


async def test_a_large_engine_write_inserts_its_new_accounts_beside_the_moves(
    store: HealthStore,
) -> None:
    """The engine's write (no rows returned) appends the transitions and tells from the same
    join whether any staged account is new: new accounts go in (a flagged newcomer with its
    transition, a healthy one silent) beside stored accounts that flip; a later write of
    stored accounts only inserts nothing and still moves every flag."""
    n = max(2_000, SPLIT_CYCLE_ROWS)
    engine = book(n + 2, eth_price=2_500.0, underwater_every=4)
    everyone = book_rows(engine)
    columns = {name: getattr(everyone, name) for name in everyone.__dataclass_fields__}

    def first(k: int) -> HealthRows:
        return HealthRows(**{c: v[:k] if isinstance(v, list) else v for c, v in columns.items()})

    await store.write_cycle(first(n), context(1.0))  # accounts 0 … n-1, all healthy
    engine.set_prices([PriceInput(asset="ETH", price=2_000.0)])  # every 4th sinks: n is one
    count = await store.write_engine_cycle(
        balances=(), prices=(), rows=book_rows(engine), context=context(2.0)
    )
    assert count == n // 4 + 1  # the stored ones that sank, and the sinking newcomer n
    moved = await store.queries.transitions(limit=n)
    assert {t.account for t in moved} == {account_address(i) for i in range(0, n + 1, 4)}
    for i, flags in ((n, Flag.LIQUIDATABLE), (n + 1, Flag.NONE), (4, Flag.LIQUIDATABLE)):
        stored = await store.queries.health(account_address(i))
        assert stored is not None
        assert stored.flags == flags
        assert stored.collateral_value == Decimal(2100)
    engine.set_prices([PriceInput(asset="ETH", price=2_500.0)])  # all recover, nobody new
    back = await store.write_engine_cycle(
        balances=(), prices=(), rows=book_rows(engine), context=context(3.0)
    )
    assert back == n // 4 + 1
    assert (await store.queries.liquidatable_page()).total == 0
    async with store.engine.connect() as conn:
        rows = await conn.scalar(sa.select(sa.func.count()).select_from(account_health))
    assert rows == n + 2


async def listing_and_listed_rows(store: HealthStore) -> tuple[list[Any], list[Any]]:
    """``health_listing`` and what it must hold: (account, shortfall) of every listed
    ``account_health`` row."""
    h = account_health.c
    async with store.engine.connect() as conn:
        listing = await conn.execute(sa.select(health_listing).order_by(health_listing.c.account))
        rows = await conn.execute(
            sa.select(h.account, h.shortfall).where(listed_flags(h.flags)).order_by(h.account)
        )
        return [tuple(r) for r in listing], [tuple(r) for r in rows]


async def test_the_listing_follows_every_way_a_row_is_written(store: HealthStore) -> None:
    """``health_listing`` holds exactly the listed rows with their shortfall after every kind
    of write: a large engine write (split in two transactions on PostgreSQL: flips first,
    then the listed rows' new shortfalls), a deeper move (no flip, every listed shortfall
    changes), one account written alone, newcomers, and a rebound that empties it."""
    n = max(2_000, SPLIT_CYCLE_ROWS)
    engine = book(n + 1, eth_price=2_500.0, underwater_every=4)
    everyone = book_rows(engine)
    columns = {name: getattr(everyone, name) for name in everyone.__dataclass_fields__}

    def first(k: int) -> HealthRows:
        return HealthRows(**{c: v[:k] if isinstance(v, list) else v for c, v in columns.items()})

    async def check(listed: int) -> list[Any]:
        listing, rows = await listing_and_listed_rows(store)
        assert listing == rows
        assert len(listing) == listed
        return listing

    def alone(rows: HealthRows, i: int) -> HealthRows:
        picked = {c: getattr(rows, c) for c in rows.__dataclass_fields__}
        return HealthRows(
            **{c: v[i : i + 1] if isinstance(v, list) else v for c, v in picked.items()}
        )

    await store.write_cycle(first(n), context(1.0))  # accounts 0 … n-1, all healthy
    await check(0)
    shortfalls = []
    for at, eth, listed in ((2, 2_000.0, n // 4 + 1), (3, 1_900.0, n // 4 + 1), (6, 2_500.0, 0)):
        engine.set_prices([PriceInput(asset="ETH", price=eth)])
        rows = book_rows(engine)  # with newcomer n (sinking at 2,000) the first time
        await store.write_engine_cycle(balances=(), prices=(), rows=rows, context=context(at))
        shortfalls.append({shortfall for _, shortfall in await check(listed)})
        if eth == 1_900.0:  # one account alone, as a small cycle writes it: out, then in
            await store.write_cycle(alone(everyone, 4), context(4))
            await check(listed - 1)
            await store.write_cycle(alone(rows, 4), context(5))
            await check(listed)
    deeper = Decimal(100) * Decimal("0.8")  # 1 ETH weighted 0.8, ETH 2,000 → 1,900
    assert [len(s) for s in shortfalls] == [1, 1, 0]
    assert shortfalls[1].pop() - shortfalls[0].pop() == deeper


async def test_one_cycle_of_100k_accounts(store: HealthStore) -> None:
    engine = book(100_000, underwater_every=1_000)
    rows = book_rows(engine)
    started = time.perf_counter()
    written = await store.write_cycle(rows, context(1.0))
    elapsed = time.perf_counter() - started
    assert len(written) == 100
    assert (await store.queries.liquidatable_page()).total == 100
    async with store.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(account_health)) == 100_000
    print(f"{store.engine.dialect.name}: 100k health rows in {elapsed:.2f} s")


# ---- reads ----------------------------------------------------------------------------------


T = TypeVar("T")


async def read_while_a_cycle_commits(store: HealthStore, read: Callable[[], Awaitable[T]]) -> T:
    """``read()`` with the next cycle (40 accounts, 8 liquidatable) committed on its own
    connection and event loop right after the read's first ranked statement on
    ``account_health``, and before its next statement."""
    url = store.engine.url.render_as_string(hide_password=False)

    async def next_cycle() -> None:
        async with await HealthStore.open(url) as other:
            await other.write_cycle(book_rows(book(40, underwater_every=5)), context(2.0))

    written: list[int] = []

    def write_after_the_ranking(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not written and "ORDER BY" in statement and "account_health" in statement:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, next_cycle()).result()
            written.append(1)

    sa.event.listen(store.engine.sync_engine, "after_cursor_execute", write_after_the_ranking)
    try:
        result = await read()
    finally:
        sa.event.remove(store.engine.sync_engine, "after_cursor_execute", write_after_the_ranking)
    assert written == [1]
    return result


async def test_a_listing_page_comes_from_one_snapshot(store: HealthStore) -> None:
    """A cycle committed between the page's statements shows in none of them: the page, its
    total and its ``as_of`` cycle agree."""
    await store.write_cycle(book_rows(book(40, underwater_every=10)), context(1.0))
    page = await read_while_a_cycle_commits(store, store.queries.liquidatable_page)
    assert (len(page.accounts), page.total) == (4, 4)
    assert page.cycle is not None
    assert page.cycle.at == 1.0
    after = await store.queries.liquidatable_page()  # the next page sees the new cycle whole
    assert (len(after.accounts), after.total) == (8, 8)
    assert after.cycle is not None
    assert after.cycle.at == 2.0


async def test_a_flag_listing_comes_from_one_snapshot(store: HealthStore) -> None:
    """``GET /v1/accounts?flag=``: the accounts and their ``as_of`` cycle agree."""
    await store.write_cycle(book_rows(book(40, underwater_every=10)), context(1.0))
    page = await read_while_a_cycle_commits(
        store, lambda: store.queries.accounts_with_flags(Flag.LIQUIDATABLE)
    )
    assert len(page.accounts) == 4
    assert page.cycle is not None
    assert page.cycle.at == 1.0
    after = await store.queries.accounts_with_flags(Flag.LIQUIDATABLE)
    assert len(after.accounts) == 8
    assert after.cycle is not None
    assert after.cycle.at == 2.0


async def test_liquidatable_ranking_filters_and_pages(store: HealthStore) -> None:
    engine = book(40)
    for i in (0, 10, 20, 30):  # deeper under water the higher i
        engine.set_balance(account_address(i), "eth", DUSDC, (1_800 + i) * 10**6, 100)
    rows = book_rows(engine)
    flags = list(rows.flags)
    flags[20] |= Flag.STALE_PRICE  # held back: listed, not actionable
    columns = {name: getattr(rows, name) for name in rows.__dataclass_fields__}
    actionable = [f == Flag.LIQUIDATABLE for f in flags]
    rows = HealthRows(**{**columns, "flags": flags, "actionable": actionable})
    await store.write_cycle(rows, context(1.0))
    await store.apply_balance_update(update("arb", block(5), {(account_address(10), USDC_ARB): 1}))
    q = store.queries
    ranked = (await q.liquidatable_page()).accounts
    assert [h.account for h in ranked] == [account_address(i) for i in (30, 20, 10, 0)]
    shortfalls = [Decimal(s) for s in ("140.00", "130.00", "120.00", "110.00")]
    assert [h.shortfall for h in ranked] == shortfalls
    assert [h.account for h in (await q.liquidatable_page(limit=2, offset=1)).accounts] == [
        account_address(20),
        account_address(10),
    ]
    actionable = await q.liquidatable_page(actionable_only=True)
    assert [h.account for h in actionable.accounts] == [account_address(i) for i in (30, 10, 0)]
    assert actionable.total == 3
    on_arb = await q.liquidatable_page(chain="arb")
    assert ([h.account for h in on_arb.accounts], on_arb.total) == ([account_address(10)], 1)
    deep = await q.liquidatable_page(min_shortfall=Decimal("125"))
    assert ([h.account for h in deep.accounts], deep.total) == (
        [account_address(30), account_address(20)],
        2,
    )
    stale = await q.accounts_with_flags(Flag.STALE_PRICE | Flag.ORACLE_TRIPPED)
    assert [h.account for h in stale.accounts] == [account_address(20)]
    assert stale.accounts[0].held_reasons == Flag.STALE_PRICE
    assert stale.cycle is not None
    assert stale.cycle.accounts == 40


async def test_account_prices_cursors_and_positions(store: HealthStore) -> None:
    engine = book(2)
    a0 = account_address(0)
    detailed = HealthRows.from_accounts([engine.account_health(a0)], value_decimals=2)
    await store.write_cycle(detailed, context(1.0))
    await store.apply_balance_update(update("eth", block(9), {(a0, WETH): 10**18, (a0, DUSDC): 7}))
    perp = Position(
        account=a0,
        asset="BTC",
        chain="eth",
        size=0.5,
        entry_price=60_000.0,
        mmr_tiers=(Tier(0.01),),
    )
    await store.upsert_position(perp)
    await store.upsert_position(Position(**{**_fields(perp), "size": 0.75}))
    record = await store.queries.account(a0.upper().replace("0X", "0x"))
    assert record is not None
    assert record.health is not None
    assert record.health.flags == Flag.LIQUIDATABLE
    assert record.health.breakdown is not None
    assert {h["token"] for h in record.health.breakdown["holdings"]} == {WETH, USDC_ARB, DUSDC}
    assert [(b.token, b.raw) for b in record.balances] == sorted([(WETH, 10**18), (DUSDC, 7)])
    assert [p.size for p in record.positions] == [0.75]
    assert await store.queries.account(account_address(99)) is None
    assert await store.delete_position(a0, "BTC") is True
    assert await store.delete_position(a0, "BTC") is False
    assert await store.positions() == []

    await store.record_prices(
        [asset_price("ETH", "1999.99", 10.0), asset_price("BTC", "6e4", 10.0)]
    )
    await store.record_prices([asset_price("ETH", "2001.5", 20.0)])
    await store.record_prices([asset_price("ETH", "2001.5", 20.0)])  # the same round again
    latest = await store.queries.latest_prices()
    assert {a: p.price for a, p in latest.items()} == {
        "ETH": Decimal("2001.5"),
        "BTC": Decimal("6E+4"),
    }
    assert latest["ETH"].sources["dropped"] == {"twap": "stale"}
    assert len(await store.queries.price_history("ETH")) == 2
    cursors = await store.queries.chain_cursors()
    assert list(cursors) == ["eth"]
    assert cursors["eth"].block_timestamp == block(9).timestamp
    assert math.isclose(cursors["eth"].updated_at, time.time(), abs_tol=60)


def _fields(position: Position) -> dict[str, Any]:
    return {name: getattr(position, name) for name in position.__dataclass_fields__}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
async def test_replace_positions_swaps_the_whole_set_in_one_go(
    dialect: str, tmp_path: Path
) -> None:
    async with fresh_database(dialect, tmp_path) as url:
        await migrate(url)
        async with await HealthStore.open(url) as store:
            account = "0x" + "ab" * 20
            tiers = (Tier(0.01, 100_000), Tier(0.02))

            def perp(asset: str, size: float) -> Position:
                return Position(
                    account=account,
                    asset=asset,
                    chain="eth",
                    size=size,
                    entry_price=100.0,
                    mmr_tiers=tiers,
                )

            assert await store.replace_positions(account, [perp("ETH", 1), perp("BTC", -2)]) == 0
            removed = await store.replace_positions(
                account.upper().replace("0X", "0x"), [perp("ETH", 3)]
            )
            assert removed == 1
            assert [(p.asset, p.size) for p in await store.positions(account)] == [("ETH", 3.0)]
            assert await store.replace_positions(account, []) == 1
            assert await store.positions(account) == []
