"""Reads: what the API, the MQTT publisher and a restarting daemon ask of the store.

Every read runs in its own short transaction, so it sees one committed cycle or the next,
never part of one. Money comes back quantized to the store's ``value_decimals``; NULL health
comes back as ``inf`` (no debt) or NaN (``DEBT_UNKNOWN``: unknown). A database that cannot
answer raises ``StoreUnavailable``; ``StoreQueries.for_api`` opens reads with short timeouts of
their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chains.reads import Pair
from chains.watcher import Reading
from core.amounts import scaled
from core.lifecycle import AsyncResource
from daemon.store import venues as venue_store
from daemon.store.engine import create_store_engine, reporting_unavailable
from daemon.store.fencing import Fence, check_fence
from daemon.store.leases import ClusterView, read_cluster
from daemon.store.options import read_options
from daemon.store.outbox import id_chunks, id_matches
from daemon.store.records import (
    AccountRecord,
    ChainCursor,
    OutboxEntry,
    StoredBalance,
    StoredCycle,
    StoredHealth,
    StoredPrice,
    StoredTransition,
    from_row,
    health_from_row,
    outbox_entries,
    position_from_row,
    transition_from_row,
)
from daemon.store.schema import (
    account_health,
    balances,
    chain_cursors,
    cycles,
    health_listing,
    health_transitions,
    options,
    oracle_state,
    positions,
    price_history,
    token_decimals,
)
from daemon.store.summary import Summary, read_summary
from margin.model import Flag, Position
from margin.options import OptionPosition

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
API_STATEMENT_TIMEOUT_S = 3.0
"""``for_api``: connecting, a pooled connection and each statement, each within this."""
API_DEADLINE_S = 10.0
"""``for_api``: a whole read (ping, connect, statements) ends within this, whatever hangs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LiquidatablePage:
    """One page of ``GET /v1/liquidatable`` read from one snapshot: the page, the totals and
    the cycle they belong to agree with each other."""

    accounts: list[StoredHealth]
    total: int
    cycle: StoredCycle | None
    venues: dict[str, list[Any]]  # the listed accounts' venue documents
    venue_positions: list[Any]
    venue_total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FlaggedPage:
    """One page of ``GET /v1/accounts?flag=…`` read from one snapshot."""

    accounts: list[StoredHealth]
    cycle: StoredCycle | None
    venues: dict[str, list[Any]]  # the listed accounts' venue documents


