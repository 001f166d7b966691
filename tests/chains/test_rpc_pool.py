"""RpcPool against a real Anvil, with faults injected by ``tests.faultproxy`` in front of it.

The first URL of each pool goes through a ``FaultProxy`` (with a fake API key in its path); the
second is Anvil itself. Answers are compared with direct queries of the same node.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest

from chains.rpc import EndpointState, RpcPool
from chains.rpc_errors import (
    batch_results,
    classify_error,
    decode_reply,
    parse_retry_after,
    single_result,
)
from core.errors import (
    CallTooLarge,
    ChainIdMismatch,
    ConfigError,
    ExecutionReverted,
    JsonRpcError,
    NoHealthyEndpoint,
    RateLimited,
    RpcError,
    RpcTimeout,
    StateUnavailable,
)
from core.redaction import redact_url
from devnet import AnvilNode
from tests.faultproxy import FaultMode, FaultProxy, free_port
from tests.waitkit import eventually

CHAIN_ID = 1001
SECRET = "SECRETKEY0123456789abcdef"
KEY_PATH = f"/v2/{SECRET}"
DEV_ACCOUNT = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # Anvil account 0: 10,000 ETH
DEV_BALANCE = hex(10_000 * 10**18)
REVERTER = "0x00000000000000000000000000000000000000aa"  # code: revert(0, 0)
REVERTER_WITH_DATA = "0x00000000000000000000000000000000000000ab"  # reverts with uint256 42
LOOPER = "0x00000000000000000000000000000000000000ac"  # code: an endless loop

# Small breaker delays and timeouts so each fault scenario takes about a second.
FAST = {
    "request_timeout_s": 0.5,
    "breaker_failure_threshold": 2,
    "base_reactivation_delay_s": 0.5,
    "max_reactivation_delay_s": 1.0,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "max_retry_after_s": 5.0,
}


async def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    """A direct JSON-RPC call, bypassing the pool."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        payload = await resp.json()
    assert "result" in payload, payload
    return payload["result"]


@pytest.fixture(scope="module")
async def anvil() -> AsyncIterator[str]:
    """An Anvil node of our own (chain id 1001) with three test contracts; yields its URL."""
    async with AnvilNode(chain_id=CHAIN_ID) as node:
        await rpc(node.url, "anvil_setCode", [REVERTER, "0x60006000fd"])
        await rpc(node.url, "anvil_setCode", [REVERTER_WITH_DATA, "0x602a60005260206000fd"])
        await rpc(node.url, "anvil_setCode", [LOOPER, "0x5b600056"])
        yield node.url


