"""A market-wide move's cycle write on PostgreSQL, statement by statement (issue 12).

    uv run python bench/move_write.py                        # 300,000 accounts, 3 moves
    uv run python bench/move_write.py --accounts 500000 --moves 4

What ``bench/scale.py`` measured as the first wall of a move at a million accounts: the write
of a chunk of 500,000 accounts of which half flip. Here without the daemon: the real margin
engine values ``--accounts`` accounts (``tests.storekit.book``, every second one owing 1,800
USDC), the first write stores them all at the calm price (no transition: healthy newcomers are
silent), then the price alternates between a crash (ETH 2,000: every second account becomes
liquidatable) and the calm (ETH 2,500: they recover), each move written as the engine loop
writes it (``HealthStore.write_engine_cycle`` per chunk of ``--chunk`` accounts, 500,000 by
default as ``WRITE_CHUNK_ACCOUNTS``: on PostgreSQL each split, transitions and their rows
committed first, the other rows in a second transaction). Every row's figures
change at every move; half of them flip.

Printed per move: seconds to the commit of the last chunk's transitions (what the last
events wait for), the whole write, and each SQL statement's seconds (the COPY into the stage is
a raw driver call, outside them); then how many `account_health` updates were HOT and the size
of its indexes; then medians. A fresh database
``crossmargin_bench_<random>`` each run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from daemon.cycle_writer import WRITE_CHUNK_ACCOUNTS  # noqa: E402
from daemon.store import cycle  # noqa: E402
from daemon.store.migrate import migrate  # noqa: E402
from daemon.store.rows import CycleContext, HealthRows  # noqa: E402
from daemon.store.writer import HealthStore  # noqa: E402
from margin.model import PriceInput  # noqa: E402
from tests.storekit import book, book_rows, postgres_database  # noqa: E402

CALM_ETH = 2_500.0  # every account healthy (1,800 USDC owed against 2,090 weighted)
CRASH_ETH = 2_000.0  # every second account liquidatable (1,690 weighted)
UNDERWATER_EVERY = 2


@contextmanager
def statement_clock(engine: AsyncEngine) -> Iterator[dict[str, float]]:
    """Seconds per kind of SQL statement executed on ``engine`` while inside."""
    spent: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        t0 = started.pop(id(cursor), None)
        if t0 is not None:
            spent[_kind(statement)] += time.perf_counter() - t0

    sync = engine.sync_engine
    sa.event.listen(sync, "before_cursor_execute", before)
    sa.event.listen(sync, "after_cursor_execute", after)
    try:
        yield spent
    finally:
        sa.event.remove(sync, "before_cursor_execute", before)
        sa.event.remove(sync, "after_cursor_execute", after)


def _kind(statement: str) -> str:
    words = " ".join(statement.split()).lower()
    if "insert into health_transitions" in words and "update account_health" in words:
        return "transitions + flips (one statement)"
    for marker, name in (
        ("insert into health_transitions", "insert transitions"),
        ("insert into account_health", "insert new accounts"),
        ("update account_health", "update health"),
        ("update health_stage", "stage breakdowns"),
        ("insert into cycles", "insert cycle"),
    ):
        if words.startswith(marker) or (marker in words and words.startswith("with ")):
            if name == "update health":
                # the rest compares every figure; the flips only the flags (either tree)
                rest = "is distinct from" in words
                return "update health (rest)" if rest else "update health (flips)"
            return name
    return "other (lock, stage DDL, truncate, fence)"


def sliced(rows: HealthRows, start: int, stop: int) -> HealthRows:
    """Rows ``start:stop`` of ``rows`` (with their ``moved_first`` only if that is all of
    them)."""
    if start == 0 and stop >= len(rows):
        return rows
    columns = {name: getattr(rows, name) for name in rows.__dataclass_fields__}
    return HealthRows(
        **{k: v[start:stop] if isinstance(v, list) else v for k, v in columns.items()}
        | {"moved_first": None}
    )


def moved_first(rows: HealthRows, before: HealthRows) -> HealthRows:
    """``rows`` with the accounts whose flags differ from ``before``'s first, and their count
    as ``moved_first`` (what the engine loop tells the store: ``daemon.stored_flags``)."""
    differs = [a != b for a, b in zip(rows.flags, before.flags, strict=True)]
    moved = [i for i, d in enumerate(differs) if d]
    order = moved + [i for i, d in enumerate(differs) if not d]
    columns: dict[str, Any] = {}
    for name in rows.__dataclass_fields__:
        column = getattr(rows, name)
        columns[name] = [column[i] for i in order] if isinstance(column, list) else column
    return HealthRows(**columns | {"moved_first": len(moved)})


def rows_at(eth: float, accounts: int) -> HealthRows:
    engine = book(accounts, eth_price=eth, underwater_every=UNDERWATER_EVERY)
    engine.set_prices([PriceInput(asset="ETH", price=eth), PriceInput(asset="USDC", price=1.0)])
    return book_rows(engine)


async def explain_plans(engine: AsyncEngine) -> None:
    """Every later connection of ``engine`` gets each slow statement's plan (``auto_explain``
    at NOTICE level, with actual rows and buffers), printed as it arrives."""

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        settings = (
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = '100ms'; "
            "SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; "
            "SET auto_explain.log_level = notice"
        )
        dbapi_conn.run_async(lambda conn: conn.execute(settings))
        dbapi_conn.driver_connection.add_log_listener(lambda _c, msg: print(msg.message))

    sa.event.listen(engine.sync_engine, "connect", on_connect)
    await engine.dispose()


STATS_FLUSH_S = 1.5
"""PostgreSQL publishes a backend's table statistics once it has been idle ~1 s."""