class StoreQueries(AsyncResource):
    """Read access to the store; cheap to create, shares the engine's pool (``close`` only
    disposes an engine it opened itself, see ``for_api``)."""

    def __init__(
        self, engine: AsyncEngine, *, value_decimals: int = 2, deadline_s: float | None = None
    ) -> None:
        self.engine = engine
        self.value_decimals = value_decimals
        self.deadline_s = deadline_s
        self._quantum = scaled(1, value_decimals)
        self._owns_engine = False

    @classmethod
    def for_api(
        cls,
        url: str,
        *,
        value_decimals: int = 2,
        statement_timeout_s: float = API_STATEMENT_TIMEOUT_S,
        deadline_s: float = API_DEADLINE_S,
    ) -> StoreQueries:
        """Reads for the HTTP API on a pool of their own with short timeouts: a database that
        does not answer costs a request seconds (``StoreUnavailable``), never a hang."""
        engine = create_store_engine(url, statement_timeout_s=statement_timeout_s)
        queries = cls(engine, value_decimals=value_decimals, deadline_s=deadline_s)
        queries._owns_engine = True
        return queries

    async def close(self) -> None:
        """Dispose the engine if ``for_api`` opened it (idempotent)."""
        if self._owns_engine:
            await self.engine.dispose()

    def _reading(self) -> contextlib.AbstractAsyncContextManager[None]:
        return reporting_unavailable(self.engine, deadline_s=self.deadline_s)

    async def _rows(self, query: sa.Executable) -> Sequence[sa.Row[Any]]:
        async with self._reading(), self.engine.connect() as conn:
            return (await conn.execute(query)).all()

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        """One transaction whose statements all see the same committed state (PostgreSQL:
        REPEATABLE READ; SQLite: one read transaction, which is a snapshot in WAL mode)."""
        async with self._reading(), self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                yield conn

    async def cluster(self, ttl_s: float) -> ClusterView:
        """The replicas and shard leases (cluster mode), within this reader's deadline."""
        async with self._reading():
            return await read_cluster(self.engine, ttl_s=ttl_s)

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers a trivial query."""
        await self._rows(sa.select(sa.literal(1)))

    # ---- health --------------------------------------------------------------------------

    def _liquidatable_filter(
        self,
        *,
        actionable_only: bool,
        min_shortfall: Decimal | None,
        chain: str | None,
    ) -> list[sa.ColumnElement[bool]]:
        h, li = account_health.c, health_listing.c
        where: list[sa.ColumnElement[bool]] = []
        if actionable_only:
            where.append(h.actionable.is_(True))
        if min_shortfall is not None:
            where.append(li.shortfall >= min_shortfall)
        if chain is not None:
            held = sa.exists().where(
                balances.c.account == li.account,
                balances.c.chain == chain,
                # a balance never read may be anything: the account may hold something there
                sa.or_(balances.c.raw.is_(None), balances.c.raw != 0),
            )
            posted = sa.exists().where(
                positions.c.account == li.account, positions.c.chain == chain
            )
            where.append(sa.or_(held, posted))
        return where

    async def liquidatable_page(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        actionable_only: bool = False,
        min_shortfall: Decimal | None = None,
        chain: str | None = None,
        venue: str | None = None,
    ) -> LiquidatablePage:
        """Liquidatable accounts and accounts whose health is unknown (``DEBT_UNKNOWN``: held,
        never called healthy), largest shortfall first (ties by address), with how many match
        the filters in all, the last cycle, the listed accounts' venue documents and the
        liquidatable venue entries (``venue``: of that venue only), all from one snapshot: a
        cycle committed while the page is read shows in all of it or in none of it.

        The shortfall of an unknown account is what the balances read so far show, a lower
        bound. ``chain`` keeps accounts holding a non-zero balance or a position there.
        """
        where = self._liquidatable_filter(
            actionable_only=actionable_only,
            min_shortfall=min_shortfall,
            chain=chain,
        )
        async with self._snapshot() as conn:
            ranked = (await conn.execute(_ranked(where, limit=limit, offset=offset))).all()
            accounts = [health_from_row(row, self._quantum) for row in ranked]
            counted = _counted(where, actionable_only=actionable_only)
            total = int((await conn.execute(counted)).scalar_one())
            last = (await conn.execute(_last_cycle())).all()
            return LiquidatablePage(
                accounts=accounts,
                total=total,
                cycle=from_row(StoredCycle, last[0]) if last else None,
                venues=await venue_store.entries_of(conn, [h.account for h in accounts]),
                venue_positions=await venue_store.liquidatable_entries(
                    conn, venue=venue, limit=limit, offset=offset
                ),
                venue_total=await venue_store.count_liquidatable(conn, venue=venue),
            )

    async def accounts_with_flags(
        self, flags: Flag, *, limit: int = DEFAULT_LIMIT, offset: int = 0
    ) -> FlaggedPage:
        """Accounts carrying any of ``flags``, ordered by address, with their venue documents
        and the last cycle, from one snapshot."""
        query = (
            sa.select(account_health)
            .where(account_health.c.flags.bitwise_and(int(flags)) != 0)
            .order_by(account_health.c.account)
            .limit(min(limit, MAX_LIMIT))
            .offset(offset)
        )
        async with self._snapshot() as conn:
            rows = (await conn.execute(query)).all()
            accounts = [health_from_row(row, self._quantum) for row in rows]
            last = (await conn.execute(_last_cycle())).all()
            return FlaggedPage(
                accounts=accounts,
                cycle=from_row(StoredCycle, last[0]) if last else None,
                venues=await venue_store.entries_of(conn, [h.account for h in accounts]),
            )

    async def health(self, address: str) -> StoredHealth | None:
        """One account's current health, or ``None`` if never written."""
        query = sa.select(account_health).where(account_health.c.account == address.lower())
        rows = await self._rows(query)
        return health_from_row(rows[0], self._quantum) if rows else None

    async def account(self, address: str) -> AccountRecord | None:
        """Health, balances, positions and venue documents of one account, from one snapshot
        (``None`` if the store has none of them)."""
        address = address.lower()
        async with self._snapshot() as conn:
            health = (
                await conn.execute(
                    sa.select(account_health).where(account_health.c.account == address)
                )
            ).first()
            held = (
                await conn.execute(
                    sa.select(balances)
                    .where(balances.c.account == address)
                    .order_by(balances.c.chain, balances.c.token)
                )
            ).all()
            posted = (
                await conn.execute(
                    sa.select(positions)
                    .where(positions.c.account == address)
                    .order_by(positions.c.asset)
                )
            ).all()
            written = await read_options(conn, address)
            venues = (await venue_store.entries_of(conn, [address])).get(address, [])
        if health is None and not held and not posted and not written and not venues:
            return None
        return AccountRecord(
            account=address,
            health=None if health is None else health_from_row(health, self._quantum),
            balances=[from_row(StoredBalance, b) for b in held],
            positions=[position_from_row(p) for p in posted],
            options=written,
            venues=venues,
        )

    async def health_flags(self) -> dict[str, Flag]:
        """Stored flags of every account."""
        query = sa.select(account_health.c.account, account_health.c.flags)
        return {row.account: Flag(row.flags) for row in await self._rows(query)}

    # ---- transitions and cycles ----------------------------------------------------------

    async def transitions(
        self,
        *,
        account: str | None = None,
        after_id: int = 0,
        limit: int = DEFAULT_LIMIT,
        unpublished_only: bool = False,
    ) -> list[StoredTransition]:
        """Transitions in the order they were written, after ``after_id``."""
        t = health_transitions.c
        query = sa.select(health_transitions).where(t.id > after_id)
        if account is not None:
            query = query.where(t.account == account.lower())
        if unpublished_only:
            query = query.where(t.published_at.is_(None))
        query = query.order_by(t.id).limit(min(limit, MAX_LIMIT))
        return [transition_from_row(row, self._quantum) for row in await self._rows(query)]

    async def outbox(
        self,
        *,
        limit: int,
        after_id: int = 0,
        unpublished_only: bool = True,
        fence: Fence | None = None,
    ) -> list[OutboxEntry]:
        """The first ``limit`` transitions above ``after_id`` not yet published (MQTT), in id
        order, each with the block numbers of the cycle that stored it: all an event payload
        is built from, so a re-send carries the same content as the first send.

        ``unpublished_only=False`` reads published ones too (the HTTP event stream replays
        the outbox from any id, whatever MQTT did with it).

        With a ``fence`` (cluster mode: the relay's claim of what it is about to publish) only
        transitions of the fenced shards are read, in a transaction that first checks those
        leases are still this replica's at their epochs (``LeaseLost`` otherwise)."""
        t = health_transitions.c
        where = [t.id > after_id]
        if unpublished_only:
            where.append(t.published_at.is_(None))
        if fence is not None:
            held = sa.bindparam("held", sorted(fence.epochs), type_=postgresql.ARRAY(sa.Integer()))
            where.append(t.shard == sa.any_(held))
        query = (
            sa.select(
                t.id,
                t.account,
                t.cycle_id,
                t.from_flags,
                t.to_flags,
                t.health,
                t.health_latency,
                t.shortfall,
                t.actionable,
                t.at,
            )
            .where(*where)
            .order_by(t.id)
            .limit(max(1, limit))
        )
        async with self.engine.connect() as conn, conn.begin():
            if fence is not None:
                await check_fence(conn, fence)
            rows = (await conn.execute(query)).all()
            blocks: dict[int, dict[str, int]] = {}
            # A batch comes from a handful of cycles: their block numbers are read once each
            # (not a JSON document per row), in statements of bounded size.
            for chunk in id_chunks(conn, {row.cycle_id for row in rows}):
                found = await conn.execute(
                    sa.select(cycles.c.id, cycles.c.blocks).where(
                        id_matches(conn, cycles.c.id, chunk)
                    )
                )
                for cycle_id, document in found:
                    blocks[cycle_id] = {str(k): int(v) for k, v in document.items()}
        return outbox_entries(rows, blocks, self._quantum)

    async def summary(self, *, now: float, window_s: float, points: int) -> Summary:
        """Accounts by flag now and at ``points`` times over the last ``window_s`` seconds, the
        health histogram, latency-risky accounts by chain (``daemon.store.summary``), all from
        one snapshot of the database."""
        async with self._snapshot() as conn:  # the statements must agree with each other
            summary = await read_summary(conn, now=now, window_s=window_s, points=points)
            last = (await conn.execute(_last_cycle())).all()
        return replace(summary, cycle=from_row(StoredCycle, last[0]) if last else None)

    async def last_transition_id(self) -> int:
        """The highest transition id stored (0 when none): where a live event stream starts."""
        query = sa.select(sa.func.coalesce(sa.func.max(health_transitions.c.id), 0))
        return int((await self._rows(query))[0][0])

    async def last_cycle(self) -> StoredCycle | None:
        """The most recently written cycle."""
        rows = await self._rows(_last_cycle())
        return from_row(StoredCycle, rows[0]) if rows else None

    async def cycle(self, cycle_id: int) -> StoredCycle | None:
        """One cycle's block and price context."""
        rows = await self._rows(sa.select(cycles).where(cycles.c.id == cycle_id))
        return from_row(StoredCycle, rows[0]) if rows else None

    # ---- chains, balances, prices, positions ---------------------------------------------

    async def chain_cursors(self) -> dict[str, ChainCursor]:
        """Per chain, the last block stored."""
        query = sa.select(chain_cursors).order_by(chain_cursors.c.chain)
        return {row.chain: from_row(ChainCursor, row) for row in await self._rows(query)}

    async def balances(self, chain: str | None = None) -> dict[str, dict[Pair, Reading]]:
        """Stored readings per chain, keyed like the watcher's holdings: (account, token).

        Each is the last good value and its block (``raw`` ``None``: no read ever succeeded);
        ``read_failures`` says which of them failed at their latest read.
        """
        query = sa.select(balances)
        if chain is not None:
            query = query.where(balances.c.chain == chain)
        out: dict[str, dict[Pair, Reading]] = {}
        for row in await self._rows(query):
            out.setdefault(row.chain, {})[(row.account, row.token)] = Reading(
                raw=row.raw, block_number=row.block_number, block_hash=row.block_hash
            )
        return out

    async def read_failures(self, chain: str | None = None) -> dict[str, dict[Pair, int]]:
        """Per chain, the (account, token) pairs whose latest read failed, with its block."""
        b = balances.c
        query = sa.select(b.chain, b.token, b.account, b.failed_block_number).where(
            b.failed_block_number.is_not(None)
        )
        if chain is not None:
            query = query.where(b.chain == chain)
        out: dict[str, dict[Pair, int]] = {}
        for row in await self._rows(query):
            out.setdefault(row.chain, {})[(row.account, row.token)] = row.failed_block_number
        return out

    async def token_decimals(self) -> dict[str, dict[str, int]]:
        """chain → token → decimals, as last recorded."""
        rows = await self._rows(sa.select(token_decimals))
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(row.chain, {})[row.token] = row.decimals
        return out

    async def latest_prices(self) -> dict[str, StoredPrice]:
        """The newest stored round of every asset."""
        p = price_history.c
        newest = (
            sa.select(p.asset, sa.func.max(p.round_at).label("round_at"))
            .group_by(p.asset)
            .subquery()
        )
        query = sa.select(price_history).join(
            newest, sa.and_(p.asset == newest.c.asset, p.round_at == newest.c.round_at)
        )
        return {row.asset: from_row(StoredPrice, row) for row in await self._rows(query)}

    async def oracle_states(self) -> dict[str, Any]:
        """asset → its stored oracle state document (JSON as written, not decoded)."""
        query = sa.select(oracle_state.c.asset, oracle_state.c.state)
        return {row.asset: row.state for row in await self._rows(query)}

    async def price_history(self, asset: str, *, limit: int = DEFAULT_LIMIT) -> list[StoredPrice]:
        """An asset's rounds, newest first."""
        query = (
            sa.select(price_history)
            .where(price_history.c.asset == asset)
            .order_by(price_history.c.round_at.desc())
            .limit(min(limit, MAX_LIMIT))
        )
        return [from_row(StoredPrice, row) for row in await self._rows(query)]

    async def options(self, account: str | None = None) -> list[OptionPosition]:
        """Stored option lines (of one account), ordered by account and key."""
        async with self._reading(), self.engine.connect() as conn:
            return await read_options(conn, account)

    async def position_versions(self) -> dict[tuple[str, str], float]:
        """(account, asset) → ``updated_at`` of every stored position: what another replica
        compares to learn which accounts' positions were replaced (cluster mode)."""
        p = positions.c
        query = sa.select(p.account, p.asset, p.updated_at)
        versions = {(row.account, row.asset): row.updated_at for row in await self._rows(query)}
        # option lines too, one key per line ("option:" cannot be an asset name)
        o = options.c
        lines = sa.select(
            o.account, o.asset, o.chain, o.option_right, o.strike, o.expiry, o.updated_at
        )
        for row in await self._rows(lines):
            line = f"option:{row.asset}/{row.chain}/{row.option_right}/{row.strike}/{row.expiry}"
            versions[(row.account, line)] = row.updated_at
        return versions

    # ---- venues ------------------------------------------------------------------------------

    async def venue_states(self) -> dict[tuple[str, str], bool]:
        """(venue, account) → stored liquidatable state."""
        async with self._reading(), self.engine.connect() as conn:
            return await venue_store.liquidatable_states(conn)

    async def positions(self, account: str | None = None) -> list[Position]:
        """Stored positions (of one account), ordered by account and asset."""
        query = sa.select(positions).order_by(positions.c.account, positions.c.asset)
        if account is not None:
            query = query.where(positions.c.account == account.lower())
        return [position_from_row(row) for row in await self._rows(query)]


def _listed_health() -> sa.Join:
    """The listed accounts (``health_listing``) with their stored health."""
    return health_listing.join(account_health, account_health.c.account == health_listing.c.account)


def _ranked(where: Sequence[sa.ColumnElement[bool]], *, limit: int, offset: int) -> sa.Select[Any]:
    """The listing's order: largest shortfall first, ties by address (the listing's index;
    its shortfall is the stored row's, written in the same transaction)."""
    li = health_listing.c
    return (
        sa.select(account_health)
        .select_from(_listed_health())
        .where(*where)
        .order_by(li.shortfall.desc(), li.account)
        .limit(min(limit, MAX_LIMIT))
        .offset(offset)
    )


def _counted(where: Sequence[sa.ColumnElement[bool]], *, actionable_only: bool) -> sa.Select[Any]:
    # Only the actionable filter needs the health rows: the others count the listing alone.
    source = _listed_health() if actionable_only else health_listing
    return sa.select(sa.func.count()).select_from(source).where(*where)


def _last_cycle() -> sa.Select[Any]:
    return sa.select(cycles).order_by(cycles.c.id.desc()).limit(1)
