"""``health_listing`` (the ranked liquidatable accounts) kept in step with ``account_health``.

On PostgreSQL it follows ``account_health`` in the same statements as the cycle's writes
(``daemon.store.cycle``): each update or insert returns the rows it changed, and a listed row
is inserted into the listing (or gets its new shortfall there), an unlisted one is deleted
from it (a flip is one narrow insert or delete; ``account_health`` has no index but its key,
so its updates are HOT). SQLite brings the staged accounts' listing in line once per
transaction (``sync_listing``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.store.bulk import insert_for, on_conflict_update
from daemon.store.schema import account_health, health_listing, health_stage, listed


async def with_listing(conn: AsyncConnection, write: Any, *, leaving: bool) -> int:
    """Run ``write`` (an UPDATE or INSERT of ``account_health``, PostgreSQL) with the
    listing's side in the same statement (``listing_writes``). Return how many
    ``account_health`` rows it wrote."""
    written, ctes = listing_writes(conn, write, leaving=leaving)
    counted = sa.select(sa.select(sa.func.count()).select_from(written).scalar_subquery())
    return int((await conn.execute(counted.add_cte(*ctes))).scalar_one())


def listing_writes(conn: AsyncConnection, write: Any, *, leaving: bool) -> tuple[Any, list[Any]]:
    """``write`` (an UPDATE or INSERT of ``account_health``, PostgreSQL) as a CTE returning
    the rows it wrote, and the CTEs that follow it into the listing: of those rows, the listed
    ones are inserted into ``health_listing`` or, already there, given their new shortfall;
    if rows may have left the listing (``leaving``), the unlisted ones are deleted from it.
    Data-modifying CTEs run whether or not the outer query reads them: add them all to it.

    Plain statements, no ``ON CONFLICT``: every part reads the same snapshot, taken under the
    cycle lock, so the insert (accounts not in the listing) and the update (accounts in it)
    never meet, and a speculative insertion per entering account cost ~25 % more."""
    h, li = account_health.c, health_listing.c
    written = write.returning(h.account, h.flags, h.shortfall).cte("written")
    w = written.c
    absent = ~sa.exists().where(li.account == w.account)
    entered = insert_for(conn, health_listing).from_select(
        ["account", "shortfall"],
        sa.select(w.account, w.shortfall).where(listed(w.flags), absent),
    )
    reranked = (
        sa.update(health_listing)
        .where(li.account == w.account, listed(w.flags), li.shortfall != w.shortfall)
        .values(shortfall=w.shortfall)
    )
    ctes = [written, entered.cte("entered"), reranked.cte("reranked")]
    if leaving:
        left = sa.delete(health_listing).where(li.account == w.account, ~listed(w.flags))
        ctes.append(left.cte("left"))
    return written, ctes


async def sync_listing(conn: AsyncConnection) -> None:
    """SQLite: make ``health_listing`` agree with the staged accounts' stored rows (delete the
    unlisted, upsert the listed). PostgreSQL keeps it in step statement by statement."""
    if conn.dialect.name == "postgresql":
        return
    s, h, li = health_stage.c, account_health.c, health_listing.c
    staged = sa.select(h.account, h.flags, h.shortfall).join(health_stage, s.account == h.account)
    unlisted = staged.where(~listed(h.flags)).with_only_columns(h.account)
    await conn.execute(sa.delete(health_listing).where(li.account.in_(unlisted)))
    entering = insert_for(conn, health_listing).from_select(
        ["account", "shortfall"],
        staged.where(listed(h.flags)).with_only_columns(h.account, h.shortfall),
    )
    await conn.execute(
        on_conflict_update(
            entering,
            conflict=["account"],
            update=["shortfall"],
            where=li.shortfall != entering.excluded.shortfall,
        )
    )
