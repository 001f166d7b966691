"""What an RPC endpoint answered, classified into the crossmargin error hierarchy.

Pure functions (no I/O) used by ``chains.rpc.RpcPool``: decoding an HTTP reply into a JSON-RPC
result, mapping JSON-RPC error objects and transport exceptions onto ``core.errors``, and
parsing ``Retry-After``. ``endpoint`` arguments are always the *redacted* URL.

Shapes measured on Anvil 1.7.1 (all HTTP 200, ``content-type: application/json``):

- revert: ``{"code":3,"message":"execution reverted","data":"0x"}``; with revert data the message
  is ``"execution reverted: <data as text>"`` and ``data`` is the hex payload.
- eth_call over the gas cap (a loop without an explicit ``gas``; the cap is the 30M block gas
  limit): ``{"code":-32603,"message":"EVM error OutOfGas"}``. An explicit ``gas`` above the cap
  is *not* capped by Anvil: the call runs with it (an endless loop with ``gas=2**64-1`` keeps
  the node busy for minutes), so callers must not send huge ``gas`` values.
- eth_estimateGas over the cap: ``{"code":-32003,"message":"Out of gas: gas required exceeds
  allowance: 30000000"}``.
- calldata whose intrinsic gas floor exceeds the cap (~1 MB of non-zero bytes):
  ``{"code":-32000,"message":"intrinsic gas too high -- GasFloorMoreThanGasLimit"}``.
- request body above 2 MiB (2,097,152 bytes accepted, one byte more refused): still HTTP 200,
  ``{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}`` — the
  same answer as for malformed JSON — or, when the node answers before the whole body is
  written, a broken pipe / "Can not write request body" on the client side.
- unknown block hash: ``{"code":-32001,"message":"Resource not found"}``; a block number above
  the head: ``{"code":-32602,"message":"BlockOutOfRangeError: block height is 0 but requested
  was 4096"}``. Both are what a lagging node says, so they are retryable elsewhere.
- unknown method ``-32601 "Method not found"``; bad params ``-32602 "invalid string length"``.
"""

from __future__ import annotations

import json
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

from core.errors import (
    CallTooLarge,
    CrossmarginError,
    ExecutionReverted,
    JsonRpcError,
    RateLimited,
    RpcError,
    StateUnavailable,
)

# A refused request body at least this large is blamed on its size: Anvil answers an oversized
# body exactly like a malformed one (-32600, id null) or drops the connection mid-write.
LARGE_BODY_BYTES = 1024 * 1024

# JSON-RPC codes providers use for rate limiting: -32005 (Infura and geth-based "limit
# exceeded"), -32029 and 429 (Alchemy/Chainstack-style bodies).
RATE_LIMIT_CODES = frozenset({-32005, -32029, 429})

# Lower-cased message fragments; checked in this order: revert, too large, rate limit, state.
_TOO_LARGE = (
    "out of gas",  # geth "out of gas"; Anvil estimateGas "Out of gas: gas required exceeds …"
    "outofgas",  # Anvil eth_call: "EVM error OutOfGas"
    "memoryoog",  # Anvil eth_call: "EVM error MemoryOOG" (aggregate3 of ~4,600 cold reads)
    "gas required exceeds",
    "intrinsic gas too high",  # Anvil: calldata floor above the gas cap
    "gas limit",  # "exceeds block gas limit", "gas limit reached", "gas limit exceeded"
    "execution aborted",  # geth: eth_call ran past the node's EVM timeout
    "larger than",  # "response size is larger than 150MB limit"
    "too large",  # "request too large", "response too large", "batch too large"
    "request entity",
    "body limit",
    "size limit",
    "size exceeded",  # geth "response size exceeded"
    "returned more than",  # Infura/geth eth_getLogs "query returned more than 10000 results"
    "block range",  # eth_getLogs range caps
)
_RATE_LIMIT = ("rate limit", "too many requests", "request limit", "limit exceeded", "capacity")
_STATE_UNAVAILABLE = (
    "header not found",  # geth
    "unknown block",  # erigon, nethermind
    "missing trie node",  # pruned state on a full node
    "block not found",
    "resource not found",  # Anvil -32001 for an unknown block hash
    "blockoutofrange",  # Anvil -32602 for a block above its head
)


