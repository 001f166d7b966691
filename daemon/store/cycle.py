"""One engine cycle in SQL: record it, append flag transitions, upsert current health.

All of it runs set-based over the staged rows, with other cycle writers kept out (advisory
lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so the comparison with the stored flags and
their replacement cannot interleave with another cycle:

1. ``cycles`` gets the cycle (``ON CONFLICT (key) DO NOTHING``: a stored cycle is skipped);
2. ``health_transitions`` gets one row per account whose staged flags differ from its stored
   flags (a new account counts as stored with no flags, so a healthy newcomer is silent);
3. ``account_health``: the rows whose flags moved are updated and new accounts inserted, in
   the same transaction as their transitions (``write_health_cycle``; on PostgreSQL the
   engine's write updates the flips in the transitions' statement, from the same join, and
   learns there whether any staged account is new: a market-wide move, which stages none,
   skips that insert's anti-join);
4. the breakdowns, built by the caller only now (``LateBreakdowns``), go onto their staged
   rows, and the other rows that differ (same flags, other figures: after a price move, most
   of them) are updated by ``update_health_rest`` — in the same transaction, or, for a large
   cycle, in the next one on the same connection, so that the transitions and the listing are
   committed (and their events relayed) without waiting for the breakdowns and the bulk of
   the health rows. Flags only ever change in the transaction that appends their transition.

A large cycle whose rows say which accounts the engine expects to move
(``HealthRows.moved_first``) stages only those in its first transaction (for a single
account's move among 100,000 revalued ones, one row instead of 100,000; many of them go in
parts, the later ones through ``append_flips``: ``daemon.store.cycle_transactions``). The
last transaction stages the others beside them (or every row again, after parts) and applies
the stage as a cycle of its own under the same cycle id: an account whose stored flags differ
after all (a restart, a shard taken over, an earlier write that failed half-way) gets its
transition there, exactly once.

``health_listing`` follows ``account_health`` in the same statements
(``daemon.store.listing_writes``).

Money arrives in integer value units and is converted to USD in SQL (exact NUMERIC on
PostgreSQL), so no ``Decimal`` is built per row in Python.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.store.bulk import (
    insert_for,
    load_stage,
    on_conflict_nothing,
    on_conflict_update,
)
from daemon.store.listing_writes import listing_writes, sync_listing, with_listing
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import (
    MONEY_COLUMNS,
    account_health,
    breakdown_stage,
    cycles,
    health_stage,
    health_transitions,
)
from daemon.store.types import Timestamp

Breakdowns = Sequence[tuple[str, str]]
"""(account, breakdown JSON) of some of a cycle's staged accounts."""
LateBreakdowns = Callable[[], Awaitable[Breakdowns]]
"""Builds a cycle's breakdowns once its transitions are stored (a fraction of a millisecond
each: at a market-wide move, up to a second of work that events and the listing need not wait
for; the builder yields to the event loop in between, so the event relay runs meanwhile)."""

CYCLE_LOCK_KEY = 0x63_72_6F_73_73_6D_61_72
"""PostgreSQL advisory lock (transaction-scoped) serializing cycle writers ("crossmar")."""
PG_CYCLE_WORK_MEM = "256MB"
"""A cycle's joins of a 500,000-account chunk against a million stored rows hash in one batch
(64MB split them in 2-4, spilled to temporary files: bench/move_write.py --explain)."""
HEALTH_COLUMNS = [c.name for c in account_health.columns]
_TRANSITION_COLUMNS = [
    "account",
    "cycle_id",
    "from_flags",
    "to_flags",
    "health",
    "health_latency",
    "shortfall",
    "actionable",
    "at",
    "shard",
]


