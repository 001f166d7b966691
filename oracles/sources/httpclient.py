"""One shared aiohttp session for every HTTP price source, returning parsed JSON or a fault.

Everything that can go wrong with an HTTP price API becomes a ``SourceFault``:
- no answer in time, connection refused/reset, a non-200 status → ``FETCH_FAILED``;
- a body that is not JSON (an HTML error page, garbage) or is too large → ``MALFORMED``.

Numbers are parsed as ``Decimal`` (``parse_float``), so a JSON ``3000.12`` is the exact decimal
the exchange sent. URLs may carry API keys (in the path or query): only ``redact_url`` forms
appear in fault details, and aiohttp's own exception messages (which embed the URL) are never
shown. Request headers (where keys often live) are never shown at all.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from core.lifecycle import AsyncResource
from core.redaction import redact_url, scrub
from core.transport import describe_transport_error
from oracles.model import DropReason
from oracles.sources.base import SourceFault

DEFAULT_MAX_CONNECTIONS = 64  # concurrent HTTP connections over all price sources
MAX_RESPONSE_BYTES = 1 << 20  # a price answer is a few hundred bytes; refuse megabytes
KEEPALIVE_TIMEOUT_S = 30.0  # idle keep-alive connections are closed after this
READ_CHUNK_BYTES = 64 * 1024
SNIPPET_CHARS = 40  # how much of a non-JSON body a fault detail shows
DATE_CACHE_SIZE = 256  # parsed HTTP Date headers kept (parsing one costs ~40 µs)


@dataclass(frozen=True, slots=True)
class JsonReply:
    """A parsed JSON answer and the clocks around it."""

    data: Any
    server_time: float | None  # the HTTP ``Date`` header (the server's clock, 1 s resolution)
    received_at: float  # our clock when the answer arrived


class JsonHttpClient(AsyncResource):
    """GETs JSON for the HTTP price sources over one keep-alive session.

    Use as ``async with JsonHttpClient() as client`` (or ``start``/``close``, idempotent).
    ``max_connections`` bounds the connections open at once across all hosts.
    """

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if max_connections < 1 or max_response_bytes < 1:
            raise ValueError("max_connections and max_response_bytes must be >= 1")
        self._max_connections = max_connections
        self._max_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (connections are made on first use)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=KEEPALIVE_TIMEOUT_S
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"Accept": "application/json"}
            )

    async def close(self) -> None:
        """Close the session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def get_json(
        self, url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None
    ) -> JsonReply:
        """GET ``url`` and parse its JSON body; raise ``SourceFault`` on any failure."""
        session = self._session
        if session is None:
            raise RuntimeError("JsonHttpClient is not started")
        try:
            async with session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                status, content_type = resp.status, resp.content_type
                date = resp.headers.get("Date")
                body = await self._read_body(resp, url)
        except TimeoutError:
            raise SourceFault(
                DropReason.FETCH_FAILED, f"{redact_url(url)}: no answer within {timeout_s:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise SourceFault(
                DropReason.FETCH_FAILED, f"{redact_url(url)}: {describe_transport_error(exc)}"
            ) from None
        received_at = time.time()
        if status != 200:
            raise SourceFault(DropReason.FETCH_FAILED, f"{redact_url(url)}: HTTP {status}")
        try:
            data = json.loads(body, parse_float=Decimal, parse_constant=Decimal)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            snippet = body[:SNIPPET_CHARS].decode("utf-8", "replace")
            snippet = scrub("".join(ch for ch in snippet if ch.isprintable()))  # echoed keys
            raise SourceFault(
                DropReason.MALFORMED, f"{redact_url(url)}: not JSON ({content_type}: {snippet!r})"
            ) from None
        return JsonReply(data=data, server_time=_http_date(date), received_at=received_at)

    async def _read_body(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        too_large = f"response over {self._max_bytes} B"
        if resp.content_length is not None and resp.content_length > self._max_bytes:
            raise SourceFault(DropReason.MALFORMED, f"{redact_url(url)}: {too_large}")
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
            total += len(chunk)
            if total > self._max_bytes:
                raise SourceFault(DropReason.MALFORMED, f"{redact_url(url)}: {too_large}")
            chunks.append(chunk)
        return b"".join(chunks)


@functools.lru_cache(maxsize=DATE_CACHE_SIZE)  # the header changes once a second per server
def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
