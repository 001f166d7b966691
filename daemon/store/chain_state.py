"""One watcher cycle in SQL: reorg roll-back, balance upserts, the chain cursor.

Runs inside the caller's transaction. Balances are current values only (one row per chain,
token and account, with the block it was read at), which is all a restart needs; a reorg
deletes the rows read from orphaned blocks, and the watcher re-reads those pairs on the new
chain in the same update (``chains.watcher.ChainWatcher.roll_back``).

A failed read is a state, not a value: it sets ``failed_block_number`` and leaves the last
good ``raw`` and its block alone (a row that never had a good value keeps ``raw`` NULL, with
the failed read's block). A good read clears the failure. A reorg below a failure but above
the last good value forgets the failure only: the value was read on the surviving chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from chains.readings import ReadColumns
from chains.watcher import BalanceUpdate
from daemon.store.bulk import insert_for, load_stage, on_conflict_update, select_all
from daemon.store.schema import balance_stage, balances, chain_cursors
from daemon.store.types import Timestamp


async def store_balance_update(conn: AsyncConnection, update: BalanceUpdate, now: float) -> int:
    """Apply ``update``; return how many balances the reorg (if any) dropped."""
    dropped = 0
    if update.dropped_above is not None:
        scope = _in_scope(conn, update.scope)
        result = await conn.execute(
            sa.delete(balances).where(
                balances.c.chain == update.chain,
                balances.c.block_number > update.dropped_above,
                *scope,
            )
        )
        dropped = result.rowcount
        await conn.execute(
            sa.update(balances)
            .where(
                balances.c.chain == update.chain,
                balances.c.failed_block_number > update.dropped_above,
                *scope,
            )
            .values(failed_block_number=None)
        )
    await _upsert_balances(conn, update, now)
    await _move_cursor(conn, update, now)
    return dropped


def _in_scope(conn: AsyncConnection, scope: frozenset[str] | None) -> list[sa.ColumnElement[bool]]:
    """The reorg roll-back's account filter: none, or ``account = ANY(:scope)`` (one array
    parameter; a scope is cluster mode, so PostgreSQL)."""
    if scope is None:
        return []
    if conn.dialect.name != "postgresql":
        return [balances.c.account.in_(sorted(scope))]
    array = sa.bindparam("scope", sorted(scope), type_=postgresql.ARRAY(sa.String()))
    return [balances.c.account == sa.any_(array)]


async def _upsert_balances(conn: AsyncConnection, update: BalanceUpdate, now: float) -> None:
    count = len(update.readings)
    if not count:
        return
    await load_stage(conn, balance_stage, _balance_records(update), count=count)
    s = balance_stage.c
    # The stage holds the raw as decimal text (cheap to load): NUMERIC(78, 0) on PostgreSQL.
    raw = s.raw if conn.dialect.name != "postgresql" else sa.cast(s.raw, sa.Numeric(78, 0))
    source = sa.select(
        s.chain,
        s.token,
        s.account,
        raw,
        s.block_number,
        s.block_hash,
        s.failed_block_number,
        sa.literal(now, Timestamp()),
    )
    columns = [*(c.name for c in balance_stage.columns), "updated_at"]
    stmt = insert_for(conn, balances).from_select(columns, select_all(source))
    new, old = stmt.excluded, balances.c
    # A failed read keeps the last good value and the block it came from.
    keep = sa.and_(new.raw.is_(None), old.raw.is_not(None))
    stmt = stmt.on_conflict_do_update(
        index_elements=["chain", "token", "account"],
        set_={
            "raw": sa.case((keep, old.raw), else_=new.raw),
            "block_number": sa.case((keep, old.block_number), else_=new.block_number),
            "block_hash": sa.case((keep, old.block_hash), else_=new.block_hash),
            "failed_block_number": new.failed_block_number,
            "updated_at": new.updated_at,
        },
        # Never replace a reading (good or failed) with one from an older block: replays
        # stay harmless.
        where=sa.and_(
            old.block_number <= new.block_number,
            sa.func.coalesce(old.failed_block_number, old.block_number) <= new.block_number,
        ),
    )
    await conn.execute(stmt)


def _balance_records(update: BalanceUpdate) -> Iterator[tuple[Any, ...]]:
    """``balance_stage`` rows of ``update``, made as the stage is loaded. The watcher's columns
    (``ReadColumns``) go token by token, zipped at C speed: a first sweep is 2,000,000 rows."""
    readings, chain = update.readings, update.chain
    if not isinstance(readings, ReadColumns):
        for (account, token), r in readings.items():
            failed = r.raw is None
            text = None if failed else str(r.raw)
            yield (
                chain,
                token,
                account,
                text,
                r.block_number,
                r.block_hash,
                (r.block_number if failed else None),
            )
        return
    number, block_hash = readings.block_number, readings.block_hash
    for token, column in readings.tokens.items():
        if not column.failed:
            yield from zip(
                repeat(chain),
                repeat(token),
                column.accounts,
                map(str, column.raws),
                repeat(number),
                repeat(block_hash),
                repeat(None),
                strict=False,  # the repeats are endless; the columns are as long as each other
            )
            continue
        for account, raw in zip(column.accounts, column.raws, strict=True):
            failed = raw is None
            yield (
                chain,
                token,
                account,
                None if failed else str(raw),
                number,
                block_hash,
                (number if failed else None),
            )


async def _move_cursor(conn: AsyncConnection, update: BalanceUpdate, now: float) -> None:
    block = update.block
    stmt = insert_for(conn, chain_cursors).values(
        chain=update.chain,
        block_number=block.number,
        block_hash=block.hash,
        block_timestamp=block.timestamp,
        updated_at=now,
    )
    # Forward only, except after a reorg, which may leave the chain shorter than before.
    forward = chain_cursors.c.block_number <= stmt.excluded.block_number
    stmt = on_conflict_update(
        stmt,
        conflict=["chain"],
        update=["block_number", "block_hash", "block_timestamp", "updated_at"],
        where=None if update.dropped_above is not None else forward,
    )
    await conn.execute(stmt)