async def write_health_cycle(
    conn: AsyncConnection,
    rows: HealthRows,
    context: CycleContext,
    *,
    returning: bool = True,
    rest: bool = True,
    breakdowns: LateBreakdowns | None = None,
    accounts: int | None = None,
) -> tuple[int | None, int, list[sa.Row[Any]]]:
    """Apply one cycle; return its id (``None`` if it was stored before, then nothing is
    written), how many ``health_transitions`` rows it appended and, with ``returning``, those
    rows. The engine loop needs only the count (the relay reads the outbox): a market-wide
    move appends 50,000 rows, and bringing them back costs ~0.5 s of Python.

    ``rest=False`` leaves the rows whose flags did not move, and ``breakdowns``, for
    ``update_health_rest`` with the returned id, in a later transaction on the same connection
    (the stage is kept); otherwise ``breakdowns`` is called here, after the transitions.
    ``accounts`` is the whole cycle's count when ``rows`` are only its first part (the others
    go to ``update_health_rest`` as ``unstaged``)."""
    await _lock_cycles(conn)
    cycle_id = await _new_cycle(conn, context, len(rows) if accounts is None else accounts)
    if cycle_id is None:
        return None, 0, []
    appended: list[sa.Row[Any]]
    await load_stage(conn, health_stage, rows.records(), count=len(rows))  # streamed to COPY
    count, appended = 0, []
    if len(rows):  # a split cycle's first part may be empty: nobody expected to move
        count, appended = await _apply_stage(
            conn, cycle_id, context.at, rows.value_decimals, returning=returning
        )
    if rest:
        late = () if breakdowns is None else await breakdowns()
        await _stage_breakdowns(conn, late)
        await _update_health(conn, cycle_id, context.at, rows.value_decimals, flags_moved=False)
    await sync_listing(conn)
    return cycle_id, count, appended


async def append_flips(conn: AsyncConnection, cycle_id: int, rows: HealthRows, at: float) -> int:
    """More of cycle ``cycle_id``'s rows whose flags the engine expects to move, in a
    transaction of their own after the cycle's first (``write_health_cycle`` with
    ``rest=False``): their transitions, flips and new accounts. Return how many transitions
    it appended. The stage holds only these rows afterwards: ``update_health_rest`` is then
    given every row of the cycle (``restage``)."""
    await _lock_cycles(conn)
    await load_stage(conn, health_stage, rows.records(), count=len(rows))
    count, _ = await _apply_stage(conn, cycle_id, at, rows.value_decimals, returning=False)
    await sync_listing(conn)
    return count


async def update_health_rest(
    conn: AsyncConnection,
    cycle_id: int,
    at: float,
    value_decimals: int,
    breakdowns: Breakdowns = (),
    *,
    unstaged: HealthRows | None = None,
    restage: bool = False,
) -> int:
    """The rest of cycle ``cycle_id`` (staged by ``write_health_cycle`` on this connection):
    set ``breakdowns`` on their staged rows, then update the stored rows whose flags equal the
    staged ones and whose other figures (breakdown included) differ. Return how many
    transitions this appended: none, unless ``unstaged`` is given.

    Without ``unstaged``, a row whose flags moved meanwhile is left alone (its change needs a
    transition: the next cycle that stages it appends one). ``unstaged`` are the cycle's rows
    its first transaction left out: they are staged beside the others, and the whole stage is
    applied as a cycle (transitions, flips, new accounts) before the rest is updated. The
    first transaction's rows carry their stored flags by then, so only the surprises among
    the others move: their transitions are appended here, under the same cycle id. With
    ``restage``, ``unstaged`` replace the staged rows (they are all of the cycle's rows)."""
    await _lock_cycles(conn)
    count = 0
    if unstaged is not None and len(unstaged):
        await load_stage(
            conn, health_stage, unstaged.records(), count=len(unstaged), append=not restage
        )
    await _stage_breakdowns(conn, breakdowns)  # before the flips below, which store them too
    if unstaged is not None and len(unstaged):
        # Over the whole stage: the first transaction's rows have their stored flags now,
        # so only the surprises among the others differ.
        count, _ = await _apply_stage(conn, cycle_id, at, value_decimals, returning=False)
    await _update_health(conn, cycle_id, at, value_decimals, flags_moved=False)
    await sync_listing(conn)
    return count


async def _apply_stage(
    conn: AsyncConnection, cycle_id: int, at: float, value_decimals: int, *, returning: bool
) -> tuple[int, list[sa.Row[Any]]]:
    """Append the transitions of the staged rows whose flags differ from the stored ones,
    update those rows and insert the new accounts; return the count (and the rows, with
    ``returning``)."""
    if returning or conn.dialect.name != "postgresql":
        count, appended = await _append_transitions(
            conn, cycle_id, at, value_decimals, returning=returning
        )
        await _update_health(conn, cycle_id, at, value_decimals, flags_moved=True)
        fresh = True
    else:  # the transitions and the flips from one join
        count, fresh = await _append_transitions_seeing_new(conn, cycle_id, at, value_decimals)
        appended = []
    if fresh:  # a market-wide move stages no new account: its anti-join was 2-3 s per chunk
        await _insert_health(conn, cycle_id, at, value_decimals)
    return count, appended


