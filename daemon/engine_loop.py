"""The engine loop: apply balance, price, chain and position changes; recompute only the
accounts they touch; persist the cycle in one transaction; then publish what changed (retained
account state here; events by the ``EventRelay``, from the transitions the cycle stored).

Events arriving while a cycle runs are coalesced into the next one, so a burst of blocks or a
price round that touches every account costs one recompute and one write, not one each.

Writes go through ``CycleWriter``: what a cycle applied is staged as pending (balances,
rounds, the accounts whose stored row is now out of date) and written at once; if the store
fails, the engine keeps applying events in memory while the writer retries with backoff, and
the first write that succeeds stores the current state of everything pending. Events come
only from stored transitions, so they wait for the database too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from chains.watcher import BalanceUpdate
from core.addresses import lower_address
from daemon.cycle_writer import WRITE_CHUNK_ACCOUNTS, CycleWriter
from daemon.documents import (
    CRITICAL_HEALTH,
    WARNING_HEALTH,
    HealthBucket,
    account_document,
    engine_state,
    health_bucket,
)
from daemon.metrics import Metrics
from daemon.mqtt.account_state import account_state_json
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.relay import EventRelay
from daemon.mqtt.topics import encode_json
from daemon.risk_inputs import apply_readings, price_inputs, steady_volatility
from daemon.store.errors import StoreUnavailable
from daemon.store.fencing import Fence, LeaseLost
from daemon.store.rows import CycleContext, HealthRows, breakdown_record
from daemon.store.writer import HealthStore
from daemon.stored_flags import StoredFlags
from daemon.venue_sync import VenueSync, venue_requirement
from margin.engine import FULL_RECOMPUTE_FRACTION, MarginEngine
from margin.kernel import HealthTable
from margin.model import ChainInput, Flag, MarginInputError, Position, PriceInput
from margin.options import OptionPosition
from margin.tiers import IndexArray
from oracles.model import AssetPrice
from venues.model import VenueResult

log = logging.getLogger(__name__)

WARMUP_TIMEOUT_S = 30.0  # publish anyway after this long if a chain or an asset is still missing
WARMUP_PAIR_ALLOWANCE_S = 100e-6  # ... plus this per watched pair: a first sweep is not a dead
# chain (2,000,000 pairs took 40-133 s to read at start-up, by load; timing out first valued
# every account STALE_CHAIN and back: two extra writes of every account and its transitions)
BREAKDOWN_LIMIT = 2000  # per cycle: accounts whose stored row gets a full breakdown (the
# largest shortfalls first: those are the liquidations keepers go for)
BREAKDOWN_CHUNK = 250  # breakdowns valued between two turns of the event loop (~0.1 s)
EVENTS_FIRST_MAX_S = 3.0  # after a commit of transitions, a write's late part (breakdowns,
# the rows whose flags did not move) waits this long at most for the relay to send them: at a
# market-wide move both took the CPU (the daemon's, PostgreSQL's) the events needed
OPTION_CLOCK_S = 60.0  # how often options are revalued for time decay alone
POSITIONS_READ_TIMEOUT_S = 10.0  # a position reload the store does not answer is retried later
PUBLISH_CHUNK = 5000  # accounts handed to the publisher between two yields (~2 ms: the relay
# needs a turn of the event loop per write of PUBLISH packets while a market-wide move is marked)
_WITH_BREAKDOWN = Flag.LIQUIDATABLE | Flag.LATENCY_RISK
_BREAKDOWN_BITS = int(_WITH_BREAKDOWN)  # a plain int: ``Flag.__and__`` is slow per account
_BUCKETS = list(HealthBucket)
_NEVER_PUBLISHED = -1  # bucket code of an account whose state was never published
_BUCKET_CODES = {bucket: code for code, bucket in enumerate(_BUCKETS)}
_NO_DEBT = _BUCKET_CODES[HealthBucket.NO_DEBT]


@dataclass(frozen=True, slots=True)
class PricesChanged:
    """An oracle round, and the ρ between risk groups after it (``correlation_source: ewma``;
    ``None``: the configured ones)."""

    prices: Mapping[str, AssetPrice]
    correlations: Mapping[tuple[str, str], float] | None = None


@dataclass(frozen=True, slots=True)
class ChainsChanged:
    """Chain staleness or sequencer state changed."""

    chains: Sequence[ChainInput]


@dataclass(frozen=True, slots=True)
class PositionsChanged:
    """An account's positions were replaced through the API (read them from the store)."""

    account: str


