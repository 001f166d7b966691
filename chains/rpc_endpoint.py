"""One RPC endpoint of a pool and its breaker: counters, parking, rate-limit pauses.

No I/O here: ``chains.rpc.RpcPool`` sends the requests and reports each outcome to the
endpoint, which decides whether it stays in use. Times are ``time.monotonic()`` seconds.

- Transport failures (``RpcError`` except ``RateLimited``/``StateUnavailable``) count; at
  ``failure_threshold`` consecutive ones the endpoint is parked for ``base_delay_s``, doubled per
  consecutive parking up to ``max_delay_s``. After the delay one half-open probe decides: success
  resets everything, any counted failure parks it again with the next longer delay.
- ``RateLimited`` pauses the endpoint until its ``Retry-After`` (capped) without counting.
- A wrong chain id parks it for ``max_delay_s``.
- Any JSON-RPC answer (a result, a revert, a JSON-RPC error) proves the node works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from core.errors import (
    CallTooLarge,
    ChainIdMismatch,
    CrossmarginError,
    RateLimited,
    RpcError,
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


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Tuning of every endpoint breaker of one pool."""

    failure_threshold: int = BREAKER_FAILURE_THRESHOLD
    base_delay_s: float = BASE_REACTIVATION_DELAY_S
    max_delay_s: float = MAX_REACTIVATION_DELAY_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S


class RpcEndpoint:
    """One URL of a pool: its session, chain id check and breaker state."""

    __slots__ = (
        "chain", "chain_check", "chain_id_verified", "consecutive_failures", "errors", "index",
        "last_error", "latency_ms", "mismatch", "not_before", "parked", "parked_until",
        "parkings", "policy", "probing", "requests", "session", "shown", "url",
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
        self.requests = 0
        self.errors = 0

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
        )

    def record_latency(self, ms: float) -> None:
        """Fold one round-trip time into the EWMA."""
        avg = self.latency_ms
        self.latency_ms = ms if avg is None else avg + LATENCY_EWMA_ALPHA * (ms - avg)

    def record_ok(self) -> None:
        """The node answered: reset the breaker (and end a parking, if this was the probe)."""
        if self.parked:
            log.info(
                "rpc_endpoint_reactivated chain=%s endpoint=%s index=%d after_parkings=%d",
                self.chain, self.shown, self.index, self.parkings,
            )  # fmt: skip
        self.parked = False
        self.parkings = 0
        self.consecutive_failures = 0

    def record_error(self, exc: CrossmarginError) -> None:
        """Update the breaker for one failed use of this endpoint."""
        if isinstance(exc, RateLimited):
            self._pause(exc)
        elif isinstance(exc, RpcError) and not isinstance(exc, StateUnavailable):
            self.errors += 1
            self.consecutive_failures += 1
            self.last_error = str(exc)
            if self.parked or self.consecutive_failures >= self.policy.failure_threshold:
                growth = self.policy.base_delay_s * 2.0**self.parkings
                self._park(min(growth, self.policy.max_delay_s))
        elif isinstance(exc, ChainIdMismatch):
            self.mismatch = exc
            self.errors += 1
            self.last_error = str(exc)
            log.error(
                "rpc_chain_id_mismatch chain=%s endpoint=%s index=%d expected=%d actual=%d",
                self.chain, self.shown, self.index, exc.expected, exc.actual,
            )  # fmt: skip
            self._park(self.policy.max_delay_s)
        elif not isinstance(exc, CallTooLarge) and (self.parked or self.consecutive_failures):
            self.record_ok()  # a revert or JSON-RPC error is a working node answering

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

    def _park(self, delay_s: float) -> None:
        self.parked = True
        self.parkings += 1
        self.parked_until = time.monotonic() + delay_s
        self.chain_id_verified = False  # re-checked by the probe after the delay
        log.warning(
            "rpc_endpoint_parked chain=%s endpoint=%s index=%d failures=%d parkings=%d "
            "delay_s=%.3g error=%s",
            self.chain, self.shown, self.index, self.consecutive_failures, self.parkings,
            delay_s, self.last_error,
        )  # fmt: skip
