"""Benchmark of health writes to PostgreSQL (DESIGN §8): one cycle of 100,000 accounts.

    uv run python bench/store.py                  # 100k accounts, 5 runs per case
    uv run python bench/store.py --accounts 20000 --runs 3

Every run uses a fresh database ``crossmargin_bench_<random>`` on 127.0.0.1:5432 (dropped at
the end). The book comes from the real margin engine (``tests.storekit.book``: 1 ETH + 100 USDC
of collateral, USDC debt, 1% of accounts under water); a cycle is ``HealthStore.write_cycle``
end to end (cycle row, staging COPY, transition detection, upsert, commit).

Cases:
- ``changed``: the ETH price alternates between two values, so every account's values change
  and every row is rewritten (the worst case; the target applies to it);
- ``unchanged``: the same results again under a new cycle (a periodic full pass where nothing
  moved): rows are compared and left alone.

Peers measured in the same run, because these machines are noisy:
- ``COPY`` floor: binary COPY of the same 100k rows into an unindexed table — the cheapest
  way to get this data into PostgreSQL at all;
- naive ORM: ``session.merge()`` per row (a SELECT per row, then a batched flush), the way an
  ORM tutorial writes it, on a sample extrapolated to all rows;
- SQLAlchemy Core ``executemany`` of the upsert (its default bulk path, ``insertmanyvalues``),
  on a sample extrapolated to all rows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry

from daemon.store.migrate import migrate
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import MONEY_COLUMNS, account_health, health_stage
from daemon.store.writer import HealthStore
from margin.model import PriceInput
from tests.storekit import book, book_rows, postgres_database

TARGET_S = 1.0
NAIVE_SAMPLE = 2_000
EXECUTEMANY_SAMPLE = 20_000
UNDERWATER_EVERY = 100


class NaiveHealth:
    """An ORM class mapped onto ``account_health`` (for the naive peer only)."""


registry().map_imperatively(NaiveHealth, account_health)


def as_dicts(rows: HealthRows, n: int, cycle_id: int, at: float) -> list[dict[str, Any]]:
    """The first ``n`` rows as ORM/Core parameter dicts (money as ``Decimal`` USD)."""
    out = []
    for i in range(n):
        row: dict[str, Any] = {
            "account": rows.accounts[i],
            "health": rows.health[i],
            "health_latency": rows.health_latency[i],
            "flags": rows.flags[i],
            "actionable": rows.actionable[i],
            "breakdown": None,
            "cycle_id": cycle_id,
            "updated_at": at,
        }
        for name in MONEY_COLUMNS:
            row[name] = Decimal(getattr(rows, name)[i]).scaleb(-rows.value_decimals)
        out.append(row)
    return out


async def timed(step: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await step()
    return time.perf_counter() - started


async def clear(store: HealthStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE account_health"))


async def naive_orm(store: HealthStore, rows: HealthRows) -> float:
    await clear(store)
    sample = min(NAIVE_SAMPLE, len(rows))
    params = as_dicts(rows, sample, 0, 1.0)
    started = time.perf_counter()
    async with AsyncSession(store.engine) as session:
        for values in params:
            obj = NaiveHealth()
            for key, value in values.items():
                setattr(obj, key, value)
            await session.merge(obj)
        await session.commit()
    return (time.perf_counter() - started) * len(rows) / sample


async def core_executemany(store: HealthStore, rows: HealthRows) -> float:
    await clear(store)
    sample = min(EXECUTEMANY_SAMPLE, len(rows))
    params = as_dicts(rows, sample, 0, 1.0)
    stmt = postgresql.insert(account_health)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account"],
        set_={c.name: stmt.excluded[c.name] for c in account_health.columns if c.name != "account"},
    )
    started = time.perf_counter()
    async with store.engine.begin() as conn:
        await conn.execute(stmt, params)
    return (time.perf_counter() - started) * len(rows) / sample


FLOOR = sa.Table(
    "copy_floor",
    sa.MetaData(),
    *(sa.Column(c.name, c.type) for c in health_stage.columns),
)


async def copy_floor(store: HealthStore, rows: HealthRows) -> float:
    records = list(rows.records())
    async with store.engine.connect() as conn:
        await conn.run_sync(FLOOR.drop, checkfirst=True)
        await conn.run_sync(FLOOR.create)
        await conn.commit()
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        started = time.perf_counter()
        async with driver.transaction():
            await driver.copy_records_to_table(FLOOR.name, records=records)
        elapsed = time.perf_counter() - started
        await conn.run_sync(FLOOR.drop)
        await conn.commit()
    return elapsed


async def run(accounts: int, runs: int) -> None:
    engine = book(accounts, underwater_every=UNDERWATER_EVERY)
    rows_a = book_rows(engine)
    engine.set_prices([PriceInput(asset="ETH", price=2_010.0)])
    rows_b = book_rows(engine)
    async with postgres_database("crossmargin_bench") as url:
        await migrate(url)
        async with await HealthStore.open(url) as store:
            clock = iter(range(1, 10_000))

            async def cycle(rows: HealthRows) -> float:
                context = CycleContext(at=float(next(clock)), blocks={"eth": 1, "arb": 1})
                return await timed(lambda: store.write_cycle(rows, context))

            first = await cycle(rows_a)
            changed, unchanged, floor = [], [], []
            for i in range(runs):
                rows = rows_b if i % 2 == 0 else rows_a  # differs from the previous cycle
                changed.append(await cycle(rows))
                unchanged.append(await cycle(rows))  # the same results again
                floor.append(await copy_floor(store, rows_a))
            executemany = await core_executemany(store, rows_a)
            naive = await naive_orm(store, rows_a)
            async with store.engine.connect() as conn:
                version = await conn.scalar(sa.text("SHOW server_version"))
    report(accounts, runs, first, changed, unchanged, floor, executemany, naive, str(version))


def report(
    accounts: int,
    runs: int,
    first: float,
    changed: list[float],
    unchanged: list[float],
    floor: list[float],
    executemany: float,
    naive: float,
    version: str,
) -> None:
    med_changed = statistics.median(changed)
    med_unchanged = statistics.median(unchanged)
    med_floor = statistics.median(floor)
    print(f"PostgreSQL {version}; {accounts:,} accounts; median of {runs} runs\n")
    print("| case | seconds | rows/s | ÷ ours (changed) |")
    print("|---|---:|---:|---:|")
    cases = [
        ("ours, every row changed (worst case)", med_changed),
        ("ours, nothing changed", med_unchanged),
        ("ours, first write into an empty table", first),
        ("floor: binary COPY into an unindexed table", med_floor),
        (f"SQLAlchemy Core executemany upsert ({EXECUTEMANY_SAMPLE:,} extrapolated)", executemany),
        (f"naive ORM merge() per row ({NAIVE_SAMPLE:,} extrapolated)", naive),
    ]
    for name, seconds in cases:
        print(
            f"| {name} | {seconds:.3f} | {accounts / seconds:,.0f} | {seconds / med_changed:.2f}× |"
        )
    print(f"\nall runs, changed: {', '.join(f'{s:.3f}' for s in changed)}")
    print(f"all runs, unchanged: {', '.join(f'{s:.3f}' for s in unchanged)}")
    print(f"all runs, COPY floor: {', '.join(f'{s:.3f}' for s in floor)}")
    verdict = "met" if med_changed <= TARGET_S else "missed"
    print(
        f"\ntarget ≤ {TARGET_S:.1f} s for {accounts:,} changed rows: {verdict} "
        f"({med_changed:.3f} s); naive ORM ÷ ours = {naive / med_changed:.0f}×, "
        f"ours ÷ COPY floor = {med_changed / med_floor:.1f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.accounts, args.runs))


if __name__ == "__main__":
    main()
