"""A large engine write told which accounts the engine expects to move
(``HealthRows.moved_first``): on PostgreSQL only those are staged before the first commit,
the others in the second transaction, where an account whose stored flags differ after all
still gets its one transition, under the same cycle id. A wrong guess costs time, never a
transition; a failed second transaction loses nothing, and the write can be repeated."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from daemon.store import cycle_transactions
from daemon.store.cycle_transactions import SPLIT_CYCLE_ROWS
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import account_health, health_transitions
from daemon.store.writer import HealthStore
from margin.model import Flag, PriceInput
from tests.store.test_store import listing_and_listed_rows
from tests.storekit import account_address, book, book_rows

N = max(2_000, SPLIT_CYCLE_ROWS)
BEFORE, AFTER = Decimal(2600), Decimal(2100)  # 1 ETH + 100 USDC, ETH 2,500 → 2,000
SINKING = range(0, N, 4)  # owe 1,800 USDC: liquidatable at ETH 2,000, healthy at 2,500


def context(at: float) -> CycleContext:
    return CycleContext(at=at, blocks={"eth": 100, "arb": 200}, prices={"ETH": "2000"})


def ordered(rows: HealthRows, first: list[int]) -> HealthRows:
    """``rows`` with the rows ``first`` ahead of the others, as the guess ``moved_first``."""
    chosen = set(first)
    order = first + [i for i in range(len(rows)) if i not in chosen]
    columns: dict[str, Any] = {}
    for name in rows.__dataclass_fields__:
        column = getattr(rows, name)
        columns[name] = [column[i] for i in order] if isinstance(column, list) else column
    return HealthRows(**columns | {"moved_first": len(first)})


def alone(rows: HealthRows, i: int) -> HealthRows:
    """Row ``i`` of ``rows`` as a cycle of its own."""
    return ordered(rows, [i]).split_moved()[0]


async def crash_after_calm(store: HealthStore) -> HealthRows:
    """Every account stored healthy at ETH 2,500; the rows of ETH 2,000 (``SINKING`` sink)."""
    engine = book(N, eth_price=2_500.0, underwater_every=4)
    await store.write_cycle(book_rows(engine), context(1.0))
    engine.set_prices([PriceInput(asset="ETH", price=2_000.0)])
    return book_rows(engine)


async def stored(store: HealthStore, at: float) -> dict[str, Any]:
    """What a reader on its own connection sees: transitions appended at ``at`` (how many,
    their cycle ids, how many accounts), the flags and collateral of accounts 0, 1 and 2,
    the listing's size."""
    url = store.engine.url.render_as_string(hide_password=False)
    t, h = health_transitions.c, account_health.c
    async with await HealthStore.open(url) as other, other.engine.connect() as conn:
        appended = (
            await conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(sa.distinct(t.cycle_id)),
                    sa.func.count(sa.distinct(t.account)),
                ).where(t.at == at)
            )
        ).one()
        picked = await conn.execute(
            sa.select(h.account, h.flags, h.collateral_value).where(
                h.account.in_([account_address(i) for i in range(3)])
            )
        )
        return {
            "appended": tuple(appended),
            "rows": {a: (Flag(f), c) for a, f, c in picked},
            "listed": (await other.queries.liquidatable_page()).total,
        }


