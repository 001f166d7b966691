"""Per-chain JSON-RPC pool: ordered failover over several endpoints, each behind a breaker.

Traffic always goes to the first usable endpoint in configuration order, so when an earlier
endpoint recovers, traffic returns to it. Each endpoint has one keep-alive aiohttp session, its
chain id is checked (``eth_chainId``) before first use and after every re-activation, and a
breaker (``chains.rpc_endpoint``) parks it after consecutive transport failures or a high error
rate over its recent requests, for a delay that doubles per consecutive parking. A parked
endpoint whose delay has run out gets one half-open probe (the next request that picks it)
which decides between healthy and parked again.

Within one request, a failed attempt moves on to the next untried usable endpoint at once;
tenacity drives the further attempts and sleeps (full jitter, exponential) only once every
usable endpoint has been tried. Reverts, too-large calls and other JSON-RPC answers go to the
caller at once: the node worked, and retrying would get the same answer. An idempotent read
(``IDEMPOTENT_READS``) still unanswered after the endpoint's hedge delay (from its observed
latency, 0.25–1 s) is also sent to the next untried usable endpoint; the first answer wins and
the other request is cancelled (``chains.rpc_hedge``), and a slow loser counts as a failure.

This is the hot path for balance reads: bodies are built by string formatting around
pre-serialised params, parsed with ``json.loads``, and nothing is logged per request. URLs carry
API keys, so only ``redact_url`` forms are ever shown (status, repr, errors and logs).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from chains.rpc_endpoint import (
    BASE_REACTIVATION_DELAY_S,
    BREAKER_FAILURE_THRESHOLD,
    HEDGE_MAX_DELAY_S,
    HEDGE_MIN_DELAY_S,
    MAX_REACTIVATION_DELAY_S,
    MAX_RETRY_AFTER_S,
    BreakerPolicy,
    EndpointStatus,
    RpcEndpoint,
)
from chains.rpc_endpoint import EndpointState as EndpointState  # re-export
from chains.rpc_errors import (
    batch_results,
    single_result,
)
from chains.rpc_hedge import IDEMPOTENT_READS, first_answer
from chains.rpc_transport import check_chain_id, envelope, post
from core.errors import (
    ChainIdMismatch,
    ConfigError,
    CrossmarginError,
    NoHealthyEndpoint,
    RetryableError,
)
from core.lifecycle import AsyncResource
from core.redaction import redact_url

BACKOFF_BASE_S = 0.05  # jittered backoff multiplier once every usable endpoint was tried
BACKOFF_MAX_S = 2.0  # cap of one backoff sleep
CONNECTIONS_PER_ENDPOINT = 16  # keep-alive connections per endpoint (concurrent requests)
KEEPALIVE_TIMEOUT_S = 30.0  # idle keep-alive connections are closed after this
DEFAULT_REQUEST_TIMEOUT_S = 3.0  # matches daemon.config.model's default request_timeout_s
DEFAULT_MAX_ATTEMPTS = 4  # tries of one request across all endpoints (failover included)
HEDGE_TIMEOUT_SHARE = 0.5  # a hedge is sent at the latest after this share of the timeout
# The breaker's and the hedge delay's constants (BREAKER_*, BASE_/MAX_REACTIVATION_DELAY_S,
# MAX_RETRY_AFTER_S, HEDGE_*) live in chains.rpc_endpoint, next to the breaker.

_T = TypeVar("_T")
_Decoder = Callable[[str, Any], _T]


@dataclass(slots=True)
class _Attempts:
    tried: set[int]
    hedge: bool  # an idempotent read on a pool of several endpoints
    last: CrossmarginError | None = None


class _Exhausted(Exception):
    """Nothing usable is left for this request: stop retrying and raise ``error``."""

    def __init__(self, error: CrossmarginError) -> None:
        self.error = error


class RpcPool(AsyncResource):
    """JSON-RPC client for one chain over an ordered list of endpoint URLs.

    Use as ``async with RpcPool(chain=…, chain_id=…, urls=[…]) as pool`` (or ``start``/``close``,
    both idempotent). ``max_attempts`` bounds the tries of one request across all endpoints.
    """

    def __init__(
        self,
        *,
        chain: str,
        chain_id: int,
        urls: Sequence[str],
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        breaker_failure_threshold: int = BREAKER_FAILURE_THRESHOLD,
        base_reactivation_delay_s: float = BASE_REACTIVATION_DELAY_S,
        max_reactivation_delay_s: float = MAX_REACTIVATION_DELAY_S,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        max_retry_after_s: float = MAX_RETRY_AFTER_S,
        connections_per_endpoint: int = CONNECTIONS_PER_ENDPOINT,
    ) -> None:
        key = f"chains.{chain}"
        if not urls:
            raise ConfigError(f"{key}.rpc_urls", "at least one RPC URL is required")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{key}.rpc_urls", "must be http(s) URLs", redact_url(url))
        if request_timeout_s <= 0 or max_attempts < 1 or breaker_failure_threshold < 1:
            raise ConfigError(key, "timeout, attempts and breaker threshold must be positive")
        if not 0 < base_reactivation_delay_s <= max_reactivation_delay_s:
            raise ConfigError(key, "need 0 < base_reactivation_delay_s <= max_reactivation_delay_s")
        self.chain = chain
        self.chain_id = chain_id
        hedge_max_s = min(HEDGE_MAX_DELAY_S, request_timeout_s * HEDGE_TIMEOUT_SHARE)
        policy = BreakerPolicy(
            failure_threshold=breaker_failure_threshold,
            base_delay_s=base_reactivation_delay_s,
            max_delay_s=max_reactivation_delay_s,
            max_retry_after_s=max_retry_after_s,
            hedge_min_delay_s=min(HEDGE_MIN_DELAY_S, hedge_max_s),
            hedge_max_delay_s=hedge_max_s,
        )
        self._endpoints = [
            RpcEndpoint(chain=chain, index=i, url=url, policy=policy) for i, url in enumerate(urls)
        ]
        self._request_timeout_s = request_timeout_s
        self._max_attempts = max_attempts
        self._connections = connections_per_endpoint
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._hedging = len(urls) > 1
        self._next_id = 1
        self._started = False

    def __repr__(self) -> str:
        shown = [ep.shown for ep in self._endpoints]
        return f"RpcPool(chain={self.chain!r}, chain_id={self.chain_id}, endpoints={shown!r})"

    async def start(self) -> None:
        """Open one keep-alive session per endpoint. Connections are made on first use."""
        if self._started:
            return
        timeout = aiohttp.ClientTimeout(total=self._request_timeout_s)
        for ep in self._endpoints:
            connector = aiohttp.TCPConnector(
                limit=self._connections, keepalive_timeout=KEEPALIVE_TIMEOUT_S
            )
            ep.session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers={"Content-Type": "application/json"},
            )
        self._started = True

    async def close(self) -> None:
        """Close every session and cancel pending chain id checks."""
        if not self._started:
            return
        self._started = False
        for ep in self._endpoints:
            if ep.chain_check is not None:
                ep.chain_check.cancel()
                ep.chain_check = None
            if ep.session is not None:
                await ep.session.close()
                ep.session = None

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Call ``method`` with ``params`` and return its ``result``."""
        return await self.request_raw(method, json.dumps(params, separators=(",", ":")))

    async def request_raw(self, method: str, params_json: str) -> Any:
        """Like ``request`` with ``params_json`` the already serialised JSON params array."""
        rid = self._take_ids(1)
        data = envelope(rid, method, params_json).encode()
        decode = partial(single_result, request_id=rid, body_len=len(data))
        return await self._send(data, decode, hedge=method in IDEMPOTENT_READS)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | str]]) -> list[Any]:
        """Send ``(method, params)`` calls as one JSON-RPC batch; results in call order.

        ``params`` may be a pre-serialised JSON array string. A call that failed is returned as
        its exception object in the list (e.g. ``ExecutionReverted``), not raised; faults of the
        whole batch (transport, size, rate limit) are raised like for ``request``.
        """
        if not calls:
            return []
        first = self._take_ids(len(calls))
        parts = []
        hedge = True
        for rid, (method, params) in enumerate(calls, start=first):
            ps = params if isinstance(params, str) else json.dumps(params, separators=(",", ":"))
            parts.append(envelope(rid, method, ps))
            hedge = hedge and method in IDEMPOTENT_READS
        data = f"[{','.join(parts)}]".encode()
        decode = partial(batch_results, first_id=first, count=len(calls), body_len=len(data))
        return await self._send(data, decode, hedge=hedge)

    def status(self) -> list[EndpointStatus]:
        """One redacted status per endpoint, in failover order."""
        now = time.monotonic()
        statuses = [ep.status(now) for ep in self._endpoints]
        if self._hedging:
            return statuses
        return [replace(s, hedge_delay_ms=None) for s in statuses]  # nothing to hedge to

    @property
    def active_endpoint(self) -> str | None:
        """Redacted URL of the endpoint the next request would use, or None if all are out."""
        now = time.monotonic()
        return next((ep.shown for ep in self._endpoints if ep.usable(now)), None)

    # -- request path -------------------------------------------------------------------------

    def _take_ids(self, count: int) -> int:
        first = self._next_id
        self._next_id += count
        return first

    async def _send(self, body: bytes, decode: _Decoder[_T], *, hedge: bool) -> _T:
        if not self._started:
            raise RuntimeError(f"RpcPool for chain {self.chain} is not started")
        attempts = _Attempts(set(), hedge=hedge and self._hedging)
        try:
            # First try without tenacity, which costs ~70 µs a request: most requests succeed.
            return await self._attempt(attempts, body, decode)
        except _Exhausted as exc:
            raise exc.error from None
        except RetryableError:
            if self._max_attempts == 1:
                raise
        pause = self._backoff(attempts, 1)
        if pause:
            await asyncio.sleep(pause)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts - 1),
            wait=lambda state: self._backoff(attempts, state.attempt_number + 1),
            retry=retry_if_exception_type(RetryableError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(attempts, body, decode)
        except _Exhausted as exc:
            raise exc.error from None
        raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover

    def _backoff(self, attempts: _Attempts, failed: int) -> float:
        """Seconds to sleep after ``failed`` attempts of one request.

        Zero while an untried endpoint is usable (fail over at once) or when nothing is usable
        (the next attempt ends the request); else full jitter, uniform in [0, base·2^failed]
        capped at ``backoff_max_s``.
        """
        now = time.monotonic()
        usable = [ep for ep in self._endpoints if ep.usable(now)]
        if not usable or any(ep.index not in attempts.tried for ep in usable):
            return 0.0
        return random.uniform(0.0, min(self._backoff_max_s, self._backoff_base_s * 2.0**failed))

    def _choose(self, tried: set[int]) -> RpcEndpoint | None:
        now = time.monotonic()
        fallback = None
        for ep in self._endpoints:
            if ep.usable(now):
                if ep.index not in tried:
                    return ep
                fallback = fallback or ep
        if fallback is not None:
            tried.clear()  # a new round over the usable endpoints, after the backoff sleep
        return fallback

    def _untried(self, tried: set[int]) -> RpcEndpoint | None:
        now = time.monotonic()
        return next((e for e in self._endpoints if e.index not in tried and e.usable(now)), None)

    async def _attempt(self, attempts: _Attempts, body: bytes, decode: _Decoder[_T]) -> _T:
        while True:
            ep = self._choose(attempts.tried)
            if ep is None:
                raise _Exhausted(self._exhausted_error(attempts))
            attempts.tried.add(ep.index)
            # Half-open: a probe decides alone, others skip ep meanwhile. Claimed here, not in
            # _use: a hedge task cancelled before its first step never runs a finally clause.
            probes: list[RpcEndpoint] = []
            _claim(ep, probes)
            try:
                if not attempts.hedge:
                    return await self._use(ep, body, decode)
                delay_s = ep.hedge_delay_s()
                return await first_answer(
                    self._use(ep, body, decode),
                    delay_s=delay_s,
                    start_hedge=partial(self._hedge, attempts, ep, probes, body, decode),
                    on_first_lost=partial(ep.record_slow, delay_s),
                )
            except ChainIdMismatch:
                continue  # parked by the check; fail over without using an attempt
            except CrossmarginError as exc:
                attempts.last = exc
                raise
            finally:
                for probe in probes:
                    probe.probing = False

    def _hedge(
        self,
        attempts: _Attempts,
        slow: RpcEndpoint,
        probes: list[RpcEndpoint],
        body: bytes,
        decode: _Decoder[_T],
    ) -> Coroutine[Any, Any, _T] | None:
        """The same request to the next untried usable endpoint, or None if there is none."""
        ep = self._untried(attempts.tried)
        if ep is None:
            return None
        attempts.tried.add(ep.index)
        slow.hedges += 1
        _claim(ep, probes)
        return self._use(ep, body, decode)

    async def _use(self, ep: RpcEndpoint, body: bytes, decode: _Decoder[_T]) -> _T:
        """One request to ``ep``; its outcome is recorded on ``ep``'s breaker."""
        if not ep.chain_id_verified:
            await self._ensure_chain_id(ep)  # accounts for its own failures
        try:
            result = decode(ep.shown, await self._post(ep, body))
        except CrossmarginError as exc:
            ep.record_error(exc)
            raise
        ep.record_ok()
        return result

    def _exhausted_error(self, attempts: _Attempts) -> CrossmarginError:
        mismatches = [ep.mismatch for ep in self._endpoints if ep.mismatch is not None]
        if len(mismatches) == len(self._endpoints):
            return mismatches[-1]
        if attempts.last is not None:
            return attempts.last
        last = next((ep.last_error for ep in self._endpoints if ep.last_error), None)
        return NoHealthyEndpoint(self.chain, last)

    async def _post(self, ep: RpcEndpoint, body: bytes) -> Any:
        return await post(ep, body, chain=self.chain, timeout_s=self._request_timeout_s)

    # -- chain id and breaker -----------------------------------------------------------------

    async def _ensure_chain_id(self, ep: RpcEndpoint) -> None:
        # One check per endpoint at a time; concurrent requests share its outcome.
        task = ep.chain_check
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(
                self._check_chain_id(ep), name=f"rpc-chain-id:{self.chain}:{ep.index}"
            )
            task.add_done_callback(_retrieve)
            ep.chain_check = task
        await asyncio.shield(task)

    async def _check_chain_id(self, ep: RpcEndpoint) -> None:
        await check_chain_id(ep, self.chain_id, rid=self._take_ids(1), post=self._post)


def _claim(ep: RpcEndpoint, probes: list[RpcEndpoint]) -> None:
    if ep.parked:
        ep.probing = True
        probes.append(ep)


def _retrieve(task: asyncio.Task[None]) -> None:
    # Every waiter may have been cancelled: fetch the outcome so asyncio does not warn about it.
    if not task.cancelled():
        task.exception()
