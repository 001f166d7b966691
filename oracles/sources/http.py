"""JSON price APIs over HTTP: a URL, a dotted path to the price, optionally one to a timestamp.

Paths are dotted (``data.amount``); a segment that is an integer indexes a list
(``result.XETHZUSD.c.0``) and ``*`` takes the only value of a mapping (Kraken keys its result
by its own pair name). The price may be a JSON string or number, read exactly as a
``Decimal``. The timestamp may be unix seconds (``timestamp_unit: ms`` for milliseconds), as a
number or string, or an ISO-8601 string.

Without a ``timestamp_path`` the quote's time is the server's clock from the HTTP ``Date``
header (falling back to our receive time if a server sends none): the exchange's statement of
when the price was current, to the second.

Presets (``HTTP_PRESETS``) fill the URL path, the price and timestamp paths for real exchange
response shapes from a ``pair``, so operators don't write paths by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import quote

from core.redaction import redact_url
from oracles.model import DropReason, SourceKind, SourceQuote
from oracles.sources.base import SourceFault
from oracles.sources.httpclient import JsonHttpClient

DEFAULT_HTTP_POLL_INTERVAL_S = 5.0
DEFAULT_HTTP_TIMEOUT_S = 5.0
MAX_NUMBER_CHARS = 100  # a price or timestamp string longer than this is not one
WILDCARD = "*"
MS_PER_S = 1000

TimestampUnit = Literal["s", "ms"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpPreset:
    """A real exchange's price endpoint: where it lives and where the price is in its JSON."""

    name: str
    base_url: str  # the public API; override ``url`` to point at a proxy or a test server
    path_template: str  # ``{pair}`` is replaced by the URL-quoted pair
    price_path: str
    timestamp_path: str | None = None
    timestamp_unit: TimestampUnit = "s"
    pair_example: str

    def url(self, base_url: str | None, pair: str) -> str:
        """The full URL for ``pair`` under ``base_url`` (default: the exchange's API)."""
        base = (base_url or self.base_url).rstrip("/")
        return base + self.path_template.format(pair=quote(pair, safe=""))


HTTP_PRESETS: Mapping[str, HttpPreset] = {
    p.name: p
    for p in (
        # {"data": {"amount": "3000.12", "base": "ETH", "currency": "USD"}}
        HttpPreset(
            name="coinbase",
            base_url="https://api.coinbase.com",
            path_template="/v2/prices/{pair}/spot",
            price_path="data.amount",
            pair_example="ETH-USD",
        ),
        # {"symbol": "ETHUSDT", "price": "3000.12000000"}
        HttpPreset(
            name="binance",
            base_url="https://api.binance.com",
            path_template="/api/v3/ticker/price?symbol={pair}",
            price_path="price",
            pair_example="ETHUSDT",
        ),
        # {"error": [], "result": {"XETHZUSD": {"c": ["3000.12", "0.5"], ...}}}
        HttpPreset(
            name="kraken",
            base_url="https://api.kraken.com",
            path_template="/0/public/Ticker?pair={pair}",
            price_path="result.*.c.0",
            pair_example="ETHUSD",
        ),
        # {"timestamp": "1700000000", "last": "3000.12", ...}
        HttpPreset(
            name="bitstamp",
            base_url="https://www.bitstamp.net",
            path_template="/api/v2/ticker/{pair}/",
            price_path="last",
            timestamp_path="timestamp",
            pair_example="ethusd",
        ),
    )
}


def parse_path(path: str) -> tuple[str, ...]:
    """Split a dotted JSON path; raise ``ValueError`` for an empty one or an empty segment."""
    parts = tuple(path.split("."))
    if not path or any(not part for part in parts):
        raise ValueError(f"bad JSON path {path!r}: use dotted keys like data.amount")
    return parts


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in parsed JSON; ``MALFORMED`` fault if it is not there."""
    node = data
    missing = SourceFault(DropReason.MALFORMED, f"no {'.'.join(path)} in the answer")
    for i, part in enumerate(path):
        if isinstance(node, dict):
            if part == WILDCARD:
                if len(node) != 1:
                    where = ".".join(path[: i + 1])
                    raise SourceFault(DropReason.MALFORMED, f"{where}: {len(node)} keys, not 1")
                node = next(iter(node.values()))
            elif part in node:
                node = node[part]
            else:
                raise missing
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise missing
    return node


def to_decimal(value: Any, what: str) -> Decimal:
    """A JSON number or numeric string as an exact ``Decimal`` (``MALFORMED`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise SourceFault(DropReason.MALFORMED, f"{what} is a {type(value).__name__}")
    if isinstance(value, Decimal):
        return value
    text = str(value).strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise SourceFault(DropReason.MALFORMED, f"{what} is {len(text)} characters long")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise SourceFault(DropReason.MALFORMED, f"{what} is not a number: {text[:20]!r}") from None
    if not number.is_finite():
        raise SourceFault(DropReason.MALFORMED, f"{what} is not finite: {text!r}")
    return number


def to_timestamp(value: Any, unit: TimestampUnit) -> float:
    """Unix seconds from a number/numeric string in ``unit`` or an ISO-8601 string (UTC when
    it carries no offset)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = Decimal(text) if len(text) <= MAX_NUMBER_CHARS else None
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise SourceFault(DropReason.MALFORMED, f"timestamp {text[:40]!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    seconds = to_decimal(value, "timestamp")
    return float(seconds / MS_PER_S if unit == "ms" else seconds)


@dataclass(slots=True, kw_only=True)
class HttpPriceSource:
    """One JSON price endpoint; see the module docstring for paths and timestamps."""

    source_id: str
    url: str
    price_path: tuple[str, ...]
    client: JsonHttpClient
    max_age_s: float
    timestamp_path: tuple[str, ...] | None = None
    timestamp_unit: TimestampUnit = "s"
    headers: Mapping[str, str] = field(default_factory=dict)
    poll_interval_s: float = DEFAULT_HTTP_POLL_INTERVAL_S
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    kind: SourceKind = SourceKind.HTTP

    def __repr__(self) -> str:
        return f"HttpPriceSource(source_id={self.source_id!r}, url={redact_url(self.url)!r})"

    async def fetch(self) -> SourceQuote:
        """GET the endpoint once and read the price (and timestamp) out of it."""
        try:
            reply = await self.client.get_json(
                self.url, timeout_s=self.timeout_s, headers=self.headers or None
            )
            price = to_decimal(lookup(reply.data, self.price_path), "price")
            if self.timestamp_path is not None:
                observed_at = to_timestamp(
                    lookup(reply.data, self.timestamp_path), self.timestamp_unit
                )
            else:
                observed_at = reply.server_time or reply.received_at
        except SourceFault as fault:
            return fault.quote(self.source_id, self.kind)
        return SourceQuote(
            source_id=self.source_id,
            kind=self.kind,
            price=price,
            observed_at=observed_at,
            max_age_s=self.max_age_s,
        )
