"""The MQTT outbox side of ``health_transitions``: marking transitions published.

A market-wide move stores tens of thousands of transitions in one cycle, so no statement here
takes one bind parameter per id (asyncpg refuses more than 32,767; SQLite has its own limit):
PostgreSQL binds every id as ONE array parameter (``id = ANY(:ids)``), SQLite gets bounded
chunks, all in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.store.schema import health_transitions

SQLITE_IDS_PER_STATEMENT = 500  # below SQLite's historical 999-variable limit, with room


def id_chunks(conn: AsyncConnection, ids: Iterable[int]) -> list[list[int]]:
    """``ids`` (deduplicated, ascending) in the groups one statement may bind: all of them
    on PostgreSQL (one array parameter), ``SQLITE_IDS_PER_STATEMENT`` at a time on SQLite."""
    unique = sorted(set(ids))
    if conn.dialect.name == "postgresql":
        return [unique] if unique else []
    step = SQLITE_IDS_PER_STATEMENT
    return [unique[i : i + step] for i in range(0, len(unique), step)]


def id_matches(
    conn: AsyncConnection, column: sa.ColumnElement[int], ids: Sequence[int]
) -> sa.ColumnElement[bool]:
    """``column = ANY(:ids)`` (one array parameter) on PostgreSQL, ``column IN (…)`` on SQLite
    (call it with one of ``id_chunks``' groups)."""
    if conn.dialect.name == "postgresql":
        array = sa.bindparam("ids", list(ids), type_=postgresql.ARRAY(sa.BigInteger()))
        return column == sa.any_(array)
    return column.in_(list(ids))


async def mark_published(conn: AsyncConnection, ids: Iterable[int], at: float) -> int:
    """Set ``published_at`` on the transitions ``ids`` that do not have it yet; how many."""
    t = health_transitions.c
    marked = 0
    for chunk in id_chunks(conn, ids):
        result = await conn.execute(
            sa.update(health_transitions)
            .where(id_matches(conn, t.id, chunk), t.published_at.is_(None))
            .values(published_at=at)
        )
        marked += int(result.rowcount or 0)
    return marked
