"""Venue entries in the store (``venue_accounts``): written by the daemon's venue feeds, read
by the API, and the outbox of MQTT venue events.

A row holds the entry's document (``daemon.documents.venue_document``) and what ranks it.
``announced_liquidatable`` is the state the last acknowledged MQTT venue event told; a row
where it differs from ``liquidatable`` is an event still to deliver, so a crash between the
write and the broker's PUBACK re-sends it at the next start (at least once), and a restart
with nothing changed sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.store.bulk import insert_for, on_conflict_update
from daemon.store.schema import venue_accounts

_UPDATED = (
    "kind",
    "chain",
    "block_number",
    "liquidatable",
    "stale",
    "profit_usd",
    "shortfall_usd",
    "document",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class VenueRow:
    """One venue entry as stored."""

    venue: str
    account: str
    kind: str
    chain: str
    block_number: int
    liquidatable: bool
    stale: bool
    profit_usd: float | None
    shortfall_usd: float | None
    document: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class VenueAnnouncement:
    """A venue transition not yet acknowledged by the broker."""

    venue: str
    account: str
    liquidatable: bool
    document: Mapping[str, Any]


async def upsert_venue_rows(conn: AsyncConnection, rows: Sequence[VenueRow], at: float) -> None:
    """Insert or replace ``rows`` (a new row starts announced as not liquidatable)."""
    if not rows:
        return
    values = [
        {
            "venue": r.venue,
            "account": r.account,
            "kind": r.kind,
            "chain": r.chain,
            "block_number": r.block_number,
            "liquidatable": r.liquidatable,
            "stale": r.stale,
            "profit_usd": r.profit_usd,
            "shortfall_usd": r.shortfall_usd,
            "document": dict(r.document),
            "announced_liquidatable": False,
            "updated_at": at,
        }
        for r in rows
    ]
    stmt = on_conflict_update(
        insert_for(conn, venue_accounts), conflict=["venue", "account"], update=_UPDATED
    )
    await conn.execute(stmt, values)


async def unannounced(conn: AsyncConnection, limit: int) -> list[VenueAnnouncement]:
    """Rows whose liquidatable state differs from the one last announced, oldest first."""
    v = venue_accounts.c
    query = (
        sa.select(v.venue, v.account, v.liquidatable, v.document)
        .where(v.liquidatable != v.announced_liquidatable)
        .order_by(v.updated_at, v.venue, v.account)
        .limit(limit)
    )
    return [
        VenueAnnouncement(r.venue, r.account, r.liquidatable, _document(r.document))
        for r in (await conn.execute(query)).all()
    ]


async def mark_announced(conn: AsyncConnection, announced: Iterable[VenueAnnouncement]) -> None:
    """Record that these transitions reached the broker (a row that moved again since keeps
    its difference and is announced again)."""
    v = venue_accounts.c
    for a in announced:
        await conn.execute(
            sa.update(venue_accounts)
            .where(v.venue == a.venue, v.account == a.account, v.liquidatable == a.liquidatable)
            .values(announced_liquidatable=a.liquidatable)
        )


async def entries_of(conn: AsyncConnection, accounts: Sequence[str]) -> dict[str, list[Any]]:
    """Account → its venue documents (by venue name)."""
    if not accounts:
        return {}
    v = venue_accounts.c
    query = (
        sa.select(v.account, v.document)
        .where(v.account.in_(list(accounts)))
        .order_by(v.account, v.venue)
    )
    found: dict[str, list[Any]] = {}
    for row in (await conn.execute(query)).all():
        found.setdefault(row.account, []).append(_document(row.document))
    return found


def _liquidatable_where(venue: str | None) -> list[sa.ColumnElement[bool]]:
    v = venue_accounts.c
    where: list[sa.ColumnElement[bool]] = [v.liquidatable.is_(True)]
    if venue is not None:
        where.append(v.venue == venue)
    return where


async def liquidatable_entries(
    conn: AsyncConnection, *, venue: str | None, limit: int, offset: int
) -> list[Any]:
    """Liquidatable venue documents: most profitable plan first (unpriced last), then the
    largest shortfall."""
    v = venue_accounts.c
    query = (
        sa.select(v.document)
        .where(*_liquidatable_where(venue))
        .order_by(
            v.profit_usd.is_(None),
            v.profit_usd.desc(),
            v.shortfall_usd.is_(None),
            v.shortfall_usd.desc(),
            v.venue,
            v.account,
        )
        .limit(limit)
        .offset(offset)
    )
    return [_document(r.document) for r in (await conn.execute(query)).all()]


async def count_liquidatable(conn: AsyncConnection, *, venue: str | None) -> int:
    """How many venue entries are liquidatable (in ``venue``, or in all)."""
    query = sa.select(sa.func.count()).select_from(venue_accounts)
    return int((await conn.execute(query.where(*_liquidatable_where(venue)))).scalar_one())


async def liquidatable_states(conn: AsyncConnection) -> dict[tuple[str, str], bool]:
    """(venue, account) → stored liquidatable state (a restart's starting point)."""
    v = venue_accounts.c
    rows = (await conn.execute(sa.select(v.venue, v.account, v.liquidatable))).all()
    return {(r.venue, r.account): bool(r.liquidatable) for r in rows}


def _document(value: Any) -> Any:
    # SQLite's JSON column may hand back text on some drivers; PostgreSQL JSONB a dict.
    return json.loads(value) if isinstance(value, str) else value