def look_from_another_thread(store: HealthStore, at: float) -> dict[str, Any]:
    """``stored`` while the writer's event loop is held (inside ``on_committed``)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, stored(store, at)).result()


async def test_a_wrong_guess_costs_no_transition(store: HealthStore) -> None:
    """The engine guesses that accounts 4, 8, … and 2 move; account 0 sinks too (missed),
    account 2 does not (guessed wrong), and account 1 is stored liquidatable although it
    stays healthy (a write the engine does not know of: a restart, a shard taken over).
    Every transition lands once, under one cycle id; the guessed flips are committed first
    and the missed ones in the second transaction, with their own ``on_committed``."""
    crash = await crash_after_calm(store)
    everyone_under = book(N, eth_price=2_000.0, underwater_every=1)  # 1 sinks here
    await store.write_cycle(alone(book_rows(everyone_under), 1), context(1.5))
    guessed = [i for i in SINKING if i] + [2]
    calls: list[tuple[str, Any]] = []

    def committed(count: int) -> None:
        calls.append((count, look_from_another_thread(store, 2.0)))

    count = await store.write_engine_cycle(
        balances=(),
        prices=(),
        rows=ordered(crash, guessed),
        context=context(2.0),
        on_committed=committed,
    )
    a0, a1, a2 = (account_address(i) for i in range(3))
    sinking = len(SINKING)
    assert count == sinking + 1  # account 1 recovers
    whole = {
        "appended": (sinking + 1, 1, sinking + 1),
        "rows": {
            a0: (Flag.LIQUIDATABLE, AFTER),
            a1: (Flag.NONE, AFTER),
            a2: (Flag.NONE, AFTER),
        },
        "listed": sinking,
    }
    first = {
        "appended": (sinking - 1, 1, sinking - 1),
        "rows": {  # 1 still as stored, 0 and 2 (no flip: no figure) not written yet
            a0: (Flag.NONE, BEFORE),
            a1: (Flag.LIQUIDATABLE, AFTER),
            a2: (Flag.NONE, BEFORE),
        },
        "listed": sinking,  # 4, 8, … in, 1 still in, 0 not yet
    }
    assert calls == [(sinking - 1, first), (2, whole)]
    assert await stored(store, 2.0) == whole
    listing, listed_rows = await listing_and_listed_rows(store)
    assert listing == listed_rows
    every = await store.queries.transitions(limit=2 * N)
    assert len(every) == len({(t.account, t.cycle_id) for t in every})


@pytest.mark.parametrize("guess", ["right", "none", "everyone"])
async def test_any_guess_stores_the_same(store: HealthStore, guess: str) -> None:
    """Whatever the engine guesses — right, nobody (everything in the second transaction)
    or every account — the stored rows, transitions and listing are the same."""
    crash = await crash_after_calm(store)
    first = {"right": list(SINKING), "none": [], "everyone": list(range(N))}[guess]
    count = await store.write_engine_cycle(
        balances=(), prices=(), rows=ordered(crash, first), context=context(2.0)
    )
    assert count == len(SINKING)
    async with store.engine.connect() as conn:
        h = account_health.c
        figures = await conn.execute(
            sa.select(h.flags, h.collateral_value, sa.func.count()).group_by(
                h.flags, h.collateral_value
            )
        )
        assert sorted(tuple(r) for r in figures) == [
            (0, AFTER, N - len(SINKING)),
            (int(Flag.LIQUIDATABLE), AFTER, len(SINKING)),
        ]
    moved = await store.queries.transitions(limit=2 * N)
    assert sorted(t.account for t in moved) == sorted(account_address(i) for i in SINKING)
    listing, listed_rows = await listing_and_listed_rows(store)
    assert listing == listed_rows
    assert len(listing) == len(SINKING)


class BuildFailed(Exception):
    """The breakdowns' builder failed."""


