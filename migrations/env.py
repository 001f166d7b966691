"""Alembic environment for crossmargin (PostgreSQL via asyncpg, SQLite via aiosqlite).

Normally run by ``crossmargin migrate`` (``daemon.store.migrate``), which hands over an open
connection in ``config.attributes["connection"]``. The ``alembic`` command works too: the URL
then comes from ``-x url=…``, ``$CROSSMARGIN_DATABASE_URL`` or ``sqlalchemy.url``.
SQLite runs in batch mode (it cannot ALTER most things in place).
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection

from daemon.store.engine import create_store_engine
from daemon.store.schema import metadata
from daemon.store.urls import dialect_of, normalize_database_url

config = context.config


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("CROSSMARGIN_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=… or set CROSSMARGIN_DATABASE_URL")
    return normalize_database_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_store_engine(url, foreign_keys=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_offline() -> None:
    """Render SQL for the URL's dialect without connecting (``--sql``)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=dialect_of(url) == "sqlite",
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the caller's connection, or open one for the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async(_url()))


if context.is_offline_mode():
    run_offline()
else:
    run_online()
