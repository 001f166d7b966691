"""The one error hierarchy of crossmargin.

Callers catch by meaning: ``RetryableError`` for faults that may go away on another try or
another endpoint, ``NonRetryableError`` for answers that will not change (a revert, a wrong
chain id, a bad config). Messages are built in the constructors so every raise site reads the
same and nothing secret (RPC URLs carry API keys) is formatted in by accident.
"""

from __future__ import annotations


class CrossmarginError(Exception):
    """Base of every error crossmargin raises on purpose."""


class RetryableError(CrossmarginError):
    """A fault that may succeed on retry or on another endpoint."""


class NonRetryableError(CrossmarginError):
    """A fault that will not change by retrying."""


class ConfigError(NonRetryableError):
    """The configuration is invalid; ``key`` names the offending field (dotted path)."""

    def __init__(self, key: str, problem: str, value: object = None) -> None:
        self.key = key
        self.problem = problem
        self.value = value
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"config error at {key}: {problem}{shown}")


class RpcError(RetryableError):
    """A transport or server fault talking to one RPC endpoint (timeouts, 5xx, garbage)."""

    def __init__(self, endpoint: str, problem: str) -> None:
        self.endpoint = endpoint
        self.problem = problem
        super().__init__(f"rpc {endpoint}: {problem}")


class RateLimited(RpcError):
    """The endpoint answered 429 (or a rate-limit JSON-RPC error); honour ``retry_after_s``."""

    def __init__(self, endpoint: str, retry_after_s: float | None) -> None:
        self.retry_after_s = retry_after_s
        after = "" if retry_after_s is None else f", retry after {retry_after_s:g}s"
        super().__init__(endpoint, f"rate limited{after}")


class RpcTimeout(RpcError):
    """The endpoint did not answer within the request timeout."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(endpoint, f"no answer within {timeout_s:g}s")


class StateUnavailable(RpcError):
    """The node lacks the requested block or state (header not found, unknown block, missing
    trie node): it lags behind or has pruned it. Another endpoint or a later try may have it,
    and the endpoint itself is working, so its breaker does not count this.
    """

    def __init__(self, endpoint: str, code: int, message: str) -> None:
        self.code = code
        self.rpc_message = message
        super().__init__(endpoint, f"state unavailable: error {code}: {message}")


class CallTooLarge(NonRetryableError):
    """The request or its execution exceeds a node limit (body size, gas cap, response size).

    Retrying the same payload cannot help; the caller must split it (chunked reads halve).
    """

    def __init__(self, endpoint: str, problem: str) -> None:
        self.endpoint = endpoint
        self.problem = problem
        super().__init__(f"rpc {endpoint}: call too large: {problem}")


class NoHealthyEndpoint(RetryableError):
    """Every endpoint of a chain is failing or parked by its breaker."""

    def __init__(self, chain: str, last_problem: str | None = None) -> None:
        self.chain = chain
        detail = "" if last_problem is None else f"; last error: {last_problem}"
        super().__init__(f"chain {chain}: no healthy RPC endpoint{detail}")


class ExecutionReverted(NonRetryableError):
    """The node executed the call and it reverted; retrying cannot help."""

    def __init__(self, endpoint: str, message: str, data: str | None = None) -> None:
        self.endpoint = endpoint
        self.data = data
        super().__init__(f"rpc {endpoint}: execution reverted: {message}")


class JsonRpcError(NonRetryableError):
    """The node answered with a JSON-RPC error that is neither a revert nor transient."""

    def __init__(self, endpoint: str, code: int, message: str) -> None:
        self.endpoint = endpoint
        self.code = code
        self.rpc_message = message
        super().__init__(f"rpc {endpoint}: error {code}: {message}")


class ChainIdMismatch(NonRetryableError):
    """An endpoint serves a different chain than configured."""

    def __init__(self, endpoint: str, expected: int, actual: int) -> None:
        self.endpoint = endpoint
        self.expected = expected
        self.actual = actual
        super().__init__(f"rpc {endpoint}: chain id {actual}, expected {expected}")


class DecimalsMismatch(NonRetryableError):
    """A token's on-chain decimals differ from the configured value."""

    def __init__(self, chain: str, token: str, configured: int, on_chain: int) -> None:
        self.chain = chain
        self.token = token
        super().__init__(
            f"chain {chain} token {token}: config says decimals={configured}, "
            f"the chain says {on_chain}"
        )


class OracleStateInvalid(NonRetryableError):
    """A stored oracle state document has an unknown version or shape (see ``oracles.resume``);
    the asset starts fresh instead."""