async def update_counts(engine: AsyncEngine) -> str:
    """How many of ``account_health``'s updates were HOT (in place, no index entry), and the
    size of its indexes (they grow by an entry per non-HOT update until vacuumed)."""
    await asyncio.sleep(STATS_FLUSH_S)
    query = sa.text(
        "SELECT n_tup_upd, n_tup_hot_upd, pg_indexes_size(relid) FROM pg_stat_user_tables "
        "WHERE relname = 'account_health'"
    )
    async with engine.connect() as conn:
        updated, hot, index_bytes = (await conn.execute(query)).one()
    return (
        f"account_health: {hot:,} of {updated:,} updates HOT, indexes {index_bytes / 2**20:.0f} MiB"
    )


ONE_STATEMENT: Any = getattr(cycle, "_append_transitions_seeing_new", None)  # None: older tree


async def apart_path(conn: Any, cycle_id: int, at: float, value_decimals: int) -> tuple[int, bool]:
    """The engine's write as before ``i12-hot``'s merge: the transitions (and whether any
    account is new) in one statement, the flips' update (with the listing) in the next, each
    joining the stage against ``account_health``."""
    count, fresh = await ONE_STATEMENT(conn, cycle_id, at, value_decimals, flips=False)
    await cycle._update_health(conn, cycle_id, at, value_decimals, flags_moved=True)
    return count, fresh


async def run(
    accounts: int, moves: int, explain: bool, chunk: int, alternate: bool, guess: bool
) -> None:
    seeing_new = ONE_STATEMENT
    print(f"valuing {accounts:,} accounts at ETH {CALM_ETH:g} and {CRASH_ETH:g} …")
    calm, crash = rows_at(CALM_ETH, accounts), rows_at(CRASH_ETH, accounts)
    flips = sum(1 for a, b in zip(calm.flags, crash.flags, strict=True) if a != b)
    async with postgres_database("crossmargin_bench") as url:
        await migrate(url)
        async with await HealthStore.open(url) as store:
            if explain:
                await explain_plans(store.engine)
            clock = iter(range(1, 10_000))

            async def write(rows: HealthRows) -> tuple[float, float, int, dict[str, float]]:
                """Write ``rows`` in chunks of ``chunk`` accounts, as the engine loop's writer
                does; (seconds to the last chunk's commit of its transitions, whole seconds,
                transitions, seconds per statement)."""
                committed: list[float] = []
                count = 0
                started = time.perf_counter()
                with statement_clock(store.engine) as spent:
                    for start in range(0, len(rows), chunk):
                        at = float(next(clock))
                        key = f"move-{at:g}"
                        count += await store.write_engine_cycle(
                            balances=(),
                            prices=(),
                            rows=sliced(rows, start, start + chunk),
                            context=CycleContext(at=at, blocks={"eth": 1, "arb": 1}, key=key),
                            on_committed=lambda _n: committed.append(time.perf_counter()),
                        )
                total = time.perf_counter() - started
                return committed[-1] - started, total, count, dict(spent)

            _, first, _, _ = await write(calm)
            print(f"first write (every account inserted): {first:.2f} s")
            results = []
            ordered = {
                False: (crash, calm),
                True: (moved_first(crash, calm), moved_first(calm, crash)),
            }
            for i in range(moves):
                guessed = guess and i // 2 % 2 == 1  # crash+rebound pairs alternate
                rows = ordered[guessed][i % 2]
                apart = alternate and i // 2 % 2 == 1  # crash+rebound pairs alternate
                if alternate:
                    cycle._append_transitions_seeing_new = (  # type: ignore[method-assign]
                        apart_path if apart else seeing_new
                    )
                commit_s, total_s, count, spent = await write(rows)
                if count != flips:
                    raise SystemExit(f"move {i}: {count} transitions, expected {flips}")
                results.append((commit_s, total_s))
                if apart:
                    print("  (the transitions and the flips apart)")
                if guessed:
                    print(f"  (the {rows.moved_first:,} accounts that flip staged first)")
                load = os.getloadavg()[0]
                detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items()))
                print(
                    f"move {i + 1} ({'crash' if i % 2 == 0 else 'rebound'}): {count:,} "
                    f"transitions, committed {commit_s:.2f} s, whole {total_s:.2f} s "
                    f"(load {load:.1f}); SQL: {detail}"
                )
            print(await update_counts(store.engine))
    commit = statistics.median(r[0] for r in results)
    whole = statistics.median(r[1] for r in results)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{accounts:,} accounts, {flips:,} flips per move, {moves} moves, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load}: median committed {commit:.2f} s, "
        f"whole {whole:.2f} s ({1e6 * commit / flips:.1f} µs per transition to the commit, "
        f"{1e6 * whole / accounts:.1f} µs per account in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300_000)
    parser.add_argument("--moves", type=int, default=3)
    parser.add_argument("--explain", action="store_true", help="print slow statements' plans")
    parser.add_argument(
        "--chunk", type=int, default=WRITE_CHUNK_ACCOUNTS, help="accounts per write"
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="every other crash+rebound pair with the transitions and the flips in two statements "
        "(in-process A/B)",
    )
    parser.add_argument(
        "--moved-first",
        action="store_true",
        help="every other crash+rebound pair with the flipping accounts staged and committed "
        "first (HealthRows.moved_first, as the engine loop writes; in-process A/B)",
    )
    args = parser.parse_args()
    asyncio.run(
        run(args.accounts, args.moves, args.explain, args.chunk, args.alternate, args.moved_first)
    )


if __name__ == "__main__":
    main()
