"""Async engines for PostgreSQL (asyncpg) and SQLite (aiosqlite), and write transactions.

SQLite is tuned for one writer and concurrent readers: WAL (readers never block the writer
nor see half a transaction), a busy timeout instead of instant ``database is locked``, foreign
keys on, and ``synchronous=NORMAL`` (durable at checkpoints; WAL keeps it consistent).
pysqlite's own transaction handling is switched off and ``BEGIN`` is emitted explicitly, so
DDL on temporary tables is transactional too and writers take the lock up front
(``BEGIN IMMEDIATE``) instead of failing when upgrading a read lock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from daemon.store.errors import StoreUnavailable
from daemon.store.urls import dialect_of, normalize_database_url, shown_url

log = logging.getLogger(__name__)

POOL_SIZE = 5
POOL_MAX_OVERFLOW = 5
POOL_TIMEOUT_S = 30.0
POOL_RECYCLE_S = 1800.0
CONNECT_TIMEOUT_S = 10.0
SQLITE_BUSY_TIMEOUT_MS = 30_000
APPLICATION_NAME = "crossmargin"
PG_TEMP_BUFFERS = "64MB"
_BEGIN_OPTION = "crossmargin_sqlite_begin"


def create_store_engine(url: str, *, foreign_keys: bool = True) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` (short forms accepted), tuned for its dialect.

    ``foreign_keys=False`` is for SQLite migrations: batch mode rebuilds tables by copying.
    """
    url = normalize_database_url(url)
    if dialect_of(url) == "postgresql":
        return create_async_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_S,
            pool_recycle=POOL_RECYCLE_S,
            pool_pre_ping=True,
            connect_args={
                "timeout": CONNECT_TIMEOUT_S,
                "server_settings": {
                    "application_name": APPLICATION_NAME,
                    # Room for a 100k-row staging table in memory (allocated only if used).
                    "temp_buffers": PG_TEMP_BUFFERS,
                },
            },
        )
    memory = sa.make_url(url).database in (None, "", ":memory:")
    pool: dict[str, Any] = {} if memory else {"pool_size": POOL_SIZE, "max_overflow": 0}
    engine = create_async_engine(url, connect_args={"timeout": CONNECT_TIMEOUT_S}, **pool)
    _tune_sqlite(engine, foreign_keys=foreign_keys)
    return engine


def _tune_sqlite(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One write transaction: committed when the block exits, rolled back on an exception."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        async with conn.begin():
            yield conn


async def check_reachable(engine: AsyncEngine) -> None:
    """Connect once; raise ``StoreUnavailable`` (URL redacted) when that fails."""
    url = engine.url.render_as_string(hide_password=False)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except (OSError, TimeoutError, OperationalError, DBAPIError) as exc:
        problem = _describe(exc)
        log.info("store_unreachable url=%s error=%s", shown_url(url), problem)
        raise StoreUnavailable(url, problem) from exc


def _describe(exc: BaseException) -> str:
    """A one-line cause without the SQL or parameters SQLAlchemy appends."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return f"{type(inner).__name__}: {text}"
