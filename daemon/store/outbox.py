"""The MQTT outbox side of ``health_transitions``: marking transitions published.

A market-wide move stores tens of thousands of transitions in one cycle, so no statement here
takes one bind parameter per id (asyncpg refuses more than 32,767; SQLite has its own limit):
PostgreSQL binds every id as ONE array parameter (``id = ANY(:ids)``), SQLite gets bounded
chunks, all in the caller's transaction. ``OutboxConnection`` is the event relay's own
connection for its unfenced reads and marks on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.amounts import scaled
from daemon.store.engine import APPLICATION_NAME, CONNECT_TIMEOUT_S
from daemon.store.errors import StoreUnavailable
from daemon.store.records import OutboxEntry, outbox_entries
from daemon.store.schema import health_transitions

SQLITE_IDS_PER_STATEMENT = 500  # below SQLite's historical 999-variable limit, with room
OUTBOX_STATEMENT_TIMEOUT_S = 60.0  # the relay's own connection: a statement hung this long
# (a network stall, a wedged server) drops the connection and is retried on a new one
BLOCKS_CACHED_CYCLES = 64  # cycles whose block numbers the relay's connection keeps

T = TypeVar("T")


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


class OutboxConnection:
    """The event relay's own PostgreSQL connections, outside the pool, for its unfenced reads
    and marks: each one raw statement, one round trip, in autocommit (one statement sees one
    snapshot, so no transaction is needed without a fence to check).

    A market-wide move's 50,000 transitions went through ``StoreQueries.outbox`` at ~10 µs a
    row of CPU on the daemon's event loop (SQLAlchemy's result processing) plus 4-5 round
    trips per batch (the pool's pre-ping, ``BEGIN``, the rows, the cycles' blocks,
    ``COMMIT``), each at least a turn of that loop (bench/RESULTS.md, issue 14). Here a row
    costs ~4 µs, a read one round trip (the cycles' blocks are read once per cycle: a cycle
    row never changes once committed) and a mark one. The entries are those
    ``StoreQueries.outbox`` returns for the same rows (a test holds them equal).

    Cluster mode keeps ``StoreQueries.outbox``: its claim checks the fence in the read's own
    transaction. Reads and marks have a connection each (the relay reads the next batch
    while it marks the previous one), opened on first use; a failure drops it
    (``StoreUnavailable``: the relay retries, which opens a new one).
    """

    def __init__(self, engine: AsyncEngine, *, value_decimals: int) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("OutboxConnection needs PostgreSQL")
        self._engine = engine
        self._quantum = scaled(1, value_decimals)
        # Reads and marks on a connection each: the relay reads the next batch while it marks
        # the previous one, and one connection runs one statement at a time.
        self._reads = _Session(self._connect)
        self._marks = _Session(self._connect)
        self._blocks: dict[int, dict[str, int]] = {}  # cycle id → its block numbers

    async def read(self, *, limit: int, after_id: int = 0) -> list[OutboxEntry]:
        """The first ``limit`` unpublished transitions above ``after_id``, in id order (as
        ``StoreQueries.outbox(limit=…, after_id=…)``)."""
        rows = await self._run(self._reads, lambda c: c.fetch(_READ_SQL, after_id, max(1, limit)))
        missing = {row[2] for row in rows} - self._blocks.keys()
        if missing:
            if len(self._blocks) + len(missing) > BLOCKS_CACHED_CYCLES:
                self._blocks.clear()
            ids = sorted(missing)
            found = await self._run(self._reads, lambda c: c.fetch(_BLOCKS_SQL, ids))
            for cycle_id, document in found:
                self._blocks[cycle_id] = {str(k): int(v) for k, v in json.loads(document).items()}
        return outbox_entries(rows, self._blocks, self._quantum)

    async def mark(self, ids: Iterable[int], at: float) -> int:
        """Set ``published_at`` on the transitions ``ids`` that do not have it yet, in one
        statement (``mark_published``); how many."""
        unique = sorted(set(ids))
        if not unique:
            return 0
        moment = datetime.fromtimestamp(at, UTC)
        status = await self._run(self._marks, lambda c: c.execute(_MARK_SQL, unique, moment))
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE <count>"

    def close(self) -> None:
        """Drop the connections (idempotent, never waits: also from a cancelled task). The
        next read or mark opens a new one."""
        self._reads.close()
        self._marks.close()

    async def _run(
        self, session: _Session, statement: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        try:
            return await session.run(statement)
        except _CONNECTION_FAULTS as exc:
            url = self._engine.url.render_as_string(hide_password=True)
            raise StoreUnavailable(url, f"{type(exc).__name__}: {exc}") from exc

    async def _connect(self) -> asyncpg.Connection:
        _, params = self._engine.dialect.create_connect_args(self._engine.url)
        return await asyncpg.connect(
            **params,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=OUTBOX_STATEMENT_TIMEOUT_S,
            server_settings={"application_name": f"{APPLICATION_NAME}-relay"},
        )


class _Session:
    """One asyncpg connection, opened on first use, one statement at a time; any failure
    drops it (the next statement opens a new one)."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._conn: asyncpg.Connection | None = None
        self._turn = asyncio.Lock()

    async def run(self, statement: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self._turn:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                return await statement(self._conn)
            except BaseException:
                self.close()  # cancelled mid-statement too: the connection's state is unknown
                raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()


_CONNECTION_FAULTS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection the server ended mid-statement: "cannot switch to state …; another
    # operation is in progress" (asyncpg 0.32), not an InterfaceError.
    asyncpg.InternalClientError,
)

_READ_SQL = (
    "SELECT id, account, cycle_id, from_flags, to_flags, health, health_latency, shortfall,"
    # ``at`` as unix seconds, as the ``Timestamp`` type gives it (both correctly rounded
    # from the stored microseconds: equal floats).
    " actionable, extract(epoch FROM at)::float8"
    " FROM health_transitions WHERE id > $1 AND published_at IS NULL"
    " ORDER BY id LIMIT $2"
)
_BLOCKS_SQL = "SELECT id, blocks::text FROM cycles WHERE id = ANY($1::bigint[])"
_MARK_SQL = (
    "UPDATE health_transitions SET published_at = $2"
    " WHERE id = ANY($1::bigint[]) AND published_at IS NULL"
)