async def test_a_failed_second_transaction_loses_nothing(store: HealthStore) -> None:
    """The write fails after the guessed flips were committed: on PostgreSQL in its second
    transaction (a breakdown the database refuses), on SQLite (which stores any text) in
    the breakdowns' builder before it. The write raises; what was committed stays
    (transitions once, the listing), the rest is not half-written; writing the same rows
    again (the writer's retry: a new cycle) finishes it without appending any transition
    twice."""
    crash = await crash_after_calm(store)
    rows = ordered(crash, list(SINKING))
    sinking = len(SINKING)
    good = json.dumps({"holdings": [], "positions": []})

    async def refused() -> list[tuple[str, str]]:
        if store.engine.dialect.name != "postgresql":
            raise BuildFailed("no json today")
        return [(account_address(0), good), (account_address(1), "{not json")]

    with pytest.raises((asyncpg.DataError, BuildFailed), match="json"):
        await store.write_engine_cycle(
            balances=(), prices=(), rows=rows, context=context(2.0), breakdowns=refused
        )
    half = await stored(store, 2.0)
    assert half["appended"] == (sinking, 1, sinking)
    assert half["listed"] == sinking
    assert half["rows"][account_address(1)] == (Flag.NONE, BEFORE)  # tx 2 rolled back

    async def accepted() -> list[tuple[str, str]]:
        return [(account_address(0), good)]

    again = await store.write_engine_cycle(
        balances=(), prices=(), rows=rows, context=context(3.0), breakdowns=accepted
    )
    assert again == 0  # the flips were stored by the failed write's first transaction
    assert (await stored(store, 3.0))["appended"] == (0, 0, 0)
    final = await stored(store, 2.0)
    assert final["rows"] == {
        account_address(0): (Flag.LIQUIDATABLE, AFTER),
        account_address(1): (Flag.NONE, AFTER),
        account_address(2): (Flag.NONE, AFTER),
    }
    every = await store.queries.transitions(limit=2 * N)
    assert sorted(t.account for t in every) == sorted(account_address(i) for i in SINKING)
    health = await store.queries.health(account_address(0))
    assert health is not None
    assert health.breakdown == json.loads(good)
    listing, listed_rows = await listing_and_listed_rows(store)
    assert listing == listed_rows


async def test_the_expected_flips_are_committed_in_parts(
    store: HealthStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guessed flips go in ``FLIP_PARTS`` transactions (here 5 of 100), each committed
    (and reported to ``on_committed``) before the next is written, every one with the
    cycle's id; then the surprises and the other rows, as with one part."""
    monkeypatch.setattr(cycle_transactions, "FLIP_PARTS", 5)
    monkeypatch.setattr(cycle_transactions, "FLIP_PART_MIN_ROWS", 100)
    crash = await crash_after_calm(store)
    everyone_under = book(N, eth_price=2_000.0, underwater_every=1)
    await store.write_cycle(alone(book_rows(everyone_under), 1), context(1.5))
    guessed = [i for i in SINKING if i] + [2]  # 500 rows: 5 parts, 2 does not flip
    calls: list[tuple[int, tuple[int, int, int]]] = []

    def committed(count: int) -> None:
        calls.append((count, look_from_another_thread(store, 2.0)["appended"]))

    count = await store.write_engine_cycle(
        balances=(),
        prices=(),
        rows=ordered(crash, guessed),
        context=context(2.0),
        on_committed=committed,
    )
    sinking = len(SINKING)
    assert count == sinking + 1
    parts = [100, 100, 100, 100, 99, 2]  # the last part holds 2; then 0 and 1, the surprises
    totals = [sum(parts[: k + 1]) for k in range(len(parts))]
    assert calls == [(n, (total, 1, total)) for n, total in zip(parts, totals, strict=True)]
    whole = await stored(store, 2.0)
    assert whole["rows"] == {
        account_address(0): (Flag.LIQUIDATABLE, AFTER),
        account_address(1): (Flag.NONE, AFTER),
        account_address(2): (Flag.NONE, AFTER),
    }
    async with store.engine.connect() as conn:
        h = account_health.c
        figures = await conn.execute(
            sa.select(h.collateral_value, sa.func.count()).group_by(h.collateral_value)
        )
        assert [tuple(r) for r in figures] == [(AFTER, N)]
    listing, listed_rows = await listing_and_listed_rows(store)
    assert listing == listed_rows
    assert len(listing) == sinking
    calls.clear()  # every row expected to move (a first valuation): one transaction
    engine = book(N, eth_price=2_500.0, underwater_every=4)
    back = await store.write_engine_cycle(
        balances=(),
        prices=(),
        rows=ordered(book_rows(engine), list(range(N))),
        context=context(3.0),
        on_committed=lambda count: calls.append((count, (0, 0, 0))),
    )
    assert back == sinking
    assert calls == [(sinking, (0, 0, 0))]