async def _stage_breakdowns(conn: AsyncConnection, breakdowns: Breakdowns) -> None:
    """Put ``breakdowns`` onto their staged rows."""
    if breakdowns:
        await load_stage(conn, breakdown_stage, list(breakdowns))
        s, b = health_stage.c, breakdown_stage.c
        await conn.execute(
            sa.update(health_stage).where(s.account == b.account).values(breakdown=b.breakdown)
        )


async def _lock_cycles(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        # One cycle writer at a time: two overlapping cycles would both compare against the
        # same stored flags and report the same change twice. (SQLite: BEGIN IMMEDIATE.)
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CYCLE_LOCK_KEY)))
        # Hash joins of the staged rows against account_health fit in memory this way
        # (the default 4MB spills them to temporary files).
        await conn.execute(sa.text(f"SET LOCAL work_mem = '{PG_CYCLE_WORK_MEM}'"))


async def _new_cycle(conn: AsyncConnection, context: CycleContext, accounts: int) -> int | None:
    stmt = insert_for(conn, cycles).values(
        key=context.cycle_key(),
        at=context.at,
        blocks=dict(sorted(context.blocks.items())),
        prices=context.prices_json(),
        accounts=accounts,
    )
    returning = on_conflict_nothing(stmt, conflict=["key"]).returning(cycles.c.id)
    found = (await conn.execute(returning)).scalar()
    return None if found is None else int(found)


def _usd(
    conn: AsyncConnection, column: sa.ColumnElement[Any], value_decimals: int
) -> sa.ColumnElement[Any]:
    """Value units → USD: exact NUMERIC on PostgreSQL (a product by 0.01 is exact and much
    cheaper than a NUMERIC division), the nearest REAL on SQLite (a division is)."""
    if conn.dialect.name == "postgresql":
        quantum: sa.ColumnElement[Any] = sa.literal_column(f"CAST(1e-{value_decimals} AS NUMERIC)")
        return sa.type_coerce(sa.cast(column, sa.Numeric()) * quantum, sa.Numeric())
    return column / sa.literal_column(f"{10**value_decimals}.0")


def _transition_values(
    conn: AsyncConnection,
    row: Any,
    stored: sa.ColumnElement[Any],
    cycle_id: int,
    at: float,
    value_decimals: int,
) -> list[sa.ColumnElement[Any]]:
    """The ``_TRANSITION_COLUMNS`` of a transition of staged ``row`` (columns of
    ``health_stage``) from its ``stored`` flags."""
    return [
        row.account,
        sa.literal(cycle_id, sa.BigInteger()),
        stored,
        row.flags,
        row.health,
        row.health_latency,
        _usd(conn, row.shortfall, value_decimals),
        row.actionable,
        sa.literal(at, Timestamp()),
        row.shard,
    ]


async def _append_transitions(
    conn: AsyncConnection, cycle_id: int, at: float, value_decimals: int, *, returning: bool
) -> tuple[int, list[sa.Row[Any]]]:
    s, h = health_stage.c, account_health.c
    stored = sa.func.coalesce(h.flags, 0)
    source = (
        sa.select(*_transition_values(conn, s, stored, cycle_id, at, value_decimals))
        .select_from(health_stage.outerjoin(account_health, h.account == s.account))
        .where(stored != s.flags)
    )
    # A plain INSERT, not ON CONFLICT DO NOTHING: ``cycle_id`` was created by this very
    # transaction (a stored cycle is skipped before this), so no row of it can exist yet, and
    # a speculative insertion per row cost PostgreSQL CPU on 50,000-transition cycles.
    stmt = insert_for(conn, health_transitions).from_select(_TRANSITION_COLUMNS, source)
    if returning:
        appended = list((await conn.execute(stmt.returning(*health_transitions.columns))).all())
        return len(appended), appended
    result = await conn.execute(stmt)
    return int(result.rowcount), []


