"""Bulk writes shared by every table: dialect-specific upserts and staged loads.

A large write goes in two steps inside the caller's transaction: rows are loaded into a
per-connection temporary table (PostgreSQL: binary ``COPY`` through asyncpg, the fastest way
in; SQLite: one ``executemany``), then one set-based ``INSERT … SELECT … ON CONFLICT`` moves
them into place. Set-based SQL also lets the database itself compare new and stored rows
(health transitions) in the same snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateTable

ANALYZE_STAGE_MAX_ROWS = 1_000  # PostgreSQL: stages up to this many rows get fresh statistics

Upsert = postgresql.Insert | sqlite.Insert


def insert_for(conn: AsyncConnection, table: sa.Table) -> Upsert:
    """An INSERT of the connection's dialect that supports ``ON CONFLICT``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def on_conflict_update(
    stmt: Upsert,
    *,
    conflict: Sequence[str],
    update: Iterable[str],
    where: sa.ColumnElement[bool] | None = None,
) -> Upsert:
    """``stmt`` with ``ON CONFLICT (conflict) DO UPDATE SET c = excluded.c`` for ``update``.

    ``where`` restricts the update (e.g. never move a balance back to an older block); a row
    that fails it is left as it is, which keeps replays idempotent.
    """
    excluded = stmt.excluded
    values = {name: excluded[name] for name in update}
    return stmt.on_conflict_do_update(index_elements=list(conflict), set_=values, where=where)


def on_conflict_nothing(stmt: Upsert, *, conflict: Sequence[str] | None = None) -> Upsert:
    """``stmt`` with ``ON CONFLICT [(conflict)] DO NOTHING``."""
    elements = None if conflict is None else list(conflict)
    return stmt.on_conflict_do_nothing(index_elements=elements)


def select_all(select: sa.Select[Any]) -> sa.Select[Any]:
    """``select`` made safe as the source of an ``INSERT … SELECT … ON CONFLICT``.

    SQLite's parser reads ``ON`` after a bare ``FROM t`` as a join constraint; a ``WHERE``
    clause removes the ambiguity (harmless elsewhere).
    """
    return select.where(sa.true())


async def load_stage(
    conn: AsyncConnection,
    stage: sa.Table,
    rows: Sequence[tuple[Any, ...]] | Iterator[tuple[Any, ...]],
    *,
    count: int | None = None,
    append: bool = False,
) -> None:
    """Create ``stage`` for this connection if needed, empty it, and fill it with ``rows``
    (tuples in column order). Must run inside the caller's transaction. (A PostgreSQL stage
    is emptied at commit, unless it is ``ON COMMIT PRESERVE ROWS``: then here.) With
    ``append``, the rows go beside those a ``PRESERVE ROWS`` stage kept from an earlier
    transaction on this connection (SQLite: from earlier in this one).

    ``rows`` may be an iterator (with its ``count``): PostgreSQL's COPY then encodes each
    tuple as it is made, and 2,000,000 staged balances are never all held at once."""
    if count is None:
        if not isinstance(rows, Sequence):
            raise TypeError("load_stage: an iterator of rows needs its count")
        count = len(rows)
    # Executing through SQLAlchemy first also makes sure asyncpg's transaction has started
    # before the raw COPY below runs on the same connection.
    await conn.execute(CreateTable(stage, if_not_exists=True))
    if not append:
        await _empty(conn, stage)
    if not count:
        return
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(
            stage.name, records=rows, columns=[c.name for c in stage.columns]
        )
        if count <= ANALYZE_STAGE_MAX_ROWS and not append:
            # A never-analysed temp table makes the planner hash-join the whole target table
            # for a one-row stage; statistics turn that into primary-key probes (bench/e2e.py:
            # a one-row health cycle 46-52 ms -> 29-32 ms). Large stages gain nothing from it.
            # (Not after an append: the planner scales the row count it knows by the pages
            # the stage has grown to.)
            await conn.exec_driver_sql(f"ANALYZE {stage.name}")
        return
    marks = ", ".join("?" for _ in stage.columns)
    await conn.exec_driver_sql(f"INSERT INTO {stage.name} VALUES ({marks})", list(rows))  # noqa: S608


async def _empty(conn: AsyncConnection, stage: sa.Table) -> None:
    """Empty ``stage`` of what it may still hold: an earlier load's rows in this transaction
    (SQLite), or, on PostgreSQL, those an ``ON COMMIT PRESERVE ROWS`` stage kept past a
    commit (others are emptied by the commit)."""
    if conn.dialect.name != "postgresql":
        await conn.execute(sa.delete(stage))
    elif stage.dialect_options["postgresql"]["on_commit"] == "PRESERVE ROWS":
        await conn.exec_driver_sql(f"TRUNCATE {stage.name}")