@dataclass(frozen=True, slots=True)
class VenueChanged:
    """A venue feed's result (``daemon.venue_feed``)."""

    result: VenueResult


EngineEvent = BalanceUpdate | PricesChanged | ChainsChanged | PositionsChanged | VenueChanged


@dataclass(slots=True)
class CycleStats:
    """Counters and the last figures of the loop, for metrics and /v1/chains."""

    cycles: int = 0
    transitions: int = 0
    last_cycle_s: float = 0.0
    last_block_to_publish_s: float | None = None
    prices_seen: set[str] = field(default_factory=set)


class EngineLoop:
    """Owns the margin engine; the only writer of health to the store and of account state to
    MQTT (events go out through the ``EventRelay`` it wakes)."""

    def __init__(
        self,
        *,
        engine: MarginEngine,
        store: HealthStore,
        publisher: MqttPublisher,
        value_decimals: int,
        metrics: Metrics | None = None,
        required_chains: Collection[str] = (),
        required_assets: Collection[str] = (),
        status_chains: Collection[str] = (),
        warmup_timeout_s: float = WARMUP_TIMEOUT_S,
        watched_pairs: int = 0,
        events: EventRelay | None = None,
        shard_of: Callable[[str], int] | None = None,
        fence: Fence | None = None,
        on_fenced: Callable[[LeaseLost], None] | None = None,
        write_chunk_accounts: int = WRITE_CHUNK_ACCOUNTS,
    ) -> None:
        self.engine = engine
        self._shard_of = shard_of
        self.events = events
        self.metrics = metrics
        self._required_chains = set(required_chains)
        self._required_assets = set(required_assets)
        self._status_chains = set(status_chains)
        self._chains_seen: set[str] = set()
        self._status_seen: set[str] = set()
        self._warmup_deadline = (
            time.monotonic() + warmup_timeout_s + watched_pairs * WARMUP_PAIR_ALLOWANCE_S
        )
        self._warm = False
        self.store = store
        self.publisher = publisher
        self.value_decimals = value_decimals
        self.queue: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self.stats = CycleStats()
        self.blocks: dict[str, int] = {}
        self.prices: dict[str, AssetPrice] = {}
        # The prices the engine values with: volatility decays smaller than a step are not
        # taken (``steady_volatility``), so a still market is not revalued every round.
        self._engine_prices: dict[str, PriceInput] = {}
        self._boot = uuid.uuid4().hex[:12]
        # What the retained state of each account (by engine index) last said: its flags and
        # health bucket (code in ``_BUCKETS``); republished when either moves. Arrays, not a
        # dict of signals: a market-wide move compares 100,000 accounts at once.
        self._published_flags = np.zeros(0, dtype=np.uint16)
        self._published_bucket = np.zeros(0, dtype=np.int8)
        self._seeds: dict[str, int] = {}  # stored flags of accounts the arrays do not cover yet
        # Which of a write's rows to commit first: those whose flags moved since stored.
        self._stored_flags = StoredFlags()
        # Stored-form breakdowns the last written rows carried, by engine index: published too.
        self._breakdowns: dict[int, dict[str, Any]] = {}
        # Accounts (names, engine indices) of the rows being written whose breakdowns are due.
        self._breakdowns_due: tuple[list[str], list[int]] = ([], [])
        self._positions: dict[str, dict[str, Position]] = {}
        self._options: dict[str, list[OptionPosition]] = {}
        self._positions_unread: set[str] = set()
        self._valued = False  # a warm cycle has valued every account once
        self._valuation_stored = False  # ... and the store has that valuation
        # The accounts of the first valuation made with every input whose rows are not stored
        # yet (``None``: no such valuation yet); empty means the valuation is stored.
        self._unstored: npt.NDArray[np.bool_] | None = None
        # Rows of that valuation already written, whose retained state waits for its last
        # chunk: published at once, each chunk's publishing (the daemon's and the broker's
        # CPU) slowed the next chunk's write and so readiness (``_stored``).
        self._held_back: list[IndexArray] = []
        self._writes = 0
        self._events_first = False  # the write under way committed transitions to relay
        self.breakdown_limit = BREAKDOWN_LIMIT
        """Flagged accounts per write whose stored row carries a full breakdown."""
        self.writer = CycleWriter(
            store,
            build=self._batch,
            written=self._stored,
            committed=self._committed,
            breakdowns=self._build_breakdowns,
            fence=fence,
            on_fenced=on_fenced,
            chunk_accounts=write_chunk_accounts,
        )
        self.transition_listeners: list[Callable[[], None]] = []
        """Called after a write that stored transitions (e.g. the HTTP event stream's hub),
        like the event relay's wake-up: cheap, never awaited."""
        self.venues = VenueSync()

    def seed_signals(self, flags: Mapping[str, Flag]) -> None:
        """Stored flags of a previous run: the first cycle publishes only real changes."""
        self._seeds.update((account, int(stored)) for account, stored in flags.items())
        self._cover_accounts(len(self.engine.accounts), seeded=True)

    async def run(self) -> None:
        """Consume events forever, one coalesced cycle at a time; the writer's retries run
        beside it while the store fails."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.writer.retry(), name="engine-writer-retry")
            while True:
                events = [await self.queue.get()]
                while not self.queue.empty():
                    events.append(self.queue.get_nowait())
                await self.cycle(events)
                del events  # applied; not kept while the queue is empty (a sweep: every pair)

    async def drain(self) -> None:
        """Process whatever is queued and try once more to store what is pending
        (shutdown)."""
        events = []
        while not self.queue.empty():
            events.append(self.queue.get_nowait())
        if events:
            await self.cycle(events)
        if not await self.writer.flush():
            log.warning(
                "shutdown_unstored pending_accounts=%d pending_balances=%d",
                self.writer.pending.accounts,
                self.writer.pending.balances,
            )

    def warm(self) -> bool:
        """True once every chain was read and every asset priced (or the warm-up timed out).

        Until then cycles only apply their inputs: valuing an account whose debt chain was
        read before its collateral chain would publish a false ``liquidatable`` (and then a
        ``recovered``) for every such account on a cold start. The warm-up lasts
        ``warmup_timeout_s`` plus ``WARMUP_PAIR_ALLOWANCE_S`` per watched pair (a million
        accounts' first sweep is a minute of reading, not a dead chain).
        """
        if self._warm:
            return True
        missing = (
            sorted(self._required_chains - self._chains_seen)
            + sorted(self._required_assets - self.stats.prices_seen)
            + [f"status:{c}" for c in sorted(self._status_chains - self._status_seen)]
        )
        if missing and time.monotonic() < self._warmup_deadline:
            return False
        self._warm = True
        if missing:
            log.warning("engine_warm_timeout missing=%s", ",".join(missing))
        else:
            log.info("engine_warm")
        return True

    @property
    def valuation_stored(self) -> bool:
        """True once the first valuation of every account is in the store: from then on the
        store-backed API (``/v1/accounts``, ``/v1/liquidatable``) answers for every account.

        After a warm-up that timed out, only a valuation that had every required chain and
        asset counts: at a million accounts the first read of a chain outlasts the warm-up, and
        the timed-out cycle values no account at all (``/readyz`` said 200 for 85 s while the
        real first valuation was still being written)."""
        return self._valuation_stored

    def _inputs_complete(self) -> bool:
        """Every required chain was read and every required asset priced."""
        return self._required_chains <= self._chains_seen and (
            self._required_assets <= self.stats.prices_seen
        )

    async def cycle(self, events: Sequence[EngineEvent]) -> None:
        """Apply ``events``, recompute the touched accounts, persist, publish.

        The write is attempted at once unless the store is failing; then what changed stays
        pending for the writer's retries and the cycle returns without waiting."""
        started = time.perf_counter()
        balances = [e for e in events if isinstance(e, BalanceUpdate)]
        rounds = [p for e in events if isinstance(e, PricesChanged) for p in e.prices.values()]
        self._status_seen.update(  # a status judged after the chain's first read
            c.name
            for e in events
            if isinstance(e, ChainsChanged)
            for c in e.chains
            if c.last_block is not None
        )
        await self._reload_unread_positions()
        oldest_block_ts = await self._apply(events)
        # options' time to expiry, moved on once a minute: time decay over a minute is far
        # below a cent on any line, and every move revalues every account holding options
        now = time.time()
        self.engine.set_clock(now - now % OPTION_CLOCK_S)
        pending = self.writer.pending
        pending.add_balances(balances)
        pending.add_rounds(rounds)
        if not self.writer.failing:
            await self.venues.write(self.store)
        if not self.warm():
            # Inputs are applied (the engine keeps them dirty for the first warm cycle) and
            # stored, but nothing is valued or published yet.
            await self.writer.write()
            return
        if self._valued:
            # Only dirty accounts can change (an account's results are a function of its
            # inputs): copying every result per cycle cost ~100 MB and ~3 % of the loop's time
            # at 200,000 accounts, for cycles that mostly change nothing.
            dirty = self.engine.dirty_accounts()
            if len(dirty) > FULL_RECOMPUTE_FRACTION * len(self.engine.accounts):
                # A full pass (a price move): plain copies of the columns, compared whole,
                # instead of gathering every dirty row (1,000,000 accounts: 0.19 s → 0.10 s).
                before = self.engine.results.select(slice(None))
                self.engine.recompute_dirty()
                changed = dirty[_differs(before, self.engine.results)[dirty]]
            else:
                before = self.engine.results.select(dirty)
                self.engine.recompute_dirty()
                changed = _changed(dirty, before, self.engine.results)
        else:
            # The first valuation: every account's stored row is compared with what memory
            # says now (not with the state seeded before any price), so a restart with
            # nothing changed writes no transition and a stale stored row is corrected.
            # (No copy of the results to compare with: every account is written anyway.)
            self._valued = True
            self.engine.recompute_dirty()
            changed = np.arange(len(self.engine.accounts), dtype=np.intp)
        pending.add_accounts(changed)
        if self._unstored is None and self._inputs_complete():
            # The first complete valuation: every account is valued with every input now;
            # those whose rows are pending or being written must reach the store (the others'
            # stored rows are that valuation already). Accounts changed later by price rounds
            # do not hold readiness back.
            self._unstored = np.zeros(len(self.engine.accounts), dtype=bool)
            self._unstored[self.writer.unstored()] = True
            self._count_stored(np.zeros(0, dtype=np.intp))
        await self.writer.write()
        await self._publish_venue_accounts(time.time())
        self.stats.cycles += 1
        self.stats.last_cycle_s = time.perf_counter() - started
        if oldest_block_ts is not None:
            self.stats.last_block_to_publish_s = max(0.0, time.time() - oldest_block_ts)
        if self.metrics is not None:
            self.metrics.observe_cycle(self.stats.last_cycle_s)
            if oldest_block_ts is not None and self.stats.last_block_to_publish_s is not None:
                self.metrics.observe_latency(self.stats.last_block_to_publish_s)

    def _batch(self, accounts: IndexArray) -> tuple[HealthRows | None, CycleContext | None]:
        """The writer's rows for ``accounts`` (their current health) and the cycle context."""
        if not len(accounts):
            return None, None
        self._writes += 1
        self._events_first = False
        context = CycleContext(
            at=time.time(),
            blocks=dict(self.blocks),
            prices={a: p.price for a, p in self.prices.items()},
            key=f"{self._boot}:{self._writes}",  # one per attempt: a retry is a new cycle
        )
        return self._rows(accounts), context

    def _committed(self, transitions: int) -> None:
        """A write's transitions are committed (how many): wake the event relay, which
        publishes them from the store and marks them on PUBACK, while a large write's other
        rows are still being stored."""
        self.stats.transitions += transitions
        if transitions and self.events is not None:
            self.events.wake()
            self._events_first = True  # ``_build_breakdowns`` lets them out first
        if transitions:
            for listener in self.transition_listeners:
                listener()

    async def _stored(self, accounts: IndexArray, transitions: int) -> None:
        """After a successful write (its transitions went to ``_committed`` already): publish
        the retained state of the written accounts (those of the first valuation once all of
        it is stored: it is written in chunks)."""
        self._count_stored(accounts)
        self._stored_flags.written()
        if not len(accounts):
            return
        if self._unstored is not None and not self._valuation_stored:
            self._held_back.append(accounts)  # a chunk of the first valuation: not yet
            return
        if self._held_back:
            accounts = np.unique(np.concatenate([*self._held_back, accounts]))
            self._held_back = []
        await self._publish(accounts, time.time())

    def _count_stored(self, accounts: IndexArray) -> None:
        """``accounts`` were written: the first complete valuation is stored once none of
        its accounts is left (at a million accounts the loop, busy publishing retained state
        while price rounds kept changing some accounts, never had *none* pending for two
        minutes)."""
        unstored = self._unstored
        if unstored is None or self._valuation_stored:
            return
        unstored[accounts[accounts < len(unstored)]] = False
        if not unstored.any():
            self._valuation_stored = True
            self._unstored = np.zeros(0, dtype=bool)  # not kept: a byte per account

    async def _apply(self, events: Sequence[EngineEvent]) -> float | None:
        oldest: float | None = None
        for event in events:
            match event:
                case BalanceUpdate():
                    # A failed read keeps the engine's last good value, unless a reorg
                    # orphaned the block that value came from. The first sweep of a chain
                    # goes in vectorized, like a restart's stored balances (``load_holdings``).
                    apply_readings(
                        self.engine,
                        event.chain,
                        event.readings,
                        orphaned_above=event.dropped_above,
                    )
                    self.blocks[event.chain] = event.block.number
                    if not event.partial:  # a sweep's first parts: the chain is not read yet
                        self._chains_seen.add(event.chain)
                    if event.readings:
                        ts = float(event.block.timestamp)
                        oldest = ts if oldest is None else min(oldest, ts)
                case PricesChanged(prices=prices, correlations=correlations):
                    self.prices.update(prices)
                    self.stats.prices_seen.update(a for a, p in prices.items() if p.price)
                    if correlations is not None:
                        self.engine.set_correlations(correlations)
                    inputs = steady_volatility(price_inputs(prices.values()), self._engine_prices)
                    self._engine_prices.update((p.asset, p) for p in inputs)
                    self.engine.set_prices(inputs)
                case ChainsChanged(chains=chains):
                    self.engine.set_chain_status(chains)
                case PositionsChanged(account=account):
                    await self._reload_positions(account)
                case VenueChanged(result=result):
                    self.venues.apply(result, self.engine)
                    self._chains_seen.add(venue_requirement(result.venue))
        return oldest

    async def _publish_venue_accounts(self, now: float) -> None:
        """Retained state of the accounts whose venue entries moved (those the engine knows:
        an account holding only unmapped assets has no unified state to carry them)."""
        accounts: list[str] = []
        rows: list[int] = []
        for account in self.venues.touched():
            try:
                rows.append(self.engine.account_index(account))
            except MarginInputError:  # holds nothing the engine values
                continue
            accounts.append(account)
        states = _AccountStates(self, self.engine.results, now, self._breakdowns)
        self.publisher.set_account_states_later(accounts, rows, states)

    def seed_positions(self, positions: Sequence[Position]) -> None:
        """Positions of a previous run (already set in the engine by the caller)."""
        for position in positions:
            self._positions.setdefault(position.account, {})[position.asset] = position

    def seed_options(self, options: Sequence[OptionPosition]) -> None:
        """Option lines of a previous run (already set in the engine by the caller)."""
        for option in options:
            self._options.setdefault(option.account, []).append(option)

    async def _reload_unread_positions(self) -> None:
        """Retry position reloads the store could not answer (not while writes fail)."""
        if self._positions_unread and not self.writer.failing:
            for account in sorted(self._positions_unread):
                self._positions_unread.discard(account)
                await self._reload_positions(account)

    async def _reload_positions(self, account: str) -> None:
        try:
            async with asyncio.timeout(POSITIONS_READ_TIMEOUT_S):
                stored = {p.asset: p for p in await self.store.positions(account)}
                options = await self.store.options(account)
        except (StoreUnavailable, TimeoutError) as exc:
            # Applied later (``_reload_unread_positions``); the engine must not stop for it.
            self._positions_unread.add(account)
            log.warning("positions_reload_failed account=%s error=%s", account, exc)
            return
        for asset, old in self._positions.get(account, {}).items():
            if asset not in stored:  # removed: a zero-size position counts for nothing
                self.engine.set_position(
                    Position(
                        account=account,
                        asset=asset,
                        chain=old.chain,
                        size=0.0,
                        entry_price=old.entry_price,
                        mmr_tiers=old.mmr_tiers,
                    )
                )
        for position in stored.values():
            self.engine.set_position(position)
        self._positions[account] = stored
        if options or self._options.get(account):
            self.engine.set_options(account, options)
            self._options[account] = options

    def _rows(self, changed: IndexArray) -> HealthRows:
        accounts = self.engine.accounts
        # The accounts whose flags moved first: a large write commits them (and their
        # transitions) before it stages the others. Breakdown ties go to them too.
        changed, moved = self._stored_flags.order(changed, self.engine.results.flags)
        subset = self.engine.results.select(changed)
        names = [accounts[i] for i in changed.tolist()]
        rows = HealthRows.from_table(
            names, subset, value_decimals=self.value_decimals, moved_first=moved
        )
        if self._shard_of is not None:  # cluster mode: each transition names its shard
            rows = dataclasses.replace(rows, shards=[self._shard_of(a) for a in rows.accounts])
        flagged = np.flatnonzero(subset.flags & _BREAKDOWN_BITS)
        self._breakdowns = {}
        chosen = largest_shortfalls(flagged, subset.shortfall, self.breakdown_limit)
        # Built once the transitions are stored (``_build_breakdowns``): valuing up to 2,000
        # breakdowns takes ~0.5-1 s, which a market-wide move's events need not wait for.
        self._breakdowns_due = ([names[i] for i in chosen.tolist()], changed[chosen].tolist())
        return rows

    async def _build_breakdowns(self) -> list[tuple[str, str]]:
        """The breakdowns of the rows being written (``_rows``), as the store takes them;
        kept for their retained state too. Valued from the engine's current results: those
        written, unless a write outlasted ``WRITE_WAIT_S`` and the engine moved on. Built
        ``BREAKDOWN_CHUNK`` at a time, with a turn of the event loop in between: the event
        relay, woken as the transitions were committed, reads and sends meanwhile.

        Called after the commit of a large write's transitions it first waits,
        ``EVENTS_FIRST_MAX_S`` at most, until the relay has sent them: the breakdowns and the
        write's second transaction come after the events. (Called inside the one
        transaction of a smaller write, before any commit, it does not wait.)"""
        if self._events_first and self.events is not None:
            self._events_first = False
            await self.events.settled(EVENTS_FIRST_MAX_S)
        names, indices = self._breakdowns_due
        self._breakdowns_due = ([], [])
        out = []
        for start in range(0, len(names), BREAKDOWN_CHUNK):
            if start:
                await asyncio.sleep(0)
            chunk = names[start : start + BREAKDOWN_CHUNK]
            healths = self.engine.account_healths(chunk)
            for name, index, health in zip(
                chunk, indices[start : start + BREAKDOWN_CHUNK], healths, strict=True
            ):
                record = breakdown_record(health)
                self._breakdowns[index] = record
                out.append((lower_address(name), json.dumps(record)))
        return out

    async def _publish(self, changed: IndexArray, now: float) -> None:
        """Retained state of the changed accounts whose flags or health bucket moved.

        Compared in bulk (numpy); a market-wide move hands the publisher most accounts, a
        ``PUBLISH_CHUNK`` at a time with a yield in between so the event relay (woken just
        before) gets the event loop, and the JSON is built by the publisher when it carries
        it (``_AccountStates``).
        """
        table = self.engine.results
        self._cover_accounts(len(self.engine.accounts))
        flags = table.flags[changed]
        buckets = _bucket_codes(table.health[changed])
        moved = (self._published_flags[changed] != flags) | (
            self._published_bucket[changed] != buckets
        )
        rows = changed[moved]
        self._published_flags[rows] = flags[moved]
        self._published_bucket[rows] = buckets[moved]
        accounts = self.engine.accounts
        # Built when published: the values of the latest recompute by then (retained state
        # is latest-wins), and the engine is not held up by 50,000 JSON documents.
        states = _AccountStates(self, table, now, self._breakdowns)
        for start in range(0, len(rows), PUBLISH_CHUNK):
            if start:
                await asyncio.sleep(0)
            chunk = rows[start : start + PUBLISH_CHUNK].tolist()
            self.publisher.set_account_states_later([accounts[i] for i in chunk], chunk, states)

    def sent_signal(self, row: int, flags: int, health: float) -> None:
        """The retained state of account ``row`` was built with these ``flags`` and
        ``health`` (``_AccountStates``)."""
        if row < len(self._published_flags):
            self._published_flags[row] = flags
            self._published_bucket[row] = _BUCKET_CODES[health_bucket(health)]

    def _cover_accounts(self, n: int, *, seeded: bool = False) -> None:
        """Grow the published-state arrays to ``n`` accounts; a new account starts as never
        published, or as its stored flags (``seed_signals``) with no debt. Seeds are looked
        at only when accounts were added (or ``seeded``)."""
        old = len(self._published_flags)
        if n > old:
            self._published_flags = np.resize(self._published_flags, n)
            self._published_bucket = np.resize(self._published_bucket, n)
            self._published_flags[old:] = 0
            self._published_bucket[old:] = _NEVER_PUBLISHED
        if not self._seeds or (n <= old and not seeded):
            return
        index = self.engine.account_index
        for account in list(self._seeds):
            try:
                i = index(account)
            except MarginInputError:
                continue  # not in the engine yet: seeded once it is
            if i < len(self._published_flags):
                self._published_flags[i] = self._seeds.pop(account)
                self._published_bucket[i] = _NO_DEBT


class _AccountStates:
    """The retained ``Account`` documents of rows of ``table`` (the engine's results), with
    each account's breakdown of the last write and its venue entries, built when the
    publisher carries them (``daemon.mqtt.outbox.PayloadRows``): one object per publish, a
    row number per account waiting."""

    __slots__ = ("at", "breakdowns", "loop", "table")

    def __init__(
        self,
        loop: EngineLoop,
        table: HealthTable,
        at: float,
        breakdowns: Mapping[int, Mapping[str, Any]],
    ) -> None:
        self.loop = loop
        self.table = table
        self.at = at
        self.breakdowns = breakdowns

    def payload(self, row: int) -> bytes:
        """The JSON of account ``row`` (directly formatted when it has no breakdown and no
        venue entry: most accounts)."""
        loop = self.loop
        table = self.table
        # The document shows the values of the table now (it is updated in place by every
        # recompute), which may be newer than those the account was marked for: what the
        # broker will hold is what later moves are compared with. (Recording the marked
        # values left a crash's state retained after a rebound that came before it was sent.)
        flags = int(table.flags[row])
        loop.sent_signal(row, flags, float(table.health[row]))
        account = loop.engine.accounts[row]
        # Only while the account still has a flag a breakdown is built for: a rebound's
        # healthy state never shows the crash's breakdown.
        breakdown = self.breakdowns.get(row) if flags & _BREAKDOWN_BITS else None
        venues = loop.venues.ledger.venues_of(account)
        if breakdown is None and not venues:
            return account_state_json(
                account, table, row, value_decimals=loop.value_decimals, at=self.at
            )
        state = engine_state(
            account,
            table,
            row,
            value_decimals=loop.value_decimals,
            at=self.at,
            breakdown=breakdown,
        )
        return encode_json(account_document(state, venues))


def largest_shortfalls(
    rows: IndexArray, shortfall: npt.NDArray[np.float64], limit: int
) -> IndexArray:
    """The ``limit`` of ``rows`` with the largest ``shortfall[row]`` (all of them when there
    are not more), in ascending row order; ties go to the lower row."""
    if len(rows) <= limit:
        return rows
    if limit <= 0:
        return rows[:0]
    # A stable sort on the negated shortfall: the largest first, ties in row order.
    order = np.argsort(-shortfall[rows], kind="stable")[:limit]
    picked: IndexArray = np.sort(rows[order])
    return picked


def _bucket_codes(health: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
    """``health_bucket`` of each value, as its index in ``_BUCKETS``."""
    codes = np.full(len(health), _BUCKETS.index(HealthBucket.HEALTHY), dtype=np.int8)
    codes[health < WARNING_HEALTH] = _BUCKETS.index(HealthBucket.WARNING)
    codes[health < CRITICAL_HEALTH] = _BUCKETS.index(HealthBucket.CRITICAL)
    codes[health < 1] = _BUCKETS.index(HealthBucket.LIQUIDATABLE)
    codes[health == np.inf] = _NO_DEBT
    codes[np.isnan(health)] = _BUCKETS.index(HealthBucket.UNKNOWN)
    return codes


def _changed(rows: IndexArray, before: HealthTable, after: HealthTable) -> IndexArray:
    """Those of ``rows`` whose results in ``after`` differ from ``before`` (their copy)."""
    result: IndexArray = rows[_differs(before, after, rows)]
    return result


def _differs(
    before: HealthTable, after: HealthTable, rows: IndexArray | None = None
) -> npt.NDArray[np.bool_]:
    """Per row of ``before``: do its results differ from ``after``'s (at ``rows``, or all)?
    NaN equals NaN (an unknown health staying unknown is no change)."""
    differs = np.zeros(len(before), dtype=bool)
    previous = before.columns()
    for name, column in after.columns().items():
        prev = previous[name]
        cur = column if rows is None else column[rows]
        if column.dtype.kind == "f":
            differs |= ~((prev == cur) | (np.isnan(prev) & np.isnan(cur)))
        else:
            differs |= prev != cur
    return differs
