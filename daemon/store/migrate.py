"""Alembic, run from code: ``crossmargin migrate`` and the store's start-up schema check.

The Alembic ``Config`` is built here (script location from this file, URL passed as an
attribute), so nothing depends on the working directory or an ``alembic.ini``. Online
migrations run on a connection of our own async engine (``migrations/env.py`` picks it up
from ``config.attributes``); ``--sql`` renders the DDL offline without connecting.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from daemon.store.engine import check_reachable, create_store_engine
from daemon.store.errors import MigrationFailed, SchemaNotCurrent
from daemon.store.urls import normalize_database_url, shown_url

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x63_6D_2D_6D_69_67_72_74
"""PostgreSQL advisory lock (transaction-scoped) serializing migrations ("cm-migrt")."""

MIGRATIONS_PACKAGE = "migrations"  # installed beside daemon/ by the wheel, as in a checkout
HEAD = "head"
BASE = "base"


def migrations_dir() -> Path:
    """The Alembic script directory, wherever the package is installed (a wheel installs it
    as files, which Alembic needs)."""
    return Path(str(files(MIGRATIONS_PACKAGE)))


def alembic_config(url: str | None = None, *, output: io.StringIO | None = None) -> Config:
    """An Alembic ``Config`` for our ``migrations/`` directory (no ini file involved)."""
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        # An attribute, not a main option: ConfigParser would choke on '%' in passwords.
        config.attributes["url"] = normalize_database_url(url)
    return config


def head_revision() -> str:
    """The newest revision in ``migrations/versions``."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationFailed("-", "no migration scripts found")
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def ensure_at_head(engine: AsyncEngine) -> None:
    """Raise ``SchemaNotCurrent`` unless the database is at the newest revision."""
    current, expected = await current_revision(engine), head_revision()
    if current != expected:
        url = engine.url.render_as_string(hide_password=False)
        raise SchemaNotCurrent(url, current, expected)


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """Where a migration started and ended."""

    before: str | None
    after: str | None
    direction: str  # "upgrade", "downgrade" or "none"


def _direction(script: ScriptDirectory, current: str | None, target: str) -> str:
    if target.startswith("-") or target == BASE:
        return "downgrade"
    if target.startswith("+") or current is None:
        return "upgrade"
    resolved = script.get_revision(target)
    if resolved is None:
        return "none" if current is None else "downgrade"
    if resolved.revision == current:
        return "none"
    below_current = {r.revision for r in script.iterate_revisions(current, BASE)}
    return "downgrade" if resolved.revision in below_current else "upgrade"


async def migrate(url: str, revision: str = HEAD) -> MigrationResult:
    """Upgrade or downgrade the database at ``url`` to ``revision`` (``head``, ``base``, a
    revision id, or a relative step like ``-1``); the direction follows from where it is.

    Raises ``StoreUnavailable`` when the database cannot be reached, ``MigrationFailed``
    for an unknown revision or failing DDL.
    """
    engine = create_store_engine(url, foreign_keys=False)
    try:
        await check_reachable(engine)
        config = alembic_config(url)
        script = ScriptDirectory.from_config(config)
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas started together with --migrate take turns: the first migrates,
                # the others find the schema at head (one transaction: DDL is atomic here).
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            before = await conn.run_sync(_current)
            try:
                direction = _direction(script, before, revision)
                if direction != "none":
                    await conn.run_sync(_run, config, direction, revision)
            except (CommandError, RevisionError) as exc:
                raise MigrationFailed(url, str(exc)) from exc
            after = await conn.run_sync(_current)
    finally:
        await engine.dispose()
    log.info(
        "migrated url=%s direction=%s from=%s to=%s",
        shown_url(url),
        direction,
        before,
        after,
    )
    return MigrationResult(before=before, after=after, direction=direction)


def _run(connection: Connection, config: Config, direction: str, revision: str) -> None:
    config.attributes["connection"] = connection
    if direction == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


def migration_sql(url: str, revision: str = HEAD) -> str:
    """The SQL that takes an empty database to ``revision`` (or, for ``base``, from head
    down to nothing), rendered offline for ``url``'s dialect; nothing is executed."""
    output = io.StringIO()
    config = alembic_config(url, output=output)
    try:
        if revision == BASE:
            command.downgrade(config, f"{HEAD}:{BASE}", sql=True)
        else:
            command.upgrade(config, revision, sql=True)
    except (CommandError, RevisionError) as exc:
        raise MigrationFailed(url, str(exc)) from exc
    return output.getvalue()
