"""Describing an HTTP transport failure without its URL: aiohttp's own messages embed the full
request URL (and with it any API key), so only the kind of failure and the OS error text are
ever shown. RPC endpoints, HTTP price sources and the ``check`` probes all use this."""

from __future__ import annotations

import aiohttp


def describe_transport_error(exc: BaseException) -> str:
    """A short description of an aiohttp failure that never includes the URL."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated response body"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection error ({exc.strerror or 'write failed'})"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    return type(exc).__name__
