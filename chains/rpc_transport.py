"""One endpoint's transport for ``chains.rpc.RpcPool``: the request envelope, the POST of a
body with its faults turned into crossmargin errors, and the chain id check before first use.

URLs carry API keys: aiohttp's exception messages embed the raw URL, so errors are rebuilt from
the failure kind and only the endpoint's redacted URL (``RpcEndpoint.shown``) is ever shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from chains.rpc_endpoint import RpcEndpoint
from chains.rpc_errors import LARGE_BODY_BYTES, decode_reply, single_result
from core.errors import (
    CallTooLarge,
    ChainIdMismatch,
    CrossmarginError,
    ExecutionReverted,
    JsonRpcError,
    RpcError,
    RpcTimeout,
    StateUnavailable,
)
from core.transport import describe_transport_error


def envelope(rid: int, method: str, params_json: str) -> str:
    """One JSON-RPC request object around already serialised params."""
    return f'{{"jsonrpc":"2.0","id":{rid},"method":{json.dumps(method)},"params":{params_json}}}'


async def post(ep: RpcEndpoint, body: bytes, *, chain: str, timeout_s: float) -> Any:
    """POST one JSON-RPC body to ``ep`` and decode the reply; transport faults become
    crossmargin errors that show only the endpoint's redacted URL."""
    session = ep.session
    if session is None:
        raise RuntimeError(f"RpcPool for chain {chain} is closed")
    ep.requests += 1
    start = time.monotonic()
    # aiohttp's exception messages embed the raw URL (with its key): errors are rebuilt from
    # the failure kind and chained ``from None`` so tracebacks cannot leak it either.
    try:
        async with session.post(ep.url, data=body) as resp:
            raw = await resp.read()
            status = resp.status
            retry_after = resp.headers.get("Retry-After")
    except TimeoutError:
        raise RpcTimeout(ep.shown, timeout_s) from None
    except aiohttp.ClientError as exc:
        if (
            len(body) >= LARGE_BODY_BYTES
            and isinstance(exc, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError)
            and not isinstance(exc, aiohttp.ClientConnectorError)
        ):
            # Anvil (and nginx-style limits) may answer and close while a body over its
            # limit is still being written: the client sees a broken pipe, not the answer.
            problem = f"connection dropped while sending a {len(body)}-byte request"
            raise CallTooLarge(ep.shown, problem) from None
        raise RpcError(ep.shown, describe_transport_error(exc)) from None
    ep.record_latency((time.monotonic() - start) * 1000.0)
    return decode_reply(ep.shown, status, raw, retry_after, len(body))


async def check_chain_id(
    ep: RpcEndpoint,
    chain_id: int,
    *,
    rid: int,
    post: Callable[[RpcEndpoint, bytes], Awaitable[Any]],
) -> None:
    """Ask ``ep`` for its chain id (``eth_chainId``, request id ``rid``, sent with ``post``);
    a wrong or unreadable answer is recorded on the endpoint (a mismatch parks it for the
    longest delay) and raised."""
    body = envelope(rid, "eth_chainId", "[]").encode()
    try:
        result = single_result(ep.shown, await post(ep, body), rid, len(body))
        actual = int(result, 16) if isinstance(result, str) else None
        if actual is None:
            raise RpcError(ep.shown, f"eth_chainId returned {type(result).__name__}")
    except ValueError:
        err: CrossmarginError = RpcError(ep.shown, "eth_chainId returned a non-hex string")
        ep.record_error(err)
        raise err from None
    except (ExecutionReverted, JsonRpcError, CallTooLarge, StateUnavailable) as exc:
        # An endpoint that cannot say its chain id is as unusable as an unreachable one.
        err = RpcError(ep.shown, f"eth_chainId failed: {type(exc).__name__}")
        ep.record_error(err)
        raise err from None
    except CrossmarginError as exc:
        ep.record_error(exc)
        raise
    if actual != chain_id:
        mismatch = ChainIdMismatch(ep.shown, chain_id, actual)
        ep.record_error(mismatch)  # parks it for the longest delay
        raise mismatch
    ep.mismatch = None
    ep.chain_id_verified = True
