"""One RPC endpoint of a pool and its breaker: counters, parking, rate-limit pauses.

No I/O here: ``chains.rpc.RpcPool`` sends the requests and reports each outcome to the
endpoint, which decides whether it stays in use. Times are ``time.monotonic()`` seconds.

- Transport failures (``RpcError`` except ``RateLimited``/``StateUnavailable``, including a
  request so slow that the pool hedged it and the other endpoint answered first) count. The
  endpoint is parked for ``base_delay_s``, doubled per consecutive parking up to ``max_delay_s``,
  at ``failure_threshold`` consecutive failures *or* when ``error_rate`` or more of its last
  ``window`` outcomes (at least ``min_outcomes`` of them) were bad: an endpoint failing at random
  rarely fails three times in a row. After the delay one half-open probe decides: success brings
  it back on probation, any counted failure parks it again with the next longer delay. Only
  once it got through a full window of outcomes without being parked again, with an error rate
  below half the threshold, does the delay start again from ``base_delay_s``: a flaky endpoint
  is parked for longer and longer.
- ``RateLimited`` pauses the endpoint until its ``Retry-After`` (capped); it is a bad outcome
  for the error rate but not a consecutive failure.
- A wrong chain id parks it for ``max_delay_s``.
- Any JSON-RPC answer (a result, a revert, a JSON-RPC error) proves the node works.
- Round-trip times feed a smoothed mean and mean deviation (RFC 6298's SRTT and RTTVAR); the
  pool hedges a request that has not been answered within ``mean + 4 × deviation``, bounded by
  ``hedge_min_delay_s`` and ``hedge_max_delay_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from chains.rpc_window import OutcomeWindow
from core.errors import (
    CallTooLarge,
    ChainIdMismatch,
    CrossmarginError,
    RateLimited,
    RpcError,
    RpcTimeout,
    StateUnavailable,
)
from core.redaction import redact_url

log = logging.getLogger(__name__)

BREAKER_FAILURE_THRESHOLD = 3  # consecutive transport failures that park an endpoint
BASE_REACTIVATION_DELAY_S = 1.0  # first parking; doubles per consecutive parking
MAX_REACTIVATION_DELAY_S = 60.0  # cap of that growth; also the delay after a chain id mismatch
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is capped to this
DEFAULT_RATE_LIMIT_DELAY_S = 1.0  # pause a rate-limited endpoint this long without Retry-After
LATENCY_EWMA_ALPHA = 0.2  # weight of the newest sample in the latency average
LATENCY_DEV_ALPHA = 0.25  # weight of the newest sample in the mean deviation (RFC 6298 beta)
BREAKER_WINDOW = 20  # recent outcomes the error rate is judged on
BREAKER_MIN_OUTCOMES = 10  # outcomes needed before the error rate may park an endpoint
BREAKER_ERROR_RATE = 0.25  # bad share of the window that parks it (a healthy node: ~0)
HEDGE_DEVIATIONS = 4.0  # hedge after mean + this many mean deviations of the round-trip time
HEDGE_MIN_DELAY_S = 0.25  # never hedge sooner: loaded machines have 100 ms hiccups
HEDGE_MAX_DELAY_S = 1.0  # never wait longer (nor beyond half the request timeout)


class EndpointState(StrEnum):
    """Breaker state of one endpoint, as reported by ``RpcPool.status``."""

    HEALTHY = "healthy"
    FAILING = "failing"  # some consecutive failures, below the threshold: still used
    RATE_LIMITED = "rate_limited"  # skipped until its Retry-After has passed
    PARKED = "parked"  # skipped until its re-activation delay has passed, then probed


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """A snapshot of one endpoint; ``url`` and ``last_error`` are redacted."""

    url: str
    state: EndpointState
    consecutive_failures: int
    parked_remaining_s: float  # seconds until the endpoint may be used again (park or 429)
    last_error: str | None
    latency_ewma_ms: float | None
    requests: int
    errors: int
    chain_id_verified: bool
    error_rate: float | None = None  # bad share of the last ``recent_requests`` (None: none yet)
    recent_requests: int = 0
    hedge_delay_ms: float | None = None  # a request unanswered this long here is hedged
    hedges: int = 0  # requests that were that slow here (a copy went to the next endpoint)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Tuning of every endpoint breaker of one pool."""

    failure_threshold: int = BREAKER_FAILURE_THRESHOLD
    base_delay_s: float = BASE_REACTIVATION_DELAY_S
    max_delay_s: float = MAX_REACTIVATION_DELAY_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    window: int = BREAKER_WINDOW
    min_outcomes: int = BREAKER_MIN_OUTCOMES
    error_rate: float = BREAKER_ERROR_RATE
    hedge_min_delay_s: float = HEDGE_MIN_DELAY_S
    hedge_max_delay_s: float = HEDGE_MAX_DELAY_S