def classify_error(endpoint: str, error: object, *, body_len: int) -> CrossmarginError:
    """Map one JSON-RPC ``error`` object to the exception a caller should see."""
    if not isinstance(error, dict):
        return RpcError(endpoint, "malformed JSON-RPC error object")
    code = error.get("code")
    raw_message = error.get("message")
    message = raw_message if isinstance(raw_message, str) else ""
    if not isinstance(code, int):
        return RpcError(endpoint, "malformed JSON-RPC error object")
    low = message.lower()
    if code == 3 or "revert" in low:
        data = error.get("data")
        return ExecutionReverted(
            endpoint, _printable(message), data if isinstance(data, str) else None
        )
    if any(p in low for p in _TOO_LARGE):
        return CallTooLarge(endpoint, f"error {code}: {_printable(message)}")
    if code == -32600 and body_len >= LARGE_BODY_BYTES:
        return CallTooLarge(endpoint, f"node refused a {body_len}-byte request: {message}")
    if code in RATE_LIMIT_CODES or any(p in low for p in _RATE_LIMIT):
        return RateLimited(endpoint, None)
    if any(p in low for p in _STATE_UNAVAILABLE):
        return StateUnavailable(endpoint, code, _printable(message))
    return JsonRpcError(endpoint, code, _printable(message))


def decode_reply(
    endpoint: str, status: int, raw: bytes, retry_after: str | None, body_len: int
) -> Any:
    """Turn an HTTP reply into parsed JSON, raising for HTTP-level faults.

    429 → ``RateLimited`` (with ``Retry-After``), 413 → ``CallTooLarge``, 5xx and bodies that
    are not JSON → ``RpcError``. Other 4xx replies count as JSON-RPC answers only for reverts and
    node limits (some providers send those with 400); any other error there is the endpoint's
    fault (a bad key, a wrong path) → ``RpcError``. A JSON-RPC rate-limit error keeps the
    ``Retry-After`` header.
    """
    if status == 429:
        raise RateLimited(endpoint, parse_retry_after(retry_after))
    if status == 413:
        raise CallTooLarge(endpoint, f"HTTP 413 for a {body_len}-byte request")
    if status >= 500:
        raise RpcError(endpoint, f"HTTP {status}")
    try:
        payload = json.loads(raw)
    except ValueError:
        problem = f"HTTP {status}" if status != 200 else f"malformed JSON body ({len(raw)} bytes)"
        raise RpcError(endpoint, problem) from None
    rare = status != 200 or retry_after is not None  # what needs the status or the header
    if rare and isinstance(payload, dict) and "error" in payload:
        err = classify_error(endpoint, payload["error"], body_len=body_len)
        if isinstance(err, RateLimited):  # a JSON-RPC rate-limit error with Retry-After
            raise RateLimited(endpoint, parse_retry_after(retry_after))
        if status != 200 and type(err) is JsonRpcError:  # e.g. 401 "invalid key"
            raise RpcError(endpoint, f"HTTP {status}: error {err.code}: {err.rpc_message}")
        if status != 200:
            raise err
    return payload


def single_result(endpoint: str, payload: Any, request_id: int, body_len: int) -> Any:
    """The ``result`` of a single JSON-RPC response, or the classified error raised."""
    if not isinstance(payload, dict):
        raise RpcError(endpoint, "response is not a JSON-RPC object")
    rid = payload.get("id")
    if "error" in payload:
        if rid == request_id or rid is None:
            raise classify_error(endpoint, payload["error"], body_len=body_len)
    elif rid == request_id and "result" in payload:
        return payload["result"]
    raise RpcError(endpoint, f"response id {rid!r} does not match request id {request_id}")


def batch_results(
    endpoint: str, payload: Any, first_id: int, count: int, body_len: int
) -> list[Any]:
    """Results of a batch in request order; per-item errors become exception objects."""
    if isinstance(payload, dict) and "error" in payload and payload.get("id") is None:
        raise classify_error(endpoint, payload["error"], body_len=body_len)  # whole batch refused
    if not isinstance(payload, list):
        raise RpcError(endpoint, "batch response is not a JSON array")
    out: list[Any] = [None] * count
    seen = 0
    for item in payload:
        rid = item.get("id") if isinstance(item, dict) else None
        if not isinstance(rid, int) or not first_id <= rid < first_id + count:
            raise RpcError(endpoint, f"batch response has unexpected id {rid!r}")
        if "error" in item:
            out[rid - first_id] = classify_error(endpoint, item["error"], body_len=body_len)
        elif "result" in item:
            out[rid - first_id] = item["result"]
        else:
            raise RpcError(endpoint, "batch item has neither result nor error")
        seen += 1
    if seen != count:
        raise RpcError(endpoint, f"batch response has {seen} items for {count} calls")
    return out


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), ≥ 0."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _printable(message: str) -> str:
    # Revert messages carry the revert data decoded as text: NULs and control bytes included.
    return "".join(ch for ch in message if ch.isprintable()).strip()[:300]
