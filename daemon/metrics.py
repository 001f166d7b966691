"""Prometheus metrics of the daemon, in a registry of its own (never the process-global one).

The service pushes what it observes through plain ``observe_*`` methods; ``/metrics`` renders
the registry. Sources that keep cumulative counts themselves (reorgs per watcher, requests and
errors per RPC endpoint, MQTT and event counts) are turned into Prometheus counters by adding the
increase since the previous observation; a count that went down means its source restarted,
so the whole new count is added (Prometheus' own reset rule).

RPC endpoints are labelled by their redacted URL (``EndpointStatus.url``), never the raw one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from chains.rpc_endpoint import EndpointState, EndpointStatus
from chains.watcher import ChainStatus
from core.domain import PriceStatus
from daemon.cycle_writer import WriterStats
from daemon.mqtt.publisher import MqttStats
from daemon.mqtt.relay import RelayStats
from daemon.pending_writes import PENDING_ROUNDS_PER_ASSET, PendingWrites
from margin.model import Flag
from oracles.correlation import PairEstimate
from oracles.model import AssetPrice

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What ``render`` produces: the Prometheus text exposition format 0.0.4."""

CYCLE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Engine cycle durations: milliseconds for an incremental cycle, seconds for 1M accounts."""
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)
"""Block mined → event published: bounded below by block time and confirmations."""
HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MS_PER_S = 1000.0

_FLAGS = tuple(f for f in Flag if f)


def flag_counts(flags: npt.NDArray[np.integer[Any]] | Iterable[Flag]) -> dict[Flag, int]:
    """How many of ``flags`` (one per account: the engine's flag column, or ``Flag`` values)
    carry each single flag. Counted with numpy: the daemon counts every account each second on
    its event loop, and a Python loop over 100,000 accounts held it for 0.3–0.6 s each time."""
    if isinstance(flags, np.ndarray):
        bits = flags.astype(np.int64, copy=False)
    else:
        bits = np.fromiter((int(f) for f in flags), dtype=np.int64)
    return {flag: int(np.count_nonzero(bits & int(flag))) for flag in _FLAGS}


class _CumulativeCounter:
    """A labelled Counter fed with a source's running totals instead of increments."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._last: dict[tuple[str, ...], float] = {}

    def observe(self, labels: tuple[str, ...], total: float) -> None:
        previous = self._last.get(labels, 0.0)
        increase = total - previous if total >= previous else total
        self._last[labels] = total
        # ``labels()`` also makes a labelled series visible before its first increase.
        child = self._counter.labels(*labels) if labels else self._counter
        if increase > 0:
            child.inc(increase)


class Metrics:
    """Every collector of the daemon, and the methods that update them."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        r = self.registry
        self.chain_head_block = Gauge(
            "crossmargin_chain_head_block", "Newest block seen per chain.", ["chain"], registry=r
        )
        self.chain_lag_seconds = Gauge(
            "crossmargin_chain_lag_seconds",
            "Age of the last block read per chain (its timestamp to now).",
            ["chain"],
            registry=r,
        )
        self.chain_stale = Gauge(
            "crossmargin_chain_stale",
            "1 when the chain lags beyond max_lag_s.",
            ["chain"],
            registry=r,
        )
        self._reorgs = _CumulativeCounter(
            Counter("crossmargin_reorgs", "Reorgs seen per chain.", ["chain"], registry=r)
        )
        endpoint = ["chain", "endpoint"]
        self._rpc_requests = _CumulativeCounter(
            Counter("crossmargin_rpc_requests", "RPC requests per endpoint.", endpoint, registry=r)
        )
        self._rpc_errors = _CumulativeCounter(
            Counter(
                "crossmargin_rpc_errors", "Failed RPC requests per endpoint.", endpoint, registry=r
            )
        )
        self.rpc_latency_seconds = Gauge(
            "crossmargin_rpc_latency_seconds",
            "Round-trip time per endpoint (the pool's EWMA).",
            endpoint,
            registry=r,
        )
        self.rpc_error_rate = Gauge(
            "crossmargin_rpc_error_rate",
            "Share of failed or too-slow requests among an endpoint's recent ones (the breaker's"
            " input: it parks the endpoint at 0.25).",
            endpoint,
            registry=r,
        )
        self._rpc_hedges = _CumulativeCounter(
            Counter(
                "crossmargin_rpc_hedges",
                "Requests an endpoint was too slow for: a copy went to the next endpoint.",
                endpoint,
                registry=r,
            )
        )
        self.oracle_status = Gauge(
            "crossmargin_oracle_status",
            "1 for the current price status of each asset, 0 for the others.",
            ["asset", "status"],
            registry=r,
        )
        self.oracle_price = Gauge(
            "crossmargin_oracle_price", "Price used per asset (USD).", ["asset"], registry=r
        )
        self.correlation = Gauge(
            "crossmargin_correlation",
            "Correlation in use between two risk groups (correlation_source: ewma).",
            ["pair"],
            registry=r,
        )
        self.correlation_returns = Gauge(
            "crossmargin_correlation_returns",
            "Effective number of returns behind a pair's estimate (static value below the "
            "warm-up).",
            ["pair"],
            registry=r,
        )
        self.correlation_estimated = Gauge(
            "crossmargin_correlation_estimated",
            "1 when a pair uses its estimate, 0 while it falls back to its static value.",
            ["pair"],
            registry=r,
        )
        self.accounts = Gauge(
            "crossmargin_accounts", "Accounts carrying each flag.", ["flag"], registry=r
        )
        self.failed_holdings = Gauge(
            "crossmargin_failed_holdings",
            "Holdings whose latest balance read failed (valued at their last good value).",
            ["chain", "token"],
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "crossmargin_cycle_seconds",
            "Duration of an engine cycle (recompute + store write).",
            buckets=CYCLE_BUCKETS_S,
            registry=r,
        )
        self.block_to_publish_seconds = Histogram(
            "crossmargin_block_to_publish_seconds",
            "End-to-end latency: block timestamp to the health change being published.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "crossmargin_mqtt_connected", "1 while connected to the broker.", registry=r
        )
        self._mqtt_published = _CumulativeCounter(
            Counter(
                "crossmargin_mqtt_published",
                "MQTT messages the broker acknowledged (status, retained state, events).",
                registry=r,
            )
        )
        self._events_published = _CumulativeCounter(
            Counter(
                "crossmargin_events_published",
                "QoS 1 events the broker acknowledged (re-sends included).",
                registry=r,
            )
        )
        self.events_pending = Gauge(
            "crossmargin_events_pending",
            "Transitions read from the outbox whose events await PUBACK or their mark.",
            registry=r,
        )
        self.events_oldest_pending_seconds = Gauge(
            "crossmargin_events_oldest_pending_seconds",
            "Age of the oldest of those transitions (0 when none waits).",
            registry=r,
        )
        self.http_requests = Counter(
            "crossmargin_http_requests",
            "API requests per route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "crossmargin_http_request_seconds",
            "API request durations per route.",
            ["route"],
            buckets=HTTP_BUCKETS_S,
            registry=r,
        )
        self.store_write_in_flight = Gauge(
            "crossmargin_store_write_in_flight",
            "1 while an engine write is sent and not answered yet.",
            registry=r,
        )
        self.cluster_leases_held = Gauge(
            "crossmargin_cluster_leases_held",
            "Shard leases this replica holds (cluster mode; 0 otherwise).",
            registry=r,
        )
        self.cluster_takeovers = Counter(
            "crossmargin_cluster_takeovers",
            "Shard leases taken over from another replica whose lease had expired.",
            registry=r,
        )
        self.cluster_fencing_rejections = Counter(
            "crossmargin_cluster_fencing_rejections",
            "Writes and outbox claims the database refused because the lease had moved on.",
            ["kind"],
            registry=r,
        )
        self.store_pending_accounts = Gauge(
            "crossmargin_store_pending_accounts",
            "Accounts whose stored health row is out of date (written once the store answers).",
            registry=r,
        )
        self.store_pending_balances = Gauge(
            "crossmargin_store_pending_balances",
            "Balance readings applied in memory, not stored yet.",
            registry=r,
        )
        self.store_pending_rounds = Gauge(
            "crossmargin_store_pending_price_rounds",
            f"Oracle rounds not stored yet (newest {PENDING_ROUNDS_PER_ASSET} per asset kept).",
            registry=r,
        )
        self._store_dropped_rounds = _CumulativeCounter(
            Counter(
                "crossmargin_store_dropped_price_rounds",
                f"Oracle rounds never stored: over {PENDING_ROUNDS_PER_ASSET} per asset waited.",
                registry=r,
            )
        )
        self._store_write_failures = _CumulativeCounter(
            Counter(
                "crossmargin_store_write_failures",
                "Failed engine write attempts (each retried with backoff).",
                registry=r,
            )
        )
        self.store_write_failing = Gauge(
            "crossmargin_store_write_failing",
            "1 from a failed engine write until the next successful one.",
            registry=r,
        )
        self.store_seconds_since_write = Gauge(
            "crossmargin_store_seconds_since_write",
            "Seconds since the engine last stored a cycle (also grows while nothing changes).",
            registry=r,
        )
        self.rpc_endpoint_parked = Gauge(
            "crossmargin_rpc_endpoint_parked",
            "1 while the endpoint's breaker has it parked (skipped until re-activated).",
            endpoint,
            registry=r,
        )
        self.last_cycle_timestamp = Gauge(
            "crossmargin_engine_last_cycle_timestamp_seconds",
            "Unix time of the engine's last valuation cycle (0 before the first).",
            registry=r,
        )
        self.stream_clients = Gauge(
            "crossmargin_stream_clients", "Clients of GET /v1/stream now.", registry=r
        )
        self.stream_refused = Counter(
            "crossmargin_stream_refused",
            "Stream clients refused: api.stream_max_clients were connected.",
            registry=r,
        )
        self.stream_dropped = Counter(
            "crossmargin_stream_dropped",
            "Stream clients disconnected for falling api.stream_queue_events behind.",
            registry=r,
        )
        self.observe_accounts({})

    # ---- chains ----------------------------------------------------------------------------

    def observe_chain(self, status: ChainStatus) -> None:
        """A chain watcher's status (and its pool's endpoints, if the status carries them)."""
        chain = status.chain
        if status.head_number is not None:
            self.chain_head_block.labels(chain).set(status.head_number)
        if status.last_read_age_s is not None:
            self.chain_lag_seconds.labels(chain).set(status.last_read_age_s)
        self.chain_stale.labels(chain).set(1 if status.stale else 0)
        self._reorgs.observe((chain,), status.reorgs)
        endpoints = [e for e in status.endpoints if isinstance(e, EndpointStatus)]
        if endpoints:
            self.observe_pool(chain, endpoints)

    def observe_pool(self, chain: str, endpoints: Sequence[EndpointStatus]) -> None:
        """Request/error/hedge counts, latency and error rate of every endpoint of ``chain``'s
        RPC pool."""
        for endpoint in endpoints:
            labels = (chain, endpoint.url)
            self._rpc_requests.observe(labels, endpoint.requests)
            self._rpc_errors.observe(labels, endpoint.errors)
            self._rpc_hedges.observe(labels, endpoint.hedges)
            if endpoint.latency_ewma_ms is not None:
                self.rpc_latency_seconds.labels(*labels).set(endpoint.latency_ewma_ms / MS_PER_S)
            if endpoint.error_rate is not None:
                self.rpc_error_rate.labels(*labels).set(endpoint.error_rate)
            parked = endpoint.state is EndpointState.PARKED
            self.rpc_endpoint_parked.labels(*labels).set(1 if parked else 0)

    def observe_read_failures(
        self, chain: str, tokens: Iterable[str], failing: Mapping[str, tuple[int, int]]
    ) -> None:
        """Failed holdings per token of ``chain`` (``ChainWatcher.read_failures``); the tokens
        not in ``failing`` are set to 0, so a recovered token shows 0, not its last count."""
        for token in tokens:
            self.failed_holdings.labels(chain, token).set(failing.get(token, (0, 0))[0])

    # ---- oracle, accounts, cycles ----------------------------------------------------------

    def observe_oracle(self, prices: Iterable[AssetPrice]) -> None:
        """One oracle round: the status and price of every asset."""
        for price in prices:
            for status in PriceStatus:
                self.oracle_status.labels(price.symbol, status.value).set(
                    1 if status is price.status else 0
                )
            if price.price is not None:
                self.oracle_price.labels(price.symbol).set(float(price.price))

    def observe_correlations(self, estimates: Iterable[PairEstimate]) -> None:
        """The ρ each pair of risk groups uses after a round, and its warm-up."""
        for e in estimates:
            self.correlation.labels(e.pair).set(e.correlation)
            self.correlation_returns.labels(e.pair).set(e.returns)
            self.correlation_estimated.labels(e.pair).set(1 if e.estimated else 0)

    def observe_accounts(self, counts: Mapping[Flag, int]) -> None:
        """Accounts per flag (``flag_counts`` builds it); flags left out are set to 0."""
        for flag in _FLAGS:
            self.accounts.labels(flag.name).set(counts.get(flag, 0))

    def observe_cycle(self, seconds: float) -> None:
        """The duration of one engine cycle (and that one ran now)."""
        self.cycle_seconds.observe(seconds)
        self.last_cycle_timestamp.set_to_current_time()

    def observe_latency(self, seconds: float) -> None:
        """End-to-end latency of one change: its block's timestamp to publication."""
        self.block_to_publish_seconds.observe(max(0.0, seconds))

    def observe_mqtt(self, stats: MqttStats) -> None:
        """The MQTT publisher's counters."""
        self.mqtt_connected.set(1 if stats.connected else 0)
        self._mqtt_published.observe((), stats.published)

    def observe_store(self, stats: WriterStats, pending: PendingWrites) -> None:
        """The engine writer's state: what waits to be stored and how writes fare."""
        self.store_pending_accounts.set(pending.accounts)
        self.store_pending_balances.set(pending.balances)
        self.store_pending_rounds.set(pending.rounds)
        self._store_dropped_rounds.observe((), pending.dropped_rounds)
        self._store_write_failures.observe((), stats.failures)
        self.store_write_failing.set(1 if stats.failing_since is not None else 0)
        self.store_write_in_flight.set_function(lambda: 0 if stats.writing_since is None else 1)
        # Computed when scraped, so it keeps growing between observations.
        self.store_seconds_since_write.set_function(stats.seconds_since_write)

    def observe_events(self, stats: RelayStats) -> None:
        """The event relay's counters (the database outbox on its way to the broker)."""
        self._events_published.observe((), stats.published)
        self.events_pending.set(stats.pending)
        self.events_oldest_pending_seconds.set(stats.oldest_pending_s)

    def observe_stream_clients(self, clients: int) -> None:
        """Clients of the event stream now."""
        self.stream_clients.set(clients)

    def observe_stream_refused(self) -> None:
        """A stream client refused at ``api.stream_max_clients``."""
        self.stream_refused.inc()

    def observe_stream_dropped(self) -> None:
        """A stream client dropped for falling behind."""
        self.stream_dropped.inc()

    def observe_http(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """One API request (``route`` is the route template, never the raw path)."""
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    # ---- exposition ------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