async def _append_transitions_seeing_new(
    conn: AsyncConnection, cycle_id: int, at: float, value_decimals: int, *, flips: bool = True
) -> tuple[int, bool]:
    """``_append_transitions`` on PostgreSQL, without returning rows; also tell whether any
    staged account is not stored yet, and (``flips``) update the stored rows whose flags
    moved, with the listing, all from the same join: one statement, in which the staged rows
    whose stored flags differ or are missing are kept once for the insert, the update and the
    check. (Every part reads the snapshot before any of them wrote: the transitions compare
    with the flags the update replaces.) A move's update of its flips used to join the stage
    against ``account_health`` once more. ``flips=False`` leaves them to ``_update_health``
    (``bench/move_write.py --alternate`` compares the two)."""
    s, h = health_stage.c, account_health.c
    moved = (
        sa.select(*health_stage.c, h.flags.label("stored"))
        .select_from(health_stage.outerjoin(account_health, h.account == s.account))
        .where(sa.or_(h.account.is_(None), h.flags != s.flags))
        .cte("moved")
    )
    m = moved.c
    stored = sa.func.coalesce(m.stored, 0)
    source = sa.select(*_transition_values(conn, m, stored, cycle_id, at, value_decimals)).where(
        stored != m.flags
    )
    appended = (
        insert_for(conn, health_transitions)
        .from_select(_TRANSITION_COLUMNS, source)
        .returning(health_transitions.c.id)
        .cte("appended")
    )
    counts = sa.select(
        sa.select(sa.func.count()).select_from(appended).scalar_subquery(),
        sa.exists().where(m.stored.is_(None)).select_from(moved),
    )
    if flips:  # stored rows only: new accounts are inserted after, when ``fresh``
        values = {
            "health": m.health,
            "health_latency": m.health_latency,
            **{name: _usd(conn, m[name], value_decimals) for name in MONEY_COLUMNS},
            "flags": m.flags,
            "actionable": m.actionable,
            "breakdown": m.breakdown,
            **_cycle_values(cycle_id, at),
        }
        flipped = (
            sa.update(account_health)
            .where(h.account == m.account, m.stored.is_not(None))
            .values(**values)
        )
        counts = counts.add_cte(*listing_writes(conn, flipped, leaving=True)[1])
    count, fresh = (await conn.execute(counts)).one()
    return int(count), bool(fresh)


def _staged_health(conn: AsyncConnection, value_decimals: int) -> sa.Subquery:
    s = health_stage.c
    return sa.select(
        s.account,
        s.health,
        s.health_latency,
        *(_usd(conn, s[name], value_decimals).label(name) for name in MONEY_COLUMNS),
        s.flags,
        s.actionable,
        s.breakdown,
    ).subquery("staged")  # money converted once per row, not once per use


def _cycle_values(cycle_id: int, at: float) -> dict[str, sa.ColumnElement[Any]]:
    return {
        "cycle_id": sa.literal(cycle_id, sa.BigInteger()),
        "updated_at": sa.literal(at, Timestamp()),
    }


async def _update_health(
    conn: AsyncConnection, cycle_id: int, at: float, value_decimals: int, *, flags_moved: bool
) -> int:
    """Update the stored rows whose flags differ from the staged ones (``flags_moved``), or
    those whose flags are equal and whose other figures differ."""
    h = account_health.c
    staged = _staged_health(conn, value_decimals)
    values = {c.name: c for c in staged.c if c.name != "account"}
    if flags_moved:
        which = h.flags != staged.c.flags
    else:
        differs = (h[n].is_distinct_from(v) for n, v in values.items() if n != "flags")
        which = sa.and_(h.flags == staged.c.flags, sa.or_(*differs))
    # One UPDATE … FROM (a hash join; cheaper than ON CONFLICT's per-row speculative
    # insert). An unchanged row is not even locked: no write, no WAL, and it keeps the
    # cycle_id of the cycle that last changed it.
    update = (
        sa.update(account_health)
        .where(h.account == staged.c.account, which)
        .values(**values, **_cycle_values(cycle_id, at))
    )
    if conn.dialect.name != "postgresql":
        result = await conn.execute(update)
        return int(result.rowcount or 0)
    # Flags equal: no row enters or leaves the listing, only listed shortfalls change.
    return await with_listing(conn, update, leaving=flags_moved)


async def _insert_health(
    conn: AsyncConnection, cycle_id: int, at: float, value_decimals: int
) -> None:
    """Insert the staged accounts not stored yet. The conflict clause only matters if a
    second writer slipped in, which the cycle lock rules out."""
    h = account_health.c
    staged = _staged_health(conn, value_decimals)
    cycle = _cycle_values(cycle_id, at)
    fresh = sa.select(*staged.c, *cycle.values()).where(
        ~sa.exists().where(h.account == staged.c.account)
    )
    stmt = insert_for(conn, account_health).from_select(HEALTH_COLUMNS, fresh)
    upsert = on_conflict_update(stmt, conflict=["account"], update=HEALTH_COLUMNS[1:])
    if conn.dialect.name != "postgresql":
        await conn.execute(upsert)
        return
    await with_listing(conn, upsert, leaving=True)
