"""The RPC pool against flaky and slow endpoints: error-rate breaker, latency, hedging.

Pure tables for the outcome window and the breaker (``RpcEndpoint`` does no I/O), then the pool
on a real Anvil behind ``tests.faultproxy``. Nothing here asserts wall-clock time: a slow path
shows up as an answer that never comes within a generous bound, or in the endpoint counters.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chains.rpc import EndpointState, RpcPool
from chains.rpc_endpoint import (
    BREAKER_MIN_OUTCOMES,
    BREAKER_WINDOW,
    HEDGE_MAX_DELAY_S,
    HEDGE_MIN_DELAY_S,
    BreakerPolicy,
    RpcEndpoint,
)
from chains.rpc_window import OutcomeWindow
from core.errors import (
    ExecutionReverted,
    RateLimited,
    RpcError,
    StateUnavailable,
)
from daemon.documents import endpoint_document
from daemon.metrics import Metrics
from devnet import AnvilNode
from tests.faultproxy import FaultMode, FaultProxy

CHAIN_ID = 1011
KEY_PATH = "/v2/FLAKYKEY0123456789abcdef"
DEV_ACCOUNT = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # Anvil account 0: 10,000 ETH
DEV_BALANCE = hex(10_000 * 10**18)
REVERTER = "0x00000000000000000000000000000000000000aa"  # code: revert(0, 0)
PATIENT_TIMEOUT_S = 30.0  # far beyond any hedge delay: only a hedge can answer in time
ANSWER_BOUND_S = 10.0  # generous; a request that waits for PATIENT_TIMEOUT_S misses it
URL = "http://node.example/v2/***"


# -- the outcome window (pure) ----------------------------------------------------------------


def test_outcome_window_counts_the_last_outcomes_only() -> None:
    window = OutcomeWindow(4)
    assert (window.rate, window.count) == (None, 0)
    for bad in (True, False, False, True):
        window.add(bad)
    assert (window.bad, window.count, window.rate) == (2, 4, 0.5)
    window.add(False)  # the first (bad) one leaves the window
    window.add(False)
    assert (window.bad, window.count, window.rate) == (1, 4, 0.25)
    assert window.exceeds(0.25, 4)
    assert not window.exceeds(0.25, 5)  # too few outcomes to judge
    assert not window.exceeds(0.3, 4)
    window.clear()
    assert (window.bad, window.count, window.rate) == (0, 0, None)
    with pytest.raises(ValueError, match="at least one"):
        OutcomeWindow(0)


# -- the breaker (pure) -----------------------------------------------------------------------


def endpoint(**policy: Any) -> RpcEndpoint:
    return RpcEndpoint(
        chain="a", index=0, url="http://node.example", policy=BreakerPolicy(**policy)
    )


def feed(ep: RpcEndpoint, pattern: str) -> None:
    """``.`` a good answer, ``x`` a transport failure, ``r`` a 429, ``s`` a slow loser."""
    for mark in pattern:
        if mark == ".":
            ep.record_ok()
        elif mark == "x":
            ep.record_error(RpcError(URL, "HTTP 500"))
        elif mark == "r":
            ep.record_error(RateLimited(URL, 0.0))
        else:
            ep.record_slow(0.25)


def run_out_parking(ep: RpcEndpoint) -> None:
    ep.parked_until = time.monotonic() - 1  # the re-activation delay has passed


def parked_for(ep: RpcEndpoint, outcomes: str) -> float:
    """Feed ``outcomes`` and return the parking delay they started, in whole seconds.

    The endpoint stamps ``parked_until`` from the monotonic clock while it is fed: the clock
    read just before and just after brackets the delay, however slowly the feed ran (the
    delays are whole seconds; the bracket holds exactly one unless the feed took a second).
    """
    before = time.monotonic()
    feed(ep, outcomes)
    after = time.monotonic()
    assert ep.parked
    low, high = ep.parked_until - after, ep.parked_until - before
    delay = math.ceil(low - 1e-9)
    assert delay <= high + 1e-9, (low, high)
    return delay


def test_random_failures_park_an_endpoint_that_never_fails_twice_in_a_row() -> None:
    ep = endpoint()
    feed(ep, ".x." * 3)  # 3 of 9: not enough outcomes yet to judge a rate
    assert not ep.parked
    assert ep.status(time.monotonic()).error_rate == pytest.approx(1 / 3)
    feed(ep, "x")  # 4 of 10 ≥ 25 %
    assert ep.parked
    assert ep.consecutive_failures == 1  # the old rule (3 in a row) would never have fired
    status = ep.status(time.monotonic())
    assert status.state is EndpointState.PARKED
    assert status.recent_requests == BREAKER_MIN_OUTCOMES


def test_a_healthy_endpoint_with_rare_failures_stays_in_use() -> None:
    ep = endpoint()
    feed(ep, ("x" + "." * 9) * 10)  # 10 %
    assert not ep.parked
    assert ep.status(time.monotonic()).state is EndpointState.HEALTHY


def test_rate_limits_and_slow_answers_count_as_bad_outcomes() -> None:
    ep = endpoint()
    feed(ep, "..s..r...s")
    assert ep.parked  # 3 of 10, and never a consecutive failure streak
    assert ep.hedges == 0  # counted by the pool when it sends the copy, not here
    assert "no answer within 0.25s" in (ep.last_error or "")


def test_a_stragglers_success_does_not_end_a_parking() -> None:
    ep = endpoint()
    feed(ep, "xxx")
    assert ep.parked
    feed(ep, "...")  # requests sent before the parking, answered during it
    assert ep.parked
    run_out_parking(ep)
    feed(ep, ".")  # the probe
    assert not ep.parked


def test_a_flaky_endpoint_is_parked_longer_each_time_until_it_proves_healthy() -> None:
    ep = endpoint(base_delay_s=1.0, max_delay_s=8.0)
    delays = []
    for _ in range(4):
        delays.append(parked_for(ep, "..x.x..x.x"))
        run_out_parking(ep)
        feed(ep, ".")  # a successful probe: back on probation
        assert not ep.parked
    assert delays == [1, 2, 4, 8]

    feed(ep, "." * BREAKER_WINDOW)  # a full clean window: forgiven
    assert parked_for(ep, "xxx") == 1


def test_a_shaky_probation_keeps_the_delay_growing() -> None:
    ep = endpoint(base_delay_s=1.0, max_delay_s=8.0)
    feed(ep, "xxx")
    run_out_parking(ep)
    feed(ep, ".")
    feed(ep, ".....x" * 3 + "..")  # 3 of 20 = 15 %: not parked, but not clearly healthy
    assert not ep.parked
    assert parked_for(ep, "xxx") == 2


def test_answers_that_prove_the_node_works_are_good_outcomes() -> None:
    ep = endpoint()
    for _ in range(5):
        ep.record_error(ExecutionReverted(URL, "execution reverted"))
        ep.record_error(StateUnavailable(URL, -32001, "Resource not found"))
    status = ep.status(time.monotonic())
    assert (status.error_rate, status.recent_requests) == (0.0, 10)


@pytest.mark.parametrize(
    ("samples_ms", "expected_s"),
    [
        ([], HEDGE_MAX_DELAY_S),  # nothing known: the most patient
        ([10.0] * 20, HEDGE_MIN_DELAY_S),  # fast and steady: the floor
        ([200.0] * 30, 0.2 + 4 * 0.0),  # the deviation decays towards 0
        ([100.0, 400.0] * 20, None),  # between the bounds: mean + 4 deviations
        ([900.0, 3000.0] * 20, HEDGE_MAX_DELAY_S),  # slow: the cap
    ],
)
def test_hedge_delay_follows_the_observed_latency(
    samples_ms: list[float], expected_s: float | None
) -> None:
    ep = endpoint()
    for ms in samples_ms:
        ep.record_latency(ms)
    delay = ep.hedge_delay_s()
    assert HEDGE_MIN_DELAY_S <= delay <= HEDGE_MAX_DELAY_S
    if expected_s is None:
        assert ep.latency_ms is not None
        assert delay == pytest.approx((ep.latency_ms + 4 * ep.latency_dev_ms) / 1000)
        assert HEDGE_MIN_DELAY_S < delay < HEDGE_MAX_DELAY_S
    else:
        assert delay == pytest.approx(max(expected_s, HEDGE_MIN_DELAY_S), abs=0.01)
    shown = ep.status(time.monotonic()).hedge_delay_ms
    assert shown == pytest.approx(delay * 1000)


def test_the_hedge_delay_stays_within_half_the_request_timeout() -> None:
    urls = ["http://a.example", "http://b.example"]
    pool = RpcPool(chain="a", chain_id=1, urls=urls, request_timeout_s=0.3)
    assert [s.hedge_delay_ms for s in pool.status()] == [pytest.approx(150.0)] * 2
    lonely = RpcPool(chain="a", chain_id=1, urls=urls[:1])
    assert [s.hedge_delay_ms for s in lonely.status()] == [None]  # nothing to hedge to


# -- the pool on Anvil ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def anvil() -> AsyncIterator[str]:
    async with AnvilNode(chain_id=CHAIN_ID) as node:
        async with RpcPool(chain="a", chain_id=CHAIN_ID, urls=[node.url]) as direct:
            await direct.request("anvil_setCode", [REVERTER, "0x60006000fd"])
        yield node.url


@pytest.fixture
async def proxies(anvil: str) -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    async with FaultProxy(anvil) as first, FaultProxy(anvil) as second:
        yield first, second


def patient_pool(*urls: str, **overrides: Any) -> RpcPool:
    return RpcPool(
        chain="a",
        chain_id=CHAIN_ID,
        urls=urls,
        **{"request_timeout_s": PATIENT_TIMEOUT_S, "base_reactivation_delay_s": 0.5, **overrides},
    )


async def answer(pool: RpcPool, method: str, params: list[Any]) -> Any:
    return await asyncio.wait_for(pool.request(method, params), ANSWER_BOUND_S)


async def test_a_hanging_request_is_hedged_to_the_next_endpoint(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    first, second = proxies
    async with patient_pool(first.url + KEY_PATH, second.url) as pool:
        assert await answer(pool, "eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        assert second.requests == 0
        await first.set_mode(FaultMode.HANG)
        # Without a hedge this waits for the 30 s request timeout and misses the bound.
        assert await answer(pool, "eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        slow, spare = pool.status()
        assert (slow.hedges, slow.consecutive_failures) == (1, 1)
        assert "no answer within" in (slow.last_error or "")
        assert first.methods[-1] == "eth_getBalance"  # it did get the request, and hung
        assert second.methods == ["eth_chainId", "eth_getBalance"]  # verified, then the copy
        assert spare.state is EndpointState.HEALTHY
        await first.set_mode(FaultMode.PASS)


async def test_a_revert_from_the_hedge_is_the_answer_and_is_not_retried(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    first, second = proxies
    async with patient_pool(first.url + KEY_PATH, second.url) as pool:
        assert await answer(pool, "eth_chainId", []) == hex(CHAIN_ID)
        await first.set_mode(FaultMode.DELAY, delay_ms=3000)
        with pytest.raises(ExecutionReverted):
            await asyncio.wait_for(
                pool.request("eth_call", [{"to": REVERTER, "data": "0x"}, "latest"]),
                ANSWER_BOUND_S,
            )
        assert pool.status()[0].hedges == 1
        assert second.methods == ["eth_chainId", "eth_call"]  # the copy answered: a revert
        await asyncio.sleep(0.1)  # nothing else goes out after the answer
        assert first.methods.count("eth_call") == 1
        assert second.methods == ["eth_chainId", "eth_call"]


async def test_a_request_that_is_not_a_read_is_never_hedged(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    first, second = proxies
    async with patient_pool(first.url + KEY_PATH, second.url, request_timeout_s=1.0) as pool:
        assert await answer(pool, "eth_chainId", []) == hex(CHAIN_ID)
        await first.set_mode(FaultMode.HANG)
        # web3_sha3 reads nothing, but it is not on the list of reads that may go out twice:
        # the pool waits for the timeout before trying the next endpoint.
        digest = await answer(pool, "web3_sha3", ["0x68656c6c6f"])
        assert digest.startswith("0x1c8aff95")  # keccak256("hello")
        slow = pool.status()[0]
        assert slow.hedges == 0
        assert "no answer within 1s" in (slow.last_error or "")
        await first.set_mode(FaultMode.PASS)


async def test_the_hedge_fails_over_past_an_endpoint_on_the_wrong_chain(
    anvil: str, proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    first, second = proxies
    await second.set_mode(FaultMode.WRONG_CHAIN, wrong_chain_id=0xBEEF)
    async with patient_pool(first.url + KEY_PATH, second.url, anvil) as pool:
        assert await answer(pool, "eth_chainId", []) == hex(CHAIN_ID)
        await first.set_mode(FaultMode.HANG)
        assert await answer(pool, "eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        slow, wrong, good = pool.status()
        assert slow.hedges == 2  # the copy to the wrong chain failed; the next one answered
        assert wrong.state is EndpointState.PARKED
        assert second.methods == ["eth_chainId"]  # never used for a read
        assert good.requests >= 2  # its chain id check and the copy
        await first.set_mode(FaultMode.PASS)


async def test_an_endpoint_failing_at_random_is_parked_by_its_error_rate(
    proxies: tuple[FaultProxy, FaultProxy], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chains.rpc_endpoint")
    first, second = proxies
    async with patient_pool(first.url + KEY_PATH, second.url) as pool:
        assert await answer(pool, "eth_chainId", []) == hex(CHAIN_ID)
        await first.set_mode(FaultMode.RANDOM, fault_rate=0.3, seed=3, hang_s=2.0)
        for _ in range(40):
            assert await answer(pool, "eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        await first.set_mode(FaultMode.PASS)
    assert sum(first.faults.values()) >= 3
    assert "reason=error_rate" in caplog.text, (first.faults, caplog.text)


async def test_breaker_inputs_reach_the_api_document_and_the_metrics(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    first, second = proxies
    async with patient_pool(first.url + KEY_PATH, second.url) as pool:
        assert await answer(pool, "eth_chainId", []) == hex(CHAIN_ID)
        await first.set_mode(FaultMode.HANG)
        assert await answer(pool, "eth_blockNumber", []) is not None
        await first.set_mode(FaultMode.PASS)
        statuses = pool.status()
    doc = endpoint_document(statuses[0])
    assert doc["hedges"] == 1
    assert doc["error_rate"] == pytest.approx(0.5)  # one good answer, one too slow
    assert doc["recent_requests"] == 2
    hedge_delay = doc["hedge_delay_ms"]
    assert isinstance(hedge_delay, float)
    assert HEDGE_MIN_DELAY_S * 1000 <= hedge_delay <= HEDGE_MAX_DELAY_S * 1000
    metrics = Metrics()
    metrics.observe_pool("a", statuses)
    text = metrics.render().decode()
    label = f'chain="a",endpoint="{statuses[0].url}"'
    assert f"crossmargin_rpc_hedges_total{{{label}}} 1.0" in text
    assert f"crossmargin_rpc_error_rate{{{label}}} 0.5" in text
