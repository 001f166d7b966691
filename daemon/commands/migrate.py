"""``crossmargin migrate``: bring the database schema to a revision, or print its SQL."""

from __future__ import annotations

import asyncio

from daemon.store.migrate import BASE, HEAD, migrate, migration_sql
from daemon.store.urls import shown_url


def run_migrate_command(url: str, *, revision: str = HEAD, sql: bool = False) -> int:
    """``crossmargin migrate``: migrate (or print the SQL) and say what happened; return 0.

    Errors (unreachable database, unknown revision) propagate as ``CrossmarginError``s for
    the CLI to print on one line and exit 1.
    """
    if sql:
        print(migration_sql(url, revision), end="")
        return 0
    result = asyncio.run(migrate(url, revision))
    where = shown_url(url)
    if result.direction == "none":
        print(f"{where}: already at {result.after or BASE}")
    else:
        before, after = result.before or BASE, result.after or BASE
        print(f"{where}: {result.direction} {before} -> {after}")
    return 0
