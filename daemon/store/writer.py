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
from daemon.store.bulk import insert_for, on_conflict_update
from daemon.store.chain_state import store_balance_update
from daemon.store.cycle import LateBreakdowns
from daemon.store.cycle_transactions import write_cycle_transactions
from daemon.store.engine import (
    check_reachable,
    create_store_engine,
    write_transaction,
)
from daemon.store.fencing import Fence
from daemon.store.options import replace_options
from daemon.store.outbox import mark_published
from daemon.store.price_rounds import insert_prices
from daemon.store.queries import StoreQueries
from daemon.store.records import StoredState, StoredTransition, transition_from_row
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.schema import (
    positions,
    token_decimals,
)
from daemon.store.urls import shown_url
from daemon.store.venues import VenueAnnouncement, VenueRow
from margin.model import Position
from margin.options import OptionPosition
from oracles.model import AssetPrice

log = logging.getLogger(__name__)


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
            await insert_prices(conn, rounds)

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
        move in a later transaction (``daemon.store.cycle_transactions``): ``on_committed``
        is called with the count as soon as the transitions are committed, before it
        (otherwise once the one transaction is). With
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
        written = await write_cycle_transactions(
            self.engine,
            balances=balances,
            rounds=list(prices),
            rows=rows,
            context=context,
            returning=returning,
            fence=fence,
            on_committed=on_committed,
            breakdowns=breakdowns,
        )
        if rows is None or context is None:
            return 0, ()
        if written.cycle_id is None:
            # Written before: a retry, or a replay that must not undo newer cycles.
            log.info("cycle_already_stored key=%s", context.cycle_key())
            return 0, ()
        log.info(
            "cycle_stored cycle=%d accounts=%d transitions=%d seconds=%.3f committed_s=%.3f "
            "staged_first=%d",
            written.cycle_id,
            len(rows),
            written.transitions,
            written.seconds,
            written.committed_s,
            written.staged_first,
        )
        return written.transitions, written.appended

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