@pytest.fixture
async def proxy(anvil: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(anvil) as p:
        yield p


def make_pool(*urls: str, **overrides: Any) -> RpcPool:
    return RpcPool(chain="a", chain_id=CHAIN_ID, urls=urls, **{**FAST, **overrides})


async def wait_until_usable(pool: RpcPool, index: int) -> None:
    await eventually(
        lambda: pool.status()[index].parked_remaining_s <= 0,
        what=f"endpoint {index} usable again",
        seen=lambda: pool.status()[index],
    )


# -- classification tables (pure) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "body_len", "expected"),
    [
        # Anvil 1.7.1 shapes, measured
        ({"code": 3, "message": "execution reverted", "data": "0x"}, 100, ExecutionReverted),
        ({"code": -32603, "message": "EVM error OutOfGas"}, 100, CallTooLarge),
        (
            {"code": -32003, "message": "Out of gas: gas required exceeds allowance: 30000000"},
            100,
            CallTooLarge,
        ),
        (
            {"code": -32000, "message": "intrinsic gas too high -- GasFloorMoreThanGasLimit"},
            100,
            CallTooLarge,
        ),
        ({"code": -32600, "message": "Invalid request"}, 2_097_153, CallTooLarge),
        ({"code": -32600, "message": "Invalid request"}, 100, JsonRpcError),
        ({"code": -32001, "message": "Resource not found"}, 100, StateUnavailable),
        (
            {"code": -32602, "message": "BlockOutOfRangeError: block height is 0 but requested"},
            100,
            StateUnavailable,
        ),
        ({"code": -32601, "message": "Method not found"}, 100, JsonRpcError),
        ({"code": -32602, "message": "invalid string length"}, 100, JsonRpcError),
        # other nodes and providers
        ({"code": -32000, "message": "execution reverted: x", "data": "0x"}, 9, ExecutionReverted),
        ({"code": -32015, "message": "VM execution error: revert"}, 100, ExecutionReverted),
        ({"code": -32000, "message": "header not found"}, 100, StateUnavailable),
        ({"code": -32000, "message": "missing trie node 0xab (path )"}, 100, StateUnavailable),
        ({"code": -32000, "message": "unknown block"}, 100, StateUnavailable),
        ({"code": -32005, "message": "daily request count exceeded"}, 100, RateLimited),
        ({"code": 429, "message": "exceeded its compute units capacity"}, 100, RateLimited),
        ({"code": -32005, "message": "query returned more than 10000 results"}, 100, CallTooLarge),
        ({"code": -32000, "message": "exceeds block gas limit"}, 100, CallTooLarge),
        ({"code": -32000, "message": "gas limit exceeded"}, 100, CallTooLarge),
        ({"code": -32000, "message": "execution aborted (timeout = 5s)"}, 100, CallTooLarge),
        ({"code": -32000, "message": "nonce too low"}, 100, JsonRpcError),
        ("not an object", 100, RpcError),
    ],
)  # fmt: skip
def test_classify_error(error: object, body_len: int, expected: type[Exception]) -> None:
    assert type(classify_error("http://node/***", error, body_len=body_len)) is expected


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "expected"),
    [
        (200, b"<html>502</html>", None, RpcError),
        (500, b'{"jsonrpc":"2.0","id":1,"result":"0x1"}', None, RpcError),
        (429, b"slow down", "3", RateLimited),
        (413, b"", None, CallTooLarge),
        (401, b'{"id":1,"error":{"code":-32002,"message":"bad key"}}', None, RpcError),
        (400, b'{"id":1,"error":{"code":3,"message":"reverted"}}', None, ExecutionReverted),
        (403, b"forbidden", None, RpcError),
        (200, b'{"id":1,"error":{"code":-32005,"message":"limit exceeded"}}', "3", RateLimited),
    ],
)  # fmt: skip
def test_decode_reply_http_faults(
    status: int, body: bytes, retry_after: str | None, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as info:
        decode_reply("http://node/***", status, body, retry_after, 100)
    assert type(info.value) is expected
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after_s == 3.0


def test_response_ids_are_checked() -> None:
    assert single_result("n", {"jsonrpc": "2.0", "id": 7, "result": "0x1"}, 7, 10) == "0x1"
    for payload in ({"id": 8, "result": "0x1"}, {"result": "0x1"}, {"id": 7}, ["x"]):
        with pytest.raises(RpcError) as info:
            single_result("n", payload, 7, 10)
        assert type(info.value) is RpcError
    items = [{"id": 11, "result": "0xb"}, {"id": 10, "error": {"code": 3, "message": "revert"}}]
    out = batch_results("n", items, 10, 2, 10)
    assert isinstance(out[0], ExecutionReverted)
    assert out[1] == "0xb"
    with pytest.raises(RpcError):
        batch_results("n", items[:1], 10, 2, 10)  # an item missing


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 0.5 ", now=now) == 0.5
    assert parse_retry_after("-3", now=now) == 0.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_config_is_validated_without_showing_keys() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        RpcPool(chain="a", chain_id=1, urls=[])
    with pytest.raises(ConfigError) as info:
        RpcPool(chain="a", chain_id=1, urls=[f"ws://node{KEY_PATH}"])
    assert SECRET not in str(info.value)
    assert "ws://node/…#" in str(info.value)


# -- against Anvil ----------------------------------------------------------------------------


async def test_reads_match_direct_queries_and_batch_keeps_order(anvil: str) -> None:
    async with make_pool(anvil) as pool:
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        assert await pool.request("eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        raw = await pool.request_raw("eth_getBalance", f'["{DEV_ACCOUNT}","latest"]')
        assert raw == DEV_BALANCE
        head = await rpc(anvil, "eth_blockNumber")
        results = await pool.batch(
            [
                ("eth_blockNumber", []),
                ("eth_call", [{"to": REVERTER, "data": "0x"}, "latest"]),
                ("eth_getBalance", f'["{DEV_ACCOUNT}","latest"]'),
                ("eth_noSuchMethod", []),
            ]
        )
        assert results[0] == head
        assert isinstance(results[1], ExecutionReverted)
        assert results[2] == DEV_BALANCE
        assert isinstance(results[3], JsonRpcError)
        assert results[3].code == -32601
        assert await pool.batch([]) == []
        (status,) = pool.status()
        assert status.state is EndpointState.HEALTHY
        assert status.chain_id_verified
        assert status.requests == 5  # chain id check + 3 requests + 1 batch
        assert status.latency_ewma_ms is not None
        assert 0 < status.latency_ewma_ms < 1000


async def test_start_and_close_are_idempotent(anvil: str) -> None:
    pool = make_pool(anvil)
    with pytest.raises(RuntimeError):
        await pool.request("eth_chainId")
    await pool.start()
    await pool.start()
    assert await pool.request("eth_chainId") == hex(CHAIN_ID)
    await pool.close()
    await pool.close()
    with pytest.raises(RuntimeError):
        await pool.request("eth_chainId")


@pytest.mark.parametrize(
    "mode",
    [FaultMode.REFUSE, FaultMode.HANG, FaultMode.HTTP500, FaultMode.GARBAGE, FaultMode.DELAY],
)
async def test_fault_fails_over_then_traffic_returns(
    anvil: str, proxy: FaultProxy, mode: FaultMode
) -> None:
    async with make_pool(proxy.url + KEY_PATH, anvil) as pool:
        assert await pool.request("eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        assert proxy.methods == ["eth_chainId", "eth_getBalance"]

        await proxy.set_mode(mode, delay_ms=1500)  # DELAY: three times the request timeout
        for _ in range(3):
            assert await pool.request("eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
            assert await pool.request("eth_blockNumber") == await rpc(anvil, "eth_blockNumber")
        first, second = pool.status()
        assert first.state is EndpointState.PARKED
        assert first.parked_remaining_s > 0.2
        assert first.last_error is not None
        assert second.state is EndpointState.HEALTHY
        assert pool.active_endpoint == anvil
        seen = proxy.requests
        for _ in range(5):  # parked: not even tried
            assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        assert proxy.requests == seen

        await proxy.set_mode(FaultMode.PASS)
        await wait_until_usable(pool, 0)
        seen = proxy.requests
        assert await pool.request("eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        assert proxy.requests == seen + 2  # chain id re-checked, then the request
        assert proxy.methods[-2:] == ["eth_chainId", "eth_getBalance"]
        first = pool.status()[0]
        assert first.state is EndpointState.HEALTHY
        assert first.chain_id_verified
        assert first.consecutive_failures == 0
        assert pool.active_endpoint == redact_url(proxy.url + KEY_PATH)


async def test_slow_endpoint_within_timeout_stays_in_use(anvil: str, proxy: FaultProxy) -> None:
    await proxy.set_mode(FaultMode.DELAY, delay_ms=100)
    async with make_pool(proxy.url + KEY_PATH, anvil) as pool:
        assert await pool.request("eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        assert proxy.requests == 2
        assert pool.status()[0].state is EndpointState.HEALTHY
        assert (pool.status()[0].latency_ewma_ms or 0) >= 100


async def test_concurrent_requests_share_one_chain_id_check_and_survive_an_outage(
    anvil: str, proxy: FaultProxy
) -> None:
    # Parked for longer than the test can take even on a loaded machine: a re-activation
    # probe of the hung URL would be a request the assertion below does not count on.
    park = {"base_reactivation_delay_s": 60.0, "max_reactivation_delay_s": 60.0}
    async with make_pool(proxy.url + KEY_PATH, anvil, **park) as pool:
        results = await asyncio.gather(*(pool.request("eth_chainId") for _ in range(20)))
        assert results == [hex(CHAIN_ID)] * 20
        assert proxy.methods.count("eth_chainId") == 21  # one check + 20 requests

        await proxy.set_mode(FaultMode.HANG)
        asked = proxy.requests
        balances = await asyncio.gather(
            *(pool.request("eth_getBalance", [DEV_ACCOUNT, "latest"]) for _ in range(20))
        )
        assert balances == [DEV_BALANCE] * 20
        # One timeout each at most, then the fallback: no request waits on the hung URL twice.
        # (The outage's cost in time: bench/deadlines.py.)
        assert proxy.requests - asked <= 20
        assert pool.status()[0].state is EndpointState.PARKED


@pytest.mark.parametrize("retry_after", ["1", "http-date"])
async def test_retry_after_is_honoured(anvil: str, proxy: FaultProxy, retry_after: str) -> None:
    async with make_pool(proxy.url + KEY_PATH, anvil) as pool:
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)  # verified before the 429s
        header = retry_after
        if retry_after == "http-date":
            header = formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1 < wait ≤ 2
        await proxy.set_mode(FaultMode.RATE_LIMIT, retry_after=header)
        seen = proxy.requests
        assert await pool.request("eth_blockNumber") == await rpc(anvil, "eth_blockNumber")
        assert proxy.requests == seen + 1
        first = pool.status()[0]
        assert first.state is EndpointState.RATE_LIMITED
        assert 0.5 < first.parked_remaining_s <= 2.0
        assert first.consecutive_failures == 0  # a rate limit is not a breaker failure
        deadline = time.monotonic() + first.parked_remaining_s - 0.1
        while time.monotonic() < deadline:
            assert await pool.request("eth_chainId") == hex(CHAIN_ID)
            await asyncio.sleep(0.05)
        assert proxy.requests == seen + 1  # not hit again before Retry-After

        await proxy.set_mode(FaultMode.PASS)
        await wait_until_usable(pool, 0)
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        assert proxy.requests == seen + 2
        assert pool.status()[0].state is EndpointState.HEALTHY


async def test_retry_after_is_capped(anvil: str, proxy: FaultProxy) -> None:
    async with make_pool(proxy.url + KEY_PATH, anvil, max_retry_after_s=0.3) as pool:
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        await proxy.set_mode(FaultMode.RATE_LIMIT, retry_after="3600")
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        assert 0 < pool.status()[0].parked_remaining_s <= 0.3


async def test_rate_limited_alone_raises_rate_limited_with_its_delay(proxy: FaultProxy) -> None:
    async with make_pool(proxy.url + KEY_PATH) as pool:
        await proxy.set_mode(FaultMode.RATE_LIMIT, retry_after="2")
        with pytest.raises(RateLimited) as info:
            await pool.request("eth_chainId")
        assert info.value.retry_after_s == 2.0
        assert proxy.requests == 1


async def test_revert_is_raised_after_exactly_one_request(anvil: str, proxy: FaultProxy) -> None:
    async with make_pool(proxy.url + KEY_PATH, anvil) as pool:
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        seen = proxy.requests
        with pytest.raises(ExecutionReverted) as info:
            await pool.request("eth_call", [{"to": REVERTER, "data": "0x"}, "latest"])
        assert info.value.data == "0x"
        assert proxy.requests == seen + 1
        with pytest.raises(ExecutionReverted) as info:
            await pool.request("eth_call", [{"to": REVERTER_WITH_DATA, "data": "0x"}, "latest"])
        assert info.value.data == "0x" + f"{42:064x}"
        assert "\x00" not in str(info.value)
        assert proxy.requests == seen + 2
        first = pool.status()[0]
        assert (first.state, first.consecutive_failures, first.errors) == (
            EndpointState.HEALTHY, 0, 0,
        )  # fmt: skip


async def test_gas_cap_and_oversized_body_raise_call_too_large_without_retry(
    anvil: str, proxy: FaultProxy
) -> None:
    async with FaultProxy(anvil) as spare, make_pool(proxy.url + KEY_PATH, spare.url) as pool:
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        seen = proxy.requests
        with pytest.raises(CallTooLarge, match="OutOfGas"):
            await pool.request("eth_call", [{"to": LOOPER, "data": "0x"}, "latest"])
        assert proxy.requests == seen + 1

        big = "0x" + "ab" * 1_250_000  # a 2.5 MB body: over Anvil's 2 MiB request limit
        with pytest.raises(CallTooLarge):
            await pool.request("eth_call", [{"to": REVERTER, "data": big}, "latest"])
        assert proxy.requests == seen + 2
        assert spare.requests == 0  # never retried on the other endpoint
        assert pool.status()[0].consecutive_failures == 0

    async with make_pool(anvil) as direct:  # no proxy: Anvil's own answer (or dropped pipe)
        with pytest.raises(CallTooLarge):
            await direct.request("eth_call", [{"to": REVERTER, "data": big}, "latest"])
        assert direct.status()[0].requests == 2  # chain id check + the one call


async def test_state_unavailable_is_retried_elsewhere_but_not_counted(
    anvil: str, proxy: FaultProxy
) -> None:
    async with make_pool(proxy.url + KEY_PATH, anvil, max_attempts=4) as pool:
        assert await pool.request("eth_chainId") == hex(CHAIN_ID)
        seen = proxy.requests
        with pytest.raises(StateUnavailable):
            await pool.request("eth_getBalance", [DEV_ACCOUNT, "0x100000"])  # above the head
        assert proxy.requests == seen + 2  # attempts 1 and 3; 2 and 4 went to the other one
        assert [s.consecutive_failures for s in pool.status()] == [0, 0]


async def test_wrong_chain_endpoint_is_never_used_for_reads(anvil: str, proxy: FaultProxy) -> None:
    await proxy.set_mode(FaultMode.WRONG_CHAIN, wrong_chain_id=0xDEAD)
    async with make_pool(proxy.url + KEY_PATH, anvil) as pool:
        for _ in range(5):
            assert await pool.request("eth_getBalance", [DEV_ACCOUNT, "latest"]) == DEV_BALANCE
        assert proxy.methods == ["eth_chainId"]
        first = pool.status()[0]
        assert first.state is EndpointState.PARKED
        assert not first.chain_id_verified
        assert first.last_error is not None
        assert "chain id 57005, expected 1001" in first.last_error
        await wait_until_usable(pool, 0)  # the longest delay (1 s here), then checked again
        assert await pool.request("eth_blockNumber") == await rpc(anvil, "eth_blockNumber")
        assert proxy.methods == ["eth_chainId", "eth_chainId"]


async def test_all_endpoints_on_the_wrong_chain_raise_chain_id_mismatch(
    anvil: str, proxy: FaultProxy
) -> None:
    await proxy.set_mode(FaultMode.WRONG_CHAIN, wrong_chain_id=5)
    async with make_pool(proxy.url + KEY_PATH) as pool:
        for _ in range(2):  # checked, then parked: still the mismatch, not "no endpoint"
            with pytest.raises(ChainIdMismatch) as info:
                await pool.request("eth_blockNumber")
            assert (info.value.expected, info.value.actual) == (CHAIN_ID, 5)
    async with RpcPool(chain="a", chain_id=999, urls=[anvil]) as pool:
        with pytest.raises(ChainIdMismatch):
            await pool.request("eth_blockNumber")


async def test_all_endpoints_down_fail_fast_with_the_last_error() -> None:
    dead = [f"http://127.0.0.1:{free_port()}{KEY_PATH}" for _ in range(2)]
    async with make_pool(*dead) as pool:
        with pytest.raises(RpcError) as info:
            await pool.request("eth_blockNumber")
        assert type(info.value) is RpcError
        assert "connection failed" in str(info.value)
        assert [s.state for s in pool.status()] == [EndpointState.PARKED] * 2
        # Fast: each URL is tried until its breaker parks it (2 failures), no further retry
        # loop (the time it takes: bench/deadlines.py).
        attempts = [s.requests for s in pool.status()]
        assert attempts == [2, 2]

        with pytest.raises(NoHealthyEndpoint):
            await pool.request("eth_blockNumber")
        assert [s.requests for s in pool.status()] == attempts  # no I/O at all


async def test_all_endpoints_hanging_raise_rpc_timeout_in_bounded_time(anvil: str) -> None:
    async with FaultProxy(anvil) as p1, FaultProxy(anvil) as p2:
        await p1.set_mode(FaultMode.HANG)
        await p2.set_mode(FaultMode.HANG)
        async with make_pool(p1.url, p2.url, request_timeout_s=0.3, max_attempts=3) as pool:
            with pytest.raises(RpcTimeout):
                await pool.request("eth_blockNumber")
            # Bounded: three attempts (one 0.3 s timeout each, at most one hedged copy each),
            # then the error; the duration is measured in bench/deadlines.py.
            assert 3 <= p1.requests + p2.requests <= 2 * 3


async def test_keys_never_shown(
    anvil: str, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{free_port()}{KEY_PATH}"
    shown: list[str] = []
    async with make_pool(proxy.url + KEY_PATH, dead, f"{anvil}?apikey={SECRET}") as pool:
        for mode in (FaultMode.GARBAGE, FaultMode.HTTP500, FaultMode.WRONG_CHAIN):
            await proxy.set_mode(mode)
            await wait_until_usable(pool, 0)
            await wait_until_usable(pool, 1)
            assert await pool.request("eth_chainId") == hex(CHAIN_ID)
            shown += [repr(pool), str(pool.status()), str(pool.active_endpoint)]
        assert pool.active_endpoint == redact_url(f"{anvil}?apikey={SECRET}")
        assert pool.active_endpoint.startswith(f"{anvil}/…#")

    errors: list[Exception] = []
    for mode in (FaultMode.RATE_LIMIT, FaultMode.HANG, FaultMode.REFUSE, FaultMode.GARBAGE):
        await proxy.set_mode(mode)
        async with make_pool(proxy.url + KEY_PATH, request_timeout_s=0.2) as lonely:
            with pytest.raises(RpcError) as info:
                await lonely.request("eth_chainId")
            errors.append(info.value)
            shown += [repr(lonely), str(lonely.status())]
    async with make_pool(dead) as lonely:
        for _ in range(2):  # connection refused, then parked: NoHealthyEndpoint
            with pytest.raises((RpcError, NoHealthyEndpoint)) as down:
                await lonely.request("eth_chainId")
            errors.append(down.value)
    await proxy.set_mode(FaultMode.PASS)

    assert [type(e) for e in errors] == [
        RateLimited, RpcTimeout, RpcError, RpcError, RpcError, NoHealthyEndpoint,
    ]  # fmt: skip
    texts = shown + [str(e) for e in errors]
    texts += ["".join(traceback.format_exception(e)) for e in errors]
    assert "rpc_endpoint_parked" in caplog.text
    assert f"{proxy.url}/…#" in caplog.text
    for text in [*texts, caplog.text]:
        assert SECRET not in text
