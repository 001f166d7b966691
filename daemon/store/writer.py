"""``HealthStore``: every write of the daemon, one transaction each, idempotent.

    async with await HealthStore.open(url) as store:      # checks the schema is at head
        state = await store.load_state()                   # resume after a restart
        await store.apply_balance_update(update)           # per watcher cycle (reorg-aware)
        await store.record_prices(prices)                  # per oracle round
        transitions = await store.write_cycle(rows, context)  # per engine cycle

Transitions are decided by the database, not by memory: a cycle's flags are compared with
the stored flags in the same transaction that replaces them. So a restart (or a second
replica) needs no cache to avoid duplicates: the first cycle after it compares against what
is stored. A cycle whose key is already stored is skipped whole (a retry after a lost
commit acknowledgement, or a stale replay that must not undo newer cycles); a new cycle's
transitions carry its new id, one per account at most (``HealthRows`` stages each account
once), so no change is appended twice without a unique key to check it (migration 0009).

Transitions double as the MQTT outbox: ``queries.outbox()`` lists what still has to be
published, ``mark_published`` takes it out once the broker acknowledged it, so a crash
between commit and acknowledgement loses no event (``daemon.mqtt.relay``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chains.watcher import BalanceUpdate
from core.amounts import scaled
from core.lifecycle import AsyncResource
from daemon.store import migrate
from daemon.store import venues as venue_store
from daemon.store.bulk import insert_for, on_conflict_nothing, on_conflict_update
from daemon.store.chain_state import store_balance_update
from daemon.store.cycle import (
    LateBreakdowns,
    append_flips,
    update_health_rest,
    write_health_cycle,
)
from daemon.store.engine import (
    check_reachable,
    create_store_engine,
    write_connection,
    write_transaction,
)
from daemon.store.fencing import Fence, check_fence
from daemon.store.options import replace_options
from daemon.store.outbox import mark_published
from daemon.store.queries import StoreQueries
from daemon.store.records import StoredState, StoredTransition, transition_from_row
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import (
    oracle_state,
    positions,
    price_history,
    token_decimals,
)
from daemon.store.urls import shown_url
from daemon.store.venues import VenueAnnouncement, VenueRow
from margin.model import Position
from margin.options import OptionPosition
from oracles.model import AssetPrice
from oracles.resume import state_to_json

log = logging.getLogger(__name__)

SPLIT_CYCLE_ROWS = 1_000
"""A health cycle of at least this many rows commits its transitions (with the rows whose flags
moved) first and updates its other rows in a second transaction: a market-wide move rewrites
every account, and its events and listing need only the flipped ones. On PostgreSQL always;
on SQLite only when the rows say which accounts the engine expects to move
(``HealthRows.moved_first``), so that the first transaction stages only those. (With every
row staged first, SQLite's second transaction only competed with the event relay for the
daemon's CPU, and the whole write took longer; bench/RESULTS.md, issue 14.)"""


FLIP_PARTS = 2
FLIP_PART_MIN_ROWS = 10_000
"""The accounts a large write expects to move, when they are at least twice this many, are
committed (with their transitions) in ``FLIP_PARTS`` transactions one after the other: the
event relay, woken at each commit, sends the first part's events while the next is written.
A market-wide move's 50,000 flips took 0.7-1.3 s of PostgreSQL in one transaction, all of it
before the first event; in two, the first events leave after half of it (bench/RESULTS.md,
issue 14, seventh pass). Few parts: each costs one more join of its rows against every
stored row."""


class HealthStore(AsyncResource):
    """The daemon's persistent state in PostgreSQL or SQLite (see ``daemon.store.schema``)."""

    def __init__(self, engine: AsyncEngine, *, value_decimals: int = 2) -> None:
        self.engine = engine
        self.value_decimals = value_decimals
        self.queries = StoreQueries(engine, value_decimals=value_decimals)

    @classmethod
    async def open(
        cls, url: str, *, value_decimals: int = 2, check_schema: bool = True
    ) -> HealthStore:
        """Connect to ``url``; raise ``StoreUnavailable`` if unreachable and
        ``SchemaNotCurrent`` (run ``crossmargin migrate``) unless the schema is at head."""
        engine = create_store_engine(url)
        try:
            await check_reachable(engine)
            if check_schema:
                await migrate.ensure_at_head(engine)
        except BaseException:
            await engine.dispose()
            raise
        log.info("store_open url=%s dialect=%s", shown_url(url), engine.dialect.name)
        return cls(engine, value_decimals=value_decimals)

    async def close(self) -> None:
        """Close every pooled connection (idempotent)."""
        await self.engine.dispose()

    # ---- chains -----------------------------------------------------------------------------

    async def apply_balance_update(self, update: BalanceUpdate, *, at: float | None = None) -> None:
        """Store one watcher cycle: drop balances read above ``dropped_above`` (a reorg
        orphaned them), upsert the new readings, move the chain cursor to ``update.block``.

        A reading never replaces one from a newer block, so replaying an update is harmless;
        the cursor only moves back when the update carries a reorg.
        """
        async with write_transaction(self.engine) as conn:
            dropped = await store_balance_update(conn, update, time.time() if at is None else at)
        log.debug(
            "balances_stored chain=%s block=%d readings=%d dropped=%d",
            update.chain,
            update.block.number,
            len(update.readings),
            dropped,
        )

    async def record_token_decimals(
        self, chain: str, decimals: Mapping[str, int], *, at: float | None = None
    ) -> None:
        """Remember the decimals of ``chain``'s tokens (token → decimals), so that a restart
        can value their stored balances even when the chain no longer answers ``decimals()``."""
        if not decimals:
            return
        now = time.time() if at is None else at
        rows = [
            {"chain": chain, "token": token, "decimals": value, "updated_at": now}
            for token, value in sorted(decimals.items())
        ]
        async with write_transaction(self.engine) as conn:
            stmt = on_conflict_update(
                insert_for(conn, token_decimals),
                conflict=["chain", "token"],
                update=["decimals", "updated_at"],
            )
            await conn.execute(stmt, rows)

    # ---- prices -----------------------------------------------------------------------------

    async def record_prices(self, prices: Iterable[AssetPrice]) -> None:
        """Append oracle rounds to the price history (a round already stored is skipped) and
        keep each asset's resumable oracle state (``oracle_state``) at its newest round."""
        rounds = list(prices)
        if not rounds:
            return
        async with write_transaction(self.engine) as conn:
            await _insert_prices(conn, rounds)

    # ---- health -----------------------------------------------------------------------------

    async def write_cycle(self, rows: HealthRows, context: CycleContext) -> list[StoredTransition]:
        """Store one engine cycle atomically: record the cycle, append a transition for every
        account whose flags differ from the stored ones (an account seen for the first time
        counts as coming from no flags), update the rows that changed and insert new
        accounts. Return the new transitions.

        A cycle whose key is already stored is not applied again (nothing changes, ``[]``).
        """
        _, appended = await self._write(
            balances=(), prices=(), rows=rows, context=context, returning=True
        )
        quantum = scaled(1, self.value_decimals)
        return [transition_from_row(row, quantum) for row in appended]

    async def write_engine_cycle(
        self,
        *,
        balances: Sequence[BalanceUpdate],
        prices: Iterable[AssetPrice],
        rows: HealthRows | None,
        context: CycleContext | None,
        fence: Fence | None = None,
        on_committed: Callable[[int], None] | None = None,
        breakdowns: LateBreakdowns | None = None,
    ) -> int:
        """Everything one engine cycle produced, in ONE transaction: the watchers' balance
        updates (reorg roll-backs included), the oracle rounds, and — when given — the health
        cycle (see ``write_cycle``). Readers never see balances of a cycle without the health
        of the accounts whose flags it moved (but a large move's flips, below, arrive in
        steps). Return how many transitions it stored (the event relay reads them from the
        outbox).

        A cycle of ``SPLIT_CYCLE_ROWS`` rows or more updates the rows whose flags did not
        move in a later transaction (``daemon.store.cycle``; on SQLite only with
        ``rows.moved_first``): ``on_committed`` is called with the count as soon as the
        transitions are committed, before it (otherwise once the one transaction is). With
        ``rows.moved_first`` the first transaction stages only the rows the engine expects to
        move — when there are at least ``2 × FLIP_PART_MIN_ROWS`` of them only their first
        part, the others following in transactions of their own (``FLIP_PARTS`` in all; the
        balances and rounds go with the first) — and the last transaction appends the
        transition of any other row whose stored flags differ (flags the engine did not
        know); ``on_committed`` is called after each commit that stored transitions, with
        how many. If a later transaction fails, this raises like any failed write, and
        writing the same inputs again is harmless (no transition is appended twice, no newer
        balance or round is replaced). ``breakdowns`` (of some of the rows) is called once the
        transitions are stored, and its breakdowns are stored with the other rows: building
        them (up to a second at a market-wide move) does not hold the events and the listing
        back.

        With a ``fence`` (cluster mode) each transaction first checks that every shard's lease
        is still this replica's at the fenced epoch: ``LeaseLost`` otherwise, nothing written.
        """
        count, _ = await self._write(
            balances=balances,
            prices=prices,
            rows=rows,
            context=context,
            returning=False,
            fence=fence,
            on_committed=on_committed,
            breakdowns=breakdowns,
        )
        return count

    async def _write(
        self,
        *,
        balances: Sequence[BalanceUpdate],
        prices: Iterable[AssetPrice],
        rows: HealthRows | None,
        context: CycleContext | None,
        returning: bool,
        fence: Fence | None = None,
        on_committed: Callable[[int], None] | None = None,
        breakdowns: LateBreakdowns | None = None,
    ) -> tuple[int, Sequence[Any]]:
        if rows is not None and rows.value_decimals != self.value_decimals:
            raise ValueError(
                f"rows in units of 10**-{rows.value_decimals} USD, "
                f"store expects 10**-{self.value_decimals}"
            )
        started = time.perf_counter()
        rounds = list(prices)
        cycle_id: int | None = None
        count = 0
        appended: Sequence[Any] = ()
        first, unstaged = rows, None
        parts: list[HealthRows] = []
        split = rows is not None and len(rows) >= SPLIT_CYCLE_ROWS
        if split and not returning and rows is not None and rows.moved_first is not None:
            # Only the accounts the engine saw move in the first transaction(s); the others
            # are compared with the stored flags in the last (``daemon.store.cycle``).
            moved, unstaged = rows.split_moved()
            first, *parts = moved.chunks(max(FLIP_PART_MIN_ROWS, -(-len(moved) // FLIP_PARTS)))
            if parts:  # the last transaction stages every row again: the stage holds a part
                unstaged = rows
        elif self.engine.dialect.name != "postgresql":
            split = False
        async with write_connection(self.engine) as conn:
            async with conn.begin():
                if fence is not None:
                    await check_fence(conn, fence)
                now = time.time()
                for update in balances:
                    await store_balance_update(conn, update, now)
                if rounds:
                    await _insert_prices(conn, rounds)
                if first is not None and rows is not None and context is not None:
                    cycle_id, count, appended = await write_health_cycle(
                        conn,
                        first,
                        context,
                        returning=returning,
                        rest=not split,
                        breakdowns=breakdowns,
                        accounts=len(rows),
                    )
            committed_s = time.perf_counter() - started
            if cycle_id is not None and on_committed is not None:
                on_committed(count)
            for part in parts:
                if cycle_id is None or context is None:
                    break
                async with conn.begin():
                    if fence is not None:
                        await check_fence(conn, fence)
                    more = await append_flips(conn, cycle_id, part, context.at)
                count += more
                if more and on_committed is not None:
                    on_committed(more)
            if split and cycle_id is not None and rows is not None and context is not None:
                # The rows whose flags did not move, and the breakdowns: nothing waits for them
                # but readers of their figures (/v1/accounts), a moment later.
                late = () if breakdowns is None else await breakdowns()
                async with conn.begin():
                    if fence is not None:
                        await check_fence(conn, fence)
                    surprises = await update_health_rest(
                        conn,
                        cycle_id,
                        context.at,
                        rows.value_decimals,
                        late,
                        unstaged=unstaged,
                        restage=bool(parts),
                    )
                if surprises:  # stored flags the engine did not know: their events now
                    count += surprises
                    if on_committed is not None:
                        on_committed(surprises)
        if rows is None or context is None:
            return 0, ()
        if cycle_id is None:
            # Written before: a retry, or a replay that must not undo newer cycles.
            log.info("cycle_already_stored key=%s", context.cycle_key())
            return 0, ()
        log.info(
            "cycle_stored cycle=%d accounts=%d transitions=%d seconds=%.3f committed_s=%.3f "
            "staged_first=%d",
            cycle_id,
            len(rows),
            count,
            time.perf_counter() - started,
            committed_s,
            len(rows) if first is None else len(first),
        )
        return count, appended

    async def mark_published(self, ids: Iterable[int], *, at: float | None = None) -> int:
        """Mark transitions as published (the broker acknowledged their events): they leave
        the outbox. Any number of ids, one transaction, statements of bounded size (see
        ``daemon.store.outbox``). Return how many were not marked before."""
        ids = list(ids)
        if not ids:
            return 0
        async with write_transaction(self.engine) as conn:
            return await mark_published(conn, ids, time.time() if at is None else at)

    # ---- positions --------------------------------------------------------------------------

    async def upsert_position(self, position: Position, *, at: float | None = None) -> None:
        """Create or replace ``position.account``'s position in ``position.asset``."""
        async with write_transaction(self.engine) as conn:
            await self._upsert_positions(conn, [position], at)

    async def replace_positions(
        self,
        account: str,
        new: Sequence[Position],
        *,
        options: Sequence[OptionPosition] = (),
        at: float | None = None,
    ) -> int:
        """Make ``new`` and ``options`` the account's whole set of positions in one transaction
        (readers and other replicas never see half of it); return how many stored positions
        and option lines it removed."""
        account = account.lower()
        keep = [p.asset for p in new]
        async with write_transaction(self.engine) as conn:
            removed = await conn.execute(
                sa.delete(positions).where(
                    positions.c.account == account, positions.c.asset.not_in(keep)
                )
            )
            await self._upsert_positions(conn, new, at)
            gone = await replace_options(conn, account, options, at)
        return int(removed.rowcount or 0) + gone

    @staticmethod
    async def _upsert_positions(
        conn: AsyncConnection, items: Sequence[Position], at: float | None
    ) -> None:
        if not items:
            return
        now = time.time() if at is None else at
        rows = [
            {
                "account": p.account.lower(),
                "asset": p.asset,
                "chain": p.chain,
                "size": p.size,
                "entry_price": p.entry_price,
                "mmr_tiers": [[t.rate, t.up_to] for t in p.mmr_tiers],
                "updated_at": now,
            }
            for p in items
        ]
        stmt = insert_for(conn, positions)
        update = ["chain", "size", "entry_price", "mmr_tiers", "updated_at"]
        await conn.execute(
            on_conflict_update(stmt, conflict=["account", "asset"], update=update), rows
        )

    async def delete_position(self, account: str, asset: str) -> bool:
        """Remove a position; ``False`` if there was none."""
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                sa.delete(positions).where(
                    positions.c.account == account.lower(), positions.c.asset == asset
                )
            )
        return bool(result.rowcount)

    async def positions(self, account: str | None = None) -> list[Position]:
        """Stored positions (of one account)."""
        return await self.queries.positions(account)

    # ---- venues -----------------------------------------------------------------------------

    async def write_venue_rows(self, rows: Sequence[VenueRow], *, at: float | None = None) -> None:
        """Store the latest entries of venue accounts (``daemon.store.venues``)."""
        if rows:
            async with write_transaction(self.engine) as conn:
                await venue_store.upsert_venue_rows(conn, rows, time.time() if at is None else at)

    async def venue_announcements(self, limit: int) -> list[VenueAnnouncement]:
        """Venue transitions not yet acknowledged by the broker, oldest first."""
        async with write_transaction(self.engine) as conn:
            return await venue_store.unannounced(conn, limit)

    async def mark_venue_announced(self, announced: Sequence[VenueAnnouncement]) -> None:
        """These venue transitions reached the broker."""
        if announced:
            async with write_transaction(self.engine) as conn:
                await venue_store.mark_announced(conn, announced)

    async def options(self, account: str | None = None) -> list[OptionPosition]:
        """Stored option lines (of one account)."""
        return await self.queries.options(account)

    # ---- restart ----------------------------------------------------------------------------

    async def load_state(self) -> StoredState:
        """What a restarting daemon resumes from: cursors, balances, stored flags, positions,
        the latest price of every asset, the last cycle and the oracle's state documents. Each
        part is read on its own, so
        call it before the writers start."""
        q = self.queries
        state = StoredState(
            cursors=await q.chain_cursors(),
            balances=await q.balances(),
            health_flags=await q.health_flags(),
            positions=await q.positions(),
            options=await q.options(),
            latest_prices=await q.latest_prices(),
            last_cycle=await q.last_cycle(),
            oracle_states=await q.oracle_states(),
            read_failures=await q.read_failures(),
            token_decimals=await q.token_decimals(),
        )
        log.info(
            "store_state_loaded chains=%d balances=%d accounts=%d positions=%d",
            len(state.cursors),
            sum(len(b) for b in state.balances.values()),
            len(state.health_flags),
            len(state.positions),
        )
        return state


def _price_rows(prices: Iterable[AssetPrice]) -> list[dict[str, Any]]:
    """``price_history`` rows of oracle rounds."""
    return [
        {
            "asset": p.symbol,
            "round_at": p.round_at,
            "status": str(p.status),
            "price": p.price,
            "price_low": p.price_low,
            "price_high": p.price_high,
            "round_price": p.round_price,
            "observed_at": p.observed_at,
            "held": p.held,
            "hold_reason": None if p.hold_reason is None else str(p.hold_reason),
            "spread": p.spread,
            "volatility": p.volatility,
            "sources": {
                "used": list(p.used),
                "anchors": list(p.anchors),
                "dropped": {k: str(v) for k, v in sorted(p.dropped.items())},
            },
        }
        for p in prices
    ]


async def _insert_prices(conn: AsyncConnection, rounds: Sequence[AssetPrice]) -> None:
    """Append the rounds to ``price_history``; move each asset's ``oracle_state`` to its
    newest round (never back to an older one: a replay leaves a newer state as it is)."""
    stmt = insert_for(conn, price_history)
    await conn.execute(
        on_conflict_nothing(stmt, conflict=["asset", "round_at"]), _price_rows(rounds)
    )
    newest: dict[str, AssetPrice] = {}
    for p in rounds:
        if p.resume is not None and (
            p.symbol not in newest or p.round_at >= newest[p.symbol].round_at
        ):
            newest[p.symbol] = p
    if not newest:
        return
    now = time.time()
    rows = [
        {
            "asset": p.symbol,
            "round_at": p.round_at,
            "state": state_to_json(p.resume),
            "updated_at": now,
        }
        for p in newest.values()
        if p.resume is not None
    ]
    upsert = insert_for(conn, oracle_state)
    newer = upsert.excluded.round_at >= oracle_state.c.round_at
    await conn.execute(
        on_conflict_update(
            upsert, conflict=["asset"], update=["round_at", "state", "updated_at"], where=newer
        ),
        rows,
    )
