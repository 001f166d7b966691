"""Async engines for PostgreSQL (asyncpg) and SQLite (aiosqlite), and write transactions.

SQLite is tuned for one writer and concurrent readers: WAL (readers never block the writer
nor see half a transaction), a busy timeout instead of instant ``database is locked``, foreign
keys on, and ``synchronous=NORMAL`` (durable at checkpoints; WAL keeps it consistent).
pysqlite's own transaction handling is switched off and ``BEGIN`` is emitted explicitly, so
DDL on temporary tables is transactional too and writers take the lock up front
(``BEGIN IMMEDIATE``) instead of failing when upgrading a read lock.

A database that cannot answer (down, unreachable, a connection lost mid-statement, a read
past its deadline) surfaces as ``StoreUnavailable`` from every write transaction and every
read (``reporting_unavailable``), so callers catch one error by meaning: the API answers
503, the engine keeps its pending writes and retries. Readers that must answer quickly (the
HTTP API) get an engine of their own with short connect and statement timeouts
(``create_store_engine(url, statement_timeout_s=…)``), so a black-holed database costs them
seconds, not a hang, and never starves the engine's writer of pooled connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.lifecycle import wait_event
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
PG_TEMP_BUFFERS = "256MB"
_BEGIN_OPTION = "crossmargin_sqlite_begin"
MS_PER_S = 1000

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable host, name resolution
    TimeoutError,  # connect or statement timeout, a deadline
    OperationalError,  # server gone, SQLite file locked or unreadable
    InterfaceError,  # the connection was closed under the statement
    DisconnectionError,
    PoolTimeout,  # no pooled connection free in time
    asyncpg.InterfaceError,  # raised by asyncpg before SQLAlchemy wraps anything (connect)
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, cannot connect now, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)


def create_store_engine(
    url: str, *, foreign_keys: bool = True, statement_timeout_s: float | None = None
) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` (short forms accepted), tuned for its dialect.

    ``foreign_keys=False`` is for SQLite migrations: batch mode rebuilds tables by copying.
    ``statement_timeout_s`` bounds connecting, waiting for a pooled connection and every
    statement (PostgreSQL: also server-side); for readers that must answer quickly.
    """
    url = normalize_database_url(url)
    timeout = statement_timeout_s
    connect_s = CONNECT_TIMEOUT_S if timeout is None else min(CONNECT_TIMEOUT_S, timeout)
    pool_s = POOL_TIMEOUT_S if timeout is None else timeout
    if dialect_of(url) == "postgresql":
        settings = {
            "application_name": APPLICATION_NAME,
            # Room for a 500,000-row staging table in memory (~80MB; allocated only if used):
            # at 64MB every statement of a large cycle read its stage back from the OS.
            "temp_buffers": PG_TEMP_BUFFERS,
        }
        bounded: dict[str, Any] = {}
        if timeout is not None:
            settings["statement_timeout"] = str(round(timeout * MS_PER_S))
            bounded["command_timeout"] = timeout  # also ends a statement the network stalls
        return create_async_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            pool_timeout=pool_s,
            pool_recycle=POOL_RECYCLE_S,
            pool_pre_ping=True,
            connect_args={"timeout": connect_s, "server_settings": settings, **bounded},
        )
    memory = sa.make_url(url).database in (None, "", ":memory:")
    pool: dict[str, Any] = {} if memory else {"pool_size": POOL_SIZE, "max_overflow": 0}
    if not memory:
        pool["pool_timeout"] = pool_s
    engine = create_async_engine(url, connect_args={"timeout": connect_s}, **pool)
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
    """One write transaction: committed when the block exits, rolled back on an exception.
    ``StoreUnavailable`` when the database cannot answer."""
    async with write_connection(engine) as conn, conn.begin():
        yield conn


@asynccontextmanager
async def write_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection for write transactions one after the other (``async with
    conn.begin():`` each, ``BEGIN IMMEDIATE`` on SQLite), e.g. to share a staging table.
    ``StoreUnavailable`` when the database cannot answer."""
    async with reporting_unavailable(engine), engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        yield conn


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database did not answer (down, unreachable, connection
    lost, timed out), as opposed to a statement the database refused."""
    if isinstance(exc, (StoreUnavailable, *_UNAVAILABLE)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@asynccontextmanager
async def reporting_unavailable(
    engine: AsyncEngine, *, deadline_s: float | None = None
) -> AsyncIterator[None]:
    """Turn a database that cannot answer into ``StoreUnavailable`` (URL redacted, one-line
    cause); other errors pass unchanged. ``deadline_s`` bounds the whole block (a backstop
    for the driver's own timeouts)."""
    try:
        async with asyncio.timeout(deadline_s):
            yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        url = engine.url.render_as_string(hide_password=False)
        raise StoreUnavailable(url, _describe(exc)) from exc


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


WAIT_FIRST_RETRY_S = 1.0
WAIT_MAX_RETRY_S = 10.0


async def wait_until_reachable(url: str, *, wait_s: float, stop: asyncio.Event) -> bool:
    """At start-up: connect to ``url``, and while it cannot be reached try again (after 1 s,
    doubling up to 10 s) for at most ``wait_s`` seconds — a database still starting, or
    restarted together with the daemon, is waited for instead of failing the start.

    Returns ``False`` when ``stop`` is set while waiting; raises ``StoreUnavailable`` (URL
    redacted, saying how long it waited) when ``wait_s`` has passed.
    """
    engine = create_store_engine(url)
    deadline = asyncio.get_running_loop().time() + wait_s
    delay = WAIT_FIRST_RETRY_S
    try:
        while True:
            try:
                await check_reachable(engine)
            except StoreUnavailable as exc:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise StoreUnavailable(
                        url, f"{exc.problem} (waited {wait_s:g} s: database_wait_s)"
                    ) from exc
                pause = min(delay, left)
                log.warning(
                    "store_waiting url=%s error=%s retry_in_s=%.1f left_s=%.0f",
                    shown_url(url),
                    exc.problem,
                    pause,
                    left,
                )
                if await wait_event(stop, pause):
                    return False
                delay = min(delay * 2, WAIT_MAX_RETRY_S)
            else:
                return True
    finally:
        await engine.dispose()


def _describe(exc: BaseException) -> str:
    """A one-line cause without the SQL or parameters SQLAlchemy appends."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(inner, TimeoutError):
        return "TimeoutError: no answer in time"
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return f"{type(inner).__name__}: {text}"
