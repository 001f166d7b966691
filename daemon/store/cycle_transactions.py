"""An engine cycle's write cut into transactions (``HealthStore.write_engine_cycle``).

One transaction holds the watchers' balances, the oracle rounds and the cycle
(``daemon.store.cycle``) — unless the cycle is large (``SPLIT_CYCLE_ROWS``): then its first
transaction commits the transitions with the rows whose flags moved, and a last one, on the
same connection, the other rows and the breakdowns. When the engine says which rows it expects
to move (``HealthRows.moved_first``) only those are staged before the first commit, in
``FLIP_PARTS`` transactions when they are many, and the last transaction appends the
transition of any other row whose stored flags differ after all. Each transaction checks the
cluster fence first; ``on_committed`` hears of every commit that stored transitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from chains.watcher import BalanceUpdate
from daemon.store.chain_state import store_balance_update
from daemon.store.cycle import (
    LateBreakdowns,
    append_flips,
    update_health_rest,
    write_health_cycle,
)
from daemon.store.engine import write_connection
from daemon.store.fencing import Fence, check_fence
from daemon.store.price_rounds import insert_prices
from daemon.store.rows import CycleContext, HealthRows
from oracles.model import AssetPrice

SPLIT_CYCLE_ROWS = 1_000
"""A health cycle of at least this many rows commits its transitions (with the rows whose flags
moved) first and updates its other rows in a second transaction: a market-wide move rewrites
every account, and its events and listing need only the flipped ones. On both dialects: since
the late part waits for the event relay (``EngineLoop._build_breakdowns``), SQLite's second
transaction, in the daemon's own process, no longer competes with the relay for the CPU (it
did when the split was first measured, and SQLite kept one transaction then; bench/RESULTS.md,
issue 14)."""


FLIP_PARTS = 2
FLIP_PART_MIN_ROWS = 10_000
"""The accounts a large write expects to move, when they are at least twice this many, are
committed (with their transitions) in ``FLIP_PARTS`` transactions one after the other: the
event relay, woken at each commit, sends the first part's events while the next is written.
A market-wide move's 50,000 flips took 0.7-1.3 s of PostgreSQL in one transaction, all of it
before the first event; in two, the first events leave after half of it (bench/RESULTS.md,
issue 14, seventh pass). Few parts: each costs one more join of its rows against every
stored row, and the last transaction stages every row again. Not when every row is expected
to move (the first valuation after a start): parts would only add work where no event
waits."""


@dataclass(frozen=True, slots=True)
class CycleWritten:
    """What one engine cycle's write did."""

    cycle_id: int | None
    """``None``: the cycle was stored before (nothing of its health written)."""
    transitions: int
    appended: Sequence[Any]
    """The appended transitions' rows (only when asked for them: one transaction then)."""
    seconds: float
    committed_s: float
    """From the start to the first commit of transitions."""
    staged_first: int
    """Rows staged before that commit."""


async def write_cycle_transactions(
    engine: AsyncEngine,
    *,
    balances: Sequence[BalanceUpdate],
    rounds: Sequence[AssetPrice],
    rows: HealthRows | None,
    context: CycleContext | None,
    returning: bool,
    fence: Fence | None = None,
    on_committed: Callable[[int], None] | None = None,
    breakdowns: LateBreakdowns | None = None,
) -> CycleWritten:
    """Write one engine cycle in its transactions (see the module); ``returning`` asks for
    the appended rows (``write_cycle``), which keeps the guess of ``rows`` unused."""
    started = time.perf_counter()
    cycle_id: int | None = None
    count = 0
    appended: Sequence[Any] = ()
    first, unstaged = rows, None
    parts: list[HealthRows] = []
    split = rows is not None and len(rows) >= SPLIT_CYCLE_ROWS
    if split and not returning and rows is not None and rows.moved_first is not None:
        # Only the accounts the engine saw move in the first transaction(s); the others
        # are compared with the stored flags in the last (``daemon.store.cycle``).
        moved, unstaged = rows.split_moved()
        if len(unstaged):  # not a first valuation (every row unknown): nothing waits on it
            first, *parts = moved.chunks(max(FLIP_PART_MIN_ROWS, -(-len(moved) // FLIP_PARTS)))
        else:
            first = moved
        if parts:  # the last transaction stages every row again: the stage holds a part
            unstaged = rows
    async with write_connection(engine) as conn:
        async with conn.begin():
            if fence is not None:
                await check_fence(conn, fence)
            now = time.time()
            for update in balances:
                await store_balance_update(conn, update, now)
            if rounds:
                await insert_prices(conn, rounds)
            if first is not None and rows is not None and context is not None:
                cycle_id, count, appended = await write_health_cycle(
                    conn,
                    first,
                    context,
                    returning=returning,
                    rest=not split,
                    breakdowns=breakdowns,
                    accounts=len(rows),
                )
        committed_s = time.perf_counter() - started
        if cycle_id is not None and on_committed is not None:
            on_committed(count)
        for part in parts:
            if cycle_id is None or context is None:
                break
            async with conn.begin():
                if fence is not None:
                    await check_fence(conn, fence)
                more = await append_flips(conn, cycle_id, part, context.at)
            count += more
            if more and on_committed is not None:
                on_committed(more)
        if split and cycle_id is not None and rows is not None and context is not None:
            # The rows whose flags did not move, and the breakdowns: nothing waits for them
            # but readers of their figures (/v1/accounts), a moment later.
            late = () if breakdowns is None else await breakdowns()
            async with conn.begin():
                if fence is not None:
                    await check_fence(conn, fence)
                surprises = await update_health_rest(
                    conn,
                    cycle_id,
                    context.at,
                    rows.value_decimals,
                    late,
                    unstaged=unstaged,
                    restage=bool(parts),
                )
            if surprises:  # stored flags the engine did not know: their events now
                count += surprises
                if on_committed is not None:
                    on_committed(surprises)
    return CycleWritten(
        cycle_id=cycle_id,
        transitions=count,
        appended=appended,
        seconds=time.perf_counter() - started,
        committed_s=committed_s if cycle_id is not None else 0.0,
        staged_first=0 if first is None else len(first),
    )
