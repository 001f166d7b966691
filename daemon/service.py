"""``crossmargin run``: the always-on pipeline.

One TaskGroup of named, supervised components: a watcher per chain and the oracle feed the
engine loop's queue; a chain-status task turns lag and sequencer state into engine input; the
engine loop recomputes, persists and publishes retained state; the event relay publishes the
stored transitions as MQTT events; the HTTP API serves keepers from the store.
SIGTERM/SIGINT stop the intake, let the engine flush what is queued and the relay publish what
is stored within a grace period, publish ``offline`` on MQTT and return.

Cluster mode (``cluster.enabled``): the watchers, the engine loop and the event relay form a
*pipeline* for the accounts of the shards this replica leases (``daemon.cluster``); the oracle,
the chain-status task, MQTT and the API stay up throughout. When the held set must change (a
lease lost, replicas joining or leaving) the pipeline is stopped, what it holds is written and
published, the leases are rebalanced and a new pipeline starts from the stored state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping

from chains.rpc import RpcPool
from chains.watcher import ChainWatcher
from core.errors import CrossmarginError, NonRetryableError
from core.lifecycle import within
from daemon.api.app import ApiServer
from daemon.api.positions import PositionMarkets
from daemon.cluster.member import ClusterMember
from daemon.cluster.replica import join_cluster, poll_positions
from daemon.cluster.shards import ShardMap
from daemon.cluster.state import owned_state
from daemon.config.model import Config
from daemon.cycle_writer import CycleWriter
from daemon.documents import chain_document, price_document
from daemon.engine_loop import (
    ChainsChanged,
    EngineLoop,
    PositionsChanged,
    PricesChanged,
)
from daemon.heap import freeze_long_lived
from daemon.logs import setup_logging
from daemon.metrics import Metrics, flag_counts
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.relay import EventRelay
from daemon.mqtt.venue_events import VenueAnnouncer
from daemon.risk_inputs import (
    chain_input,
    engine_params,
    established_decimals,
    options_by_account,
    portfolio,
    stored_holdings,
    token_risks,
    watcher_tokens,
)
from daemon.store.correlation_state import (
    SAVE_INTERVAL_S,
    load_correlation_state,
    save_correlation_state,
)
from daemon.store.engine import wait_until_reachable
from daemon.store.errors import StoreUnavailable
from daemon.store.fencing import LeaseLost
from daemon.store.migrate import migrate
from daemon.store.outbox import OutboxConnection
from daemon.store.queries import StoreQueries
from daemon.store.records import StoredState
from daemon.store.writer import HealthStore
from daemon.supervisor import Supervisor
from daemon.venue_feed import VenueFeed, build_feeds, follow_venue, setup_feeds
from daemon.venue_sync import venue_requirement
from daemon.wiring import build_oracle_service, build_watcher, chain_pool, resumed_states
from margin.engine import MarginEngine
from margin.model import ChainInput
from margin.scenario import ScenarioBook
from margin.scenarios import CorrelationSource
from oracles.model import AssetPrice
from oracles.service import OracleService

log = logging.getLogger(__name__)
_UNSET = ChainInput(name="", liquidation_latency_s=0.0, stale=True)

SETUP_TIMEOUT_S = 30.0  # start-up: how long to wait for every chain's token set-up
STATUS_INTERVAL_S = 0.25  # chain staleness / sequencer checks feeding the engine
PUBLISH_EVERY = 4  # status rounds between chain-status MQTT/metrics refreshes (1 s)
SHUTDOWN_GRACE_S = 10.0  # after SIGTERM: time for the engine to flush queued work
RELAY_STOP_GRACE_S = 5.0  # stopping the pipeline: time for the relay's batch under way


class Daemon:
    """The running service; also the ``DaemonView`` the HTTP API reads live state from."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.supervisor = Supervisor()
        self.metrics = Metrics()
        self.pools: dict[str, RpcPool] = {}
        self.watchers: dict[str, ChainWatcher] = {}
        self.oracle: OracleService | None = None
        self.loop: EngineLoop | None = None
        self.events: EventRelay | None = None
        self.venues: dict[str, VenueFeed] = {}
        self.announcer: VenueAnnouncer | None = None
        self._chain_inputs: dict[str, ChainInput] = {}
        self._unvalued: list[tuple[str, str]] = []  # (chain, token) with unknown decimals
        self._started = time.time()
        self.member: ClusterMember | None = None
        self.shard_map = ShardMap(config.cluster.shards)
        self._status_sent: set[str] = set()  # chains whose status the current engine got
        self._last_prices: dict[str, AssetPrice] = {}
        self._api: ApiServer | None = None

    # -- DaemonView -----------------------------------------------------------------------

    def chain_statuses(self) -> list[Mapping[str, object]]:
        """Live status of every chain (config order)."""
        documents: list[Mapping[str, object]] = []
        for name, watcher in self.watchers.items():
            sequencer = None if self.oracle is None else self.oracle.sequencer_status(name)
            status = watcher.status(endpoints=self.pools[name].status())
            documents.append(chain_document(status, sequencer=sequencer))
        return documents

    def price_statuses(self) -> list[Mapping[str, object]] | None:
        """The oracle's latest round, or ``None`` before the first one."""
        if self.loop is None or not self.loop.prices:
            return None
        return [price_document(p) for p in self.loop.prices.values()]

    def readiness(self) -> list[str]:
        """Reasons the daemon is not ready: chains not read yet, assets not priced yet, a token
        every read of which fails (or whose decimals are unknown: nothing of it can be
        valued). A token failing for some accounts only is named by ``read_failures``."""
        reasons = [
            f"chain {name} not read yet" for name, w in self.watchers.items() if w.last_read is None
        ]
        reasons += [
            f"token {f['chain']}/{f['token']}: every read fails "
            f"({f['failed']} of {f['watched']} accounts)"
            for f in self.read_failures()
            if f["failed"] == f["watched"]
        ]
        reasons += [
            f"token {chain}/{token}: decimals unknown, its balances cannot be valued"
            for chain, token in self._unvalued
        ]
        seen = set() if self.loop is None else self.loop.stats.prices_seen
        reasons += [
            f"asset {a.symbol} not priced yet" for a in self.config.assets if a.symbol not in seen
        ]
        reasons += [
            f"chain {name} status not applied yet"
            for name, w in self.watchers.items()
            if w.last_read is not None
            and self._chain_inputs.get(name, _UNSET).stale
            and not w.status().stale
        ]
        reasons += [
            f"venue {name} not read yet" for name, feed in self.venues.items() if not feed.read_once
        ]
        if self.loop is None:
            reasons.append("engine not started")
        elif not self.loop.warm():
            reasons.append("engine warming up")
        elif not self.loop.valuation_stored:
            reasons.append("engine's first valuation not stored yet")
        if self.loop is not None:
            reasons += _writer_problems(self.loop.writer)
        return reasons

    def read_failures(self) -> list[dict[str, object]]:
        """Tokens whose latest read failed for at least one watched account (config order):
        ``{"chain", "token", "failed", "watched"}`` (``watched``: accounts read so far)."""
        documents: list[dict[str, object]] = []
        for name, watcher in self.watchers.items():
            failing = watcher.read_failures()
            for token in watcher.tokens:
                if token in failing:
                    failed, watched = failing[token]
                    documents.append(
                        {"chain": name, "token": token, "failed": failed, "watched": watched}
                    )
        return documents

    def stress_book(self) -> ScenarioBook | None:
        """The engine's book, frozen now, for ``POST /v1/stress`` (``None`` before it starts)."""
        return None if self.loop is None else self.loop.engine.snapshot()

    async def position_changed(self, account: str) -> None:
        """Recompute ``account`` after the API replaced its positions (if it is ours)."""
        if self.loop is not None and self.shard_map.owns(account):
            await self.loop.queue.put(PositionsChanged(account.lower()))

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, auto_migrate: bool = False) -> None:
        """Run until ``stop`` is set; raise ``CrossmarginError`` on a fatal start-up fault."""
        config = self.config
        url = config.database_url
        assert url is not None  # load_config/parse_config always fill it
        if not await wait_until_reachable(url, wait_s=config.database_wait_s, stop=stop):
            return  # stopped while the database was still away
        if auto_migrate:
            await migrate(url)
        async with contextlib.AsyncExitStack() as stack:
            store = await HealthStore.open(url, value_decimals=config.margin.value_decimals)
            stack.push_async_callback(store.close)
            if config.cluster.enabled:
                await self._join_cluster(store)
            state = await store.load_state()
            if self.member is not None:  # the stored state of this replica's shards only
                state = owned_state(state, self.shard_map.owns)
            for chain in config.chains:
                pool = chain_pool(chain)
                self.pools[chain.name] = await stack.enter_async_context(pool)
                self.watchers[chain.name] = self._watcher(chain.name, state)
            await self._setup_watchers()
            self.venues = build_feeds(config, self.pools)
            await setup_feeds(self.venues.values(), SETUP_TIMEOUT_S)
            found = established_decimals(watcher_tokens(self.watchers.values()))
            for name, decimals in found.items():
                await store.record_token_decimals(name, decimals)
            # The breaker, last good prices and volatility resume where they stopped.
            resume = resumed_states(config, state.oracle_states)
            correlations = None
            if config.margin.portfolio.correlation_source is CorrelationSource.EWMA:
                correlations = await load_correlation_state(store.engine)
            self.oracle = await stack.enter_async_context(
                build_oracle_service(
                    config, dict(self.pools), resume=resume, correlation_state=correlations
                )
            )
            replica = None if self.member is None else self.member.replica_id
            publisher = await stack.enter_async_context(MqttPublisher(config.mqtt, replica=replica))
            self._pipeline(store, publisher, state)
            # The API reads on a pool of its own with short timeouts: 503, never a hang.
            api_queries = await stack.enter_async_context(
                StoreQueries.for_api(url, value_decimals=config.margin.value_decimals)
            )
            self._api = await stack.enter_async_context(
                ApiServer(
                    queries=api_queries,
                    store=store,
                    view=self,
                    settings=config.api,
                    metrics=self.metrics,
                    markets=PositionMarkets.from_config(config),
                    cluster_ttl_s=None if self.member is None else self.member.ttl_s,
                )
            )
            self._listen_transitions()
            log.info("daemon_started chains=%d assets=%d", len(config.chains), len(config.assets))
            await self._run_components(stop, publisher, store)
            if self.member is not None:
                await self._leave_cluster()
            log.info("daemon_stopped")

    async def _join_cluster(self, store: HealthStore) -> None:
        """Join the lease table and take this replica's first shards."""
        self.member = await join_cluster(
            store, self.config.cluster, url=self.config.database_url or "", metrics=self.metrics
        )
        self.shard_map = ShardMap(self.config.cluster.shards, self.member.held)

    async def _leave_cluster(self) -> None:
        """Written and published: hand the leases over at once. If the database does not
        answer, they expire by themselves within a TTL."""
        assert self.member is not None
        try:
            async with asyncio.timeout(self.member.ttl_s):
                await self.member.leave()
        except (CrossmarginError, TimeoutError) as exc:
            log.warning("cluster_leave_failed error=%s leases expire by themselves", exc)

    def _pipeline(self, store: HealthStore, publisher: MqttPublisher, state: StoredState) -> None:
        """The event relay and the engine loop for the shards held now (every account
        outside cluster mode); the watchers are built by the caller."""
        member = self.member
        fence = None if member is None else member.fence()
        self.events = EventRelay(
            store=store,
            publisher=publisher,
            batch=self.config.mqtt.max_pending,
            fence=fence,
            may_publish=None if member is None else member.valid,
            on_fenced=None if member is None else functools.partial(self._fenced, "outbox"),
            # Unfenced, on PostgreSQL: reads and marks on a connection of the relay's own.
            connection=(
                OutboxConnection(store.engine, value_decimals=store.value_decimals)
                if fence is None and store.engine.dialect.name == "postgresql"
                else None
            ),
        )
        self.loop = self._engine_loop(store, publisher, state, self.events)
        self.announcer = VenueAnnouncer(store=store, publisher=publisher)
        self.loop.venues.listeners.append(self.announcer.wake)
        self._status_sent = set()
        if self._last_prices:  # the oracle's latest round, for the new engine's warm-up
            correlations = None if self.oracle is None else self.oracle.correlations()
            self.loop.queue.put_nowait(PricesChanged(dict(self._last_prices), correlations))

    def _fenced(self, kind: str, exc: LeaseLost) -> None:
        """A write (``cycle``) or an outbox claim (``outbox``) was refused: count it, and stop
        the shard's work."""
        self.metrics.cluster_fencing_rejections.labels(kind).inc()
        if self.member is not None:
            self.member.lost(exc)

    def _listen_transitions(self) -> None:
        if self._api is not None and self.loop is not None:
            self.loop.transition_listeners.append(self._api.hub.wake)  # the HTTP event stream

    def _watcher(self, chain: str, state: StoredState) -> ChainWatcher:
        owns = None if self.member is None else self.shard_map.owns
        watcher = build_watcher(self.config, self.config.chain(chain), self.pools[chain], owns=owns)
        stored = state.balances.get(chain, {})
        watcher.accounts.update(account for account, _ in stored)
        cursor = state.cursors.get(chain)
        if cursor is not None:  # resume discovery; a reorg while down is re-scanned
            watcher.scanner.cursor = max(
                watcher.scanner.cursor, cursor.block_number - watcher.heads.ring.depth
            )
        return watcher

    async def _setup_watchers(self) -> None:
        """Check every chain's tokens; a chain down at start is retried by its component,
        but a decimals mismatch is fatal (the config is wrong)."""

        async def setup(watcher: ChainWatcher) -> None:
            try:
                await within(watcher.setup(), SETUP_TIMEOUT_S)
            except NonRetryableError:
                raise
            except (CrossmarginError, TimeoutError) as exc:
                log.warning("chain_setup_deferred chain=%s error=%s", watcher.chain.name, exc)

        await asyncio.gather(*(setup(w) for w in self.watchers.values()))

    def _venue_factory(self, feed: VenueFeed) -> Callable[[], Awaitable[None]]:
        async def follow() -> None:
            assert self.loop is not None
            await follow_venue(feed, self.loop)

        return follow

    def _engine_loop(
        self,
        store: HealthStore,
        publisher: MqttPublisher,
        state: StoredState,
        events: EventRelay,
    ) -> EngineLoop:
        config = self.config
        tokens = token_risks(config, watcher_tokens(self.watchers.values()), state.token_decimals)
        self._unvalued = [(t.chain, t.token) for t in tokens if t.decimals is None]
        for chain, token in self._unvalued:
            log.warning(
                "token_not_valued chain=%s token=%s reason=decimals unknown (not in the config, "
                "not answered by the chain, never stored): its balances count as failed reads",
                chain,
                token,
            )
        self._chain_inputs = {
            c.name: chain_input(c, stale=True, sequencer=None, last_block=None)
            for c in config.chains
        }
        engine = MarginEngine(
            tokens=tokens,
            chains=list(self._chain_inputs.values()),
            params=engine_params(config),
            portfolio=portfolio(config),
            now=time.time(),
        )
        # Last good values, and which of them failed at their latest read: a restart keeps
        # both (a failed debt read is never forgotten into a zero), through the same path
        # as a chain's first sweep.
        engine.load_holdings(stored_holdings(state, tokens))
        for position in state.positions:
            engine.set_position(position)
        for account, lines in options_by_account(state.options).items():
            engine.set_options(account, lines)
        engine.recompute_all()
        loop = EngineLoop(
            engine=engine,
            store=store,
            publisher=publisher,
            value_decimals=config.margin.value_decimals,
            metrics=self.metrics,
            required_chains=[c.name for c in config.chains]
            + [venue_requirement(v.name) for v in config.venues],
            required_assets=[a.symbol for a in config.assets],
            # Chains start stale until their status is known: valuing before that would
            # store (and publish) STALE_CHAIN and back for every account on each start.
            status_chains=[c.name for c in config.chains],
            watched_pairs=sum(len(w.accounts) * len(w.tokens) for w in self.watchers.values()),
            events=events,
            shard_of=None if self.member is None else self.shard_map.shard,
            fence=None if self.member is None else self.member.fence(),
            on_fenced=None if self.member is None else functools.partial(self._fenced, "cycle"),
        )
        loop.seed_signals(state.health_flags)
        loop.seed_positions(state.positions)
        loop.seed_options(state.options)
        return loop

    async def _run_components(
        self, stop: asyncio.Event, publisher: MqttPublisher, store: HealthStore
    ) -> None:
        """The oracle, chain status (and lease renewals) for the whole run; the pipeline
        (watchers, engine, event relay) until ``stop`` — in cluster mode, until the held set
        must change, then again on the new set."""
        async with asyncio.TaskGroup() as tasks:
            lasting = [
                self.supervisor.spawn(tasks, "oracle", lambda: self._feed_prices(publisher)),
                self.supervisor.spawn(tasks, "chain-status", lambda: self._chain_status(publisher)),
                self.supervisor.spawn(tasks, "heap", self._freeze_heap_when_ready),
            ]
            if self.oracle is not None and self.oracle.correlation is not None:
                lasting.append(
                    self.supervisor.spawn(
                        tasks, "correlation-state", lambda: self._save_correlations(store)
                    )
                )
            if self.member is not None:
                lasting.append(self.supervisor.spawn(tasks, "leases", self.member.run))
                member = self.member
                lasting.append(
                    self.supervisor.spawn(
                        tasks,
                        "positions",
                        lambda: poll_positions(store, member, self.position_changed),
                    )
                )
            while True:
                await self._run_pipeline(stop)
                await self._flush_pipeline()
                if stop.is_set() or not await self._next_pipeline(store, publisher, stop):
                    break
            for task in lasting:
                task.cancel()
        await self._save_correlations_once(store)

    async def _freeze_heap_when_ready(self) -> None:
        """Once the first valuation is stored (start-up is over), keep what start-up built out
        of the garbage collector's full passes (``daemon.heap``): they held the event loop
        for 0.1-0.4 s at a time during a market-wide move's events."""
        # The engine loop signals no event for it; a look every STATUS_INTERVAL_S until then.
        while self.loop is None or not self.loop.valuation_stored:  # noqa: ASYNC110
            await asyncio.sleep(STATUS_INTERVAL_S)
        freeze_long_lived()

    async def _save_correlations(self, store: HealthStore) -> None:
        """Save the correlation estimator every ``SAVE_INTERVAL_S`` (a restart resumes it)."""
        while True:
            await asyncio.sleep(SAVE_INTERVAL_S)
            await self._save_correlations_once(store)

    async def _save_correlations_once(self, store: HealthStore) -> None:
        estimator = None if self.oracle is None else self.oracle.correlation
        if estimator is None:
            return
        try:
            await save_correlation_state(store.engine, estimator.state, time.time())
        except StoreUnavailable as exc:  # the next save (or the next start's warm-up) covers it
            log.warning("correlation.state_not_saved reason=%s", exc)

    async def _run_pipeline(self, stop: asyncio.Event) -> None:
        """Run the current pipeline until ``stop`` or a change of the held shards."""
        assert self.loop is not None
        assert self.events is not None
        loop, events = self.loop, self.events
        async with asyncio.TaskGroup() as tasks:
            running = [
                self.supervisor.spawn(tasks, f"watch:{name}", self._watch_factory(w, loop))
                for name, w in self.watchers.items()
            ]
            running += [
                self.supervisor.spawn(tasks, f"venue:{name}", self._venue_factory(feed))
                for name, feed in self.venues.items()
            ]
            # Whatever a previous run stored and did not get acknowledged goes out first.
            relay = self.supervisor.spawn(tasks, "events", events.run)
            if self.announcer is not None:
                running.append(self.supervisor.spawn(tasks, "venue-events", self.announcer.run))
            running.append(self.supervisor.spawn(tasks, "engine", loop.run))
            waits = [asyncio.ensure_future(stop.wait())]
            if self.member is not None:
                waits.append(asyncio.ensure_future(self.member.changed.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            if stop.is_set():
                log.info("daemon_stopping grace_s=%s", SHUTDOWN_GRACE_S)
            else:
                log.info("pipeline_stopping reason=shards_changed")
            for task in running:
                task.cancel()
            # The relay is not cut mid-batch (whoever relays next would send the batch again):
            # it delivers and marks the batch under way, then ends.
            events.stop()
            await asyncio.wait({relay}, timeout=RELAY_STOP_GRACE_S)
            relay.cancel()

    async def _flush_pipeline(self) -> None:
        """Intake is stopped: flush what is queued and publish what is stored (bounded).
        Events the grace does not cover stay in the outbox and go out at the next start (or
        from the shard's next owner)."""
        assert self.loop is not None
        assert self.events is not None
        loop, events = self.loop, self.events
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        try:
            await within(loop.drain(), SHUTDOWN_GRACE_S)
            await within(events.drain(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning(
                "shutdown_flush_timeout pending=%d events_pending=%d",
                loop.queue.qsize(),
                events.stats().pending,
            )
        except LeaseLost as exc:  # the relay's claim: nothing of those shards is ours now
            self._fenced("outbox", exc)
        finally:
            events.close()

    async def _next_pipeline(
        self, store: HealthStore, publisher: MqttPublisher, stop: asyncio.Event
    ) -> bool:
        """Rebalance the leases (the old pipeline's state is written) and build the pipeline
        of the new set from the stored state; False when ``stop`` came meanwhile."""
        assert self.member is not None
        while True:
            try:
                await self.member.rebalance()
                state = await store.load_state()
                break
            except (CrossmarginError, TimeoutError) as exc:  # the database is away: wait
                log.warning("cluster_rebalance_failed error=%s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.member.ttl_s / 3)
                if stop.is_set():
                    return False
        self.shard_map = ShardMap(self.config.cluster.shards, self.member.held)
        state = owned_state(state, self.shard_map.owns)
        self.watchers = {name: self._watcher(name, state) for name in self.watchers}
        await self._setup_watchers()
        self._pipeline(store, publisher, state)
        self._listen_transitions()
        return True

    def _watch_factory(
        self, watcher: ChainWatcher, loop: EngineLoop
    ) -> Callable[[], Awaitable[None]]:
        async def watch() -> None:
            async for update in watcher.updates():
                await loop.queue.put(update)
                del update  # the engine has it; not kept until the next block (every pair)

        return watch

    async def _feed_prices(self, publisher: MqttPublisher) -> None:
        assert self.oracle is not None
        assert self.loop is not None
        async for prices in self.oracle.rounds():
            self._last_prices.update(prices)
            await self.loop.queue.put(PricesChanged(prices, self.oracle.correlations()))
            self.metrics.observe_oracle(prices.values())
            self.metrics.observe_correlations(self.oracle.correlation_estimates())
            for asset, price in prices.items():
                publisher.set_oracle_status(asset, price_document(price))

    async def _chain_status(self, publisher: MqttPublisher) -> None:
        """Every ``STATUS_INTERVAL_S`` (0.25 s): staleness and sequencer state to the engine
        (on change); every ``PUBLISH_EVERY`` rounds (1 s): chain status to MQTT and metrics,
        and the account/MQTT/cycle gauges."""
        assert self.loop is not None
        for round_no in itertools.count():
            publish = round_no % PUBLISH_EVERY == 0
            changed = []
            for name, watcher in self.watchers.items():
                chain = self.config.chain(name)
                sequencer = None if self.oracle is None else self.oracle.sequencer_status(name)
                status = watcher.status(endpoints=self.pools[name].status())
                current = chain_input(
                    chain,
                    stale=status.stale,
                    sequencer=sequencer,
                    last_block=status.last_read_number,
                )
                previous = self._chain_inputs.get(name)
                if (
                    previous is None
                    or (previous.stale, previous.sequencer_down)
                    != (current.stale, current.sequencer_down)
                    # Once read, a chain's status goes to the engine even if unchanged: the
                    # engine waits for it before its first valuation.
                    or (name not in self._status_sent and current.last_block is not None)
                ):
                    changed.append(current)
                    if current.last_block is not None:
                        self._status_sent.add(name)
                self._chain_inputs[name] = current
                if publish:
                    publisher.set_chain_status(name, chain_document(status, sequencer=sequencer))
                    self.metrics.observe_chain(status)
                    self.metrics.observe_read_failures(
                        name, watcher.tokens, watcher.read_failures()
                    )
                    self.metrics.observe_pool(name, self.pools[name].status())
            if changed:
                await self.loop.queue.put(ChainsChanged(changed))
            if not publish:
                await asyncio.sleep(STATUS_INTERVAL_S)
                continue
            self.metrics.observe_accounts(flag_counts(self.loop.engine.results.flags))
            self.metrics.observe_mqtt(publisher.stats())
            self.metrics.observe_store(self.loop.writer.stats, self.loop.writer.pending)
            if self.events is not None:
                self.metrics.observe_events(self.events.stats())
            await asyncio.sleep(STATUS_INTERVAL_S)


def _writer_problems(writer: CycleWriter) -> list[str]:
    """Readiness reasons of the engine's writer: failing, or a write left unanswered."""
    stats = writer.stats
    if stats.failing_since is not None:
        return [
            f"store writes failing for {time.time() - stats.failing_since:.0f}s "
            f"({writer.pending.accounts} accounts pending): {stats.last_error}"
        ]
    stalled = writer.stalled_s()
    if stalled:
        return [f"store write unanswered for {stalled:.0f}s"]
    return []


async def run_until_signalled(config: Config, *, auto_migrate: bool = False) -> int:
    """``crossmargin run``: run until SIGTERM or SIGINT; 0 on a clean stop."""
    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(signum, stop.set)
    setup_logging(logging.INFO)
    await Daemon(config).run(stop, auto_migrate=auto_migrate)
    return 0