class RpcEndpoint:
    """One URL of a pool: its session, chain id check and breaker state."""

    __slots__ = (
        "chain", "chain_check", "chain_id_verified", "consecutive_failures", "errors", "hedges",
        "index", "last_error", "latency_dev_ms", "latency_ms", "mismatch", "not_before",
        "outcomes", "parked", "parked_until", "parkings", "policy", "probation", "probing",
        "requests", "session", "shown", "url",
    )  # fmt: skip

    def __init__(self, *, chain: str, index: int, url: str, policy: BreakerPolicy) -> None:
        self.chain = chain
        self.index = index
        self.url = url  # raw, with its key: only ever handed to aiohttp
        self.shown = redact_url(url)
        self.policy = policy
        self.session: aiohttp.ClientSession | None = None
        self.chain_check: asyncio.Task[None] | None = None  # the one check in flight
        self.chain_id_verified = False
        self.mismatch: ChainIdMismatch | None = None
        self.parked = False
        self.probing = False  # a half-open probe is in flight: others skip this endpoint
        self.parkings = 0  # consecutive parkings, for the growing delay
        self.parked_until = 0.0
        self.not_before = 0.0  # from Retry-After
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.latency_ms: float | None = None
        self.latency_dev_ms = 0.0
        self.outcomes = OutcomeWindow(policy.window)
        self.probation = 0  # outcomes left before a re-activated endpoint's parkings reset
        self.requests = 0
        self.errors = 0
        self.hedges = 0

    def usable(self, now: float) -> bool:
        """Whether a request may use this endpoint now (a parked one only as the one probe)."""
        return now >= self.parked_until and now >= self.not_before and not self.probing

    def state(self, now: float) -> EndpointState:
        """The breaker state shown to operators."""
        if self.parked:
            return EndpointState.PARKED
        if now < self.not_before:
            return EndpointState.RATE_LIMITED
        return EndpointState.FAILING if self.consecutive_failures else EndpointState.HEALTHY

    def status(self, now: float) -> EndpointStatus:
        """A redacted snapshot."""
        return EndpointStatus(
            url=self.shown,
            state=self.state(now),
            consecutive_failures=self.consecutive_failures,
            parked_remaining_s=max(0.0, self.parked_until - now, self.not_before - now),
            last_error=self.last_error,
            latency_ewma_ms=self.latency_ms,
            requests=self.requests,
            errors=self.errors,
            chain_id_verified=self.chain_id_verified,
            error_rate=self.outcomes.rate,
            recent_requests=self.outcomes.count,
            hedge_delay_ms=self.hedge_delay_s() * 1000.0,
            hedges=self.hedges,
        )

    def hedge_delay_s(self) -> float:
        """How long a request may go unanswered here before the pool hedges it."""
        policy = self.policy
        if self.latency_ms is None:
            return policy.hedge_max_delay_s  # nothing measured yet: the most patient choice
        estimate_s = (self.latency_ms + HEDGE_DEVIATIONS * self.latency_dev_ms) / 1000.0
        return min(max(estimate_s, policy.hedge_min_delay_s), policy.hedge_max_delay_s)

    def record_latency(self, ms: float) -> None:
        """Fold one round-trip time into the EWMA and its mean deviation."""
        avg = self.latency_ms
        if avg is None:
            self.latency_ms, self.latency_dev_ms = ms, ms / 2.0  # RFC 6298's first sample
            return
        self.latency_dev_ms += LATENCY_DEV_ALPHA * (abs(ms - avg) - self.latency_dev_ms)
        self.latency_ms = avg + LATENCY_EWMA_ALPHA * (ms - avg)

    def record_ok(self) -> None:
        """The node answered: a good outcome; it ends a parking if this was the probe."""
        self._outcome(bad=False)
        if self.parked:
            if time.monotonic() < self.parked_until:
                return  # a straggler sent before the parking: the probe decides, not this
            log.info(
                "rpc_endpoint_reactivated chain=%s endpoint=%s index=%d after_parkings=%d",
                self.chain, self.shown, self.index, self.parkings,
            )  # fmt: skip
            self.parked = False
            self.outcomes.clear()  # judged afresh, on probation for a full window
            self.outcomes.add(False)
            self.probation = self.policy.window
        self.consecutive_failures = 0

    def record_slow(self, delay_s: float) -> None:
        """A request here went unanswered for ``delay_s`` and another endpoint answered first."""
        self.record_error(RpcTimeout(self.shown, delay_s))

    def record_error(self, exc: CrossmarginError) -> None:
        """Update the breaker for one failed use of this endpoint."""
        if isinstance(exc, RateLimited):
            self._pause(exc)
            self._outcome(bad=True)
            if not self.parked and self._flaky():
                self._park(self._next_delay_s(), "error_rate")
        elif isinstance(exc, RpcError) and not isinstance(exc, StateUnavailable):
            self.errors += 1
            self.consecutive_failures += 1
            self.last_error = str(exc)
            self._outcome(bad=True)
            if self.parked:
                if time.monotonic() >= self.parked_until:  # not a straggler from before
                    self._park(self._next_delay_s(), "probe_failed")
            elif self.consecutive_failures >= self.policy.failure_threshold:
                self._park(self._next_delay_s(), "consecutive_failures")
            elif self._flaky():
                self._park(self._next_delay_s(), "error_rate")
        elif isinstance(exc, ChainIdMismatch):
            self.mismatch = exc
            self.errors += 1
            self.last_error = str(exc)
            log.error(
                "rpc_chain_id_mismatch chain=%s endpoint=%s index=%d expected=%d actual=%d",
                self.chain, self.shown, self.index, exc.expected, exc.actual,
            )  # fmt: skip
            self._park(self.policy.max_delay_s, "chain_id_mismatch")
        elif not isinstance(exc, CallTooLarge):
            self.record_ok()  # a revert or JSON-RPC error is a working node answering

    def _outcome(self, *, bad: bool) -> None:
        self.outcomes.add(bad)
        if self.probation:
            self.probation -= 1
            if not self.probation:
                window, policy = self.outcomes, self.policy
                if window.bad < policy.error_rate / 2 * window.count:
                    self.parkings = 0  # a full window in use, clearly healthy: delays start over
                else:
                    self.probation = policy.window  # still shaky: its next parking is longer

    def _flaky(self) -> bool:
        policy = self.policy
        return self.outcomes.exceeds(policy.error_rate, policy.min_outcomes)

    def _next_delay_s(self) -> float:
        return min(self.policy.base_delay_s * 2.0**self.parkings, self.policy.max_delay_s)

    def _pause(self, exc: RateLimited) -> None:
        now = time.monotonic()
        wait_s = exc.retry_after_s
        if wait_s is None:
            wait_s = DEFAULT_RATE_LIMIT_DELAY_S
        wait_s = min(wait_s, self.policy.max_retry_after_s)
        if self.not_before <= now:
            log.warning(
                "rpc_endpoint_rate_limited chain=%s endpoint=%s index=%d retry_after_s=%.3g",
                self.chain, self.shown, self.index, wait_s,
            )  # fmt: skip
        self.not_before = max(self.not_before, now + wait_s)
        self.errors += 1
        self.last_error = str(exc)

    def _park(self, delay_s: float, reason: str) -> None:
        self.parked = True
        self.probation = 0
        self.parkings += 1
        self.parked_until = time.monotonic() + delay_s
        self.chain_id_verified = False  # re-checked by the probe after the delay
        log.warning(
            "rpc_endpoint_parked chain=%s endpoint=%s index=%d reason=%s failures=%d "
            "error_rate=%.2f parkings=%d delay_s=%.3g error=%s",
            self.chain, self.shown, self.index, reason, self.consecutive_failures,
            self.outcomes.rate or 0.0, self.parkings, delay_s, self.last_error,
        )  # fmt: skip
