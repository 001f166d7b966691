"""Pyth prices with confidence, from a Hermes server (``/v2/updates/price/latest``).

Hermes answers ``{"binary": …, "parsed": [{"id": "<64 hex, no 0x>", "price": {"price":
"300012000000", "conf": "150000000", "expo": -8, "publish_time": 1700000000}, "ema_price":
…}]}``: ``price`` and ``conf`` are integers (as strings) scaled by ``10**expo``. The quote
carries the confidence; ``oracles.validity`` rejects it when ``conf/price`` exceeds the asset's
``max_confidence_ratio``, and the aggregator values collateral at price − conf and debt at
price + conf when the asset has ``confidence_bands``. ``publish_time`` is the quote's time.
The EMA price is not used: it lags exactly when a breaker needs current data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.redaction import redact_url
from oracles.model import DropReason, SourceKind, SourceQuote
from oracles.sources.base import SourceFault
from oracles.sources.httpclient import JsonHttpClient

HERMES_URL = "https://hermes.pyth.network"
LATEST_PATH = "/v2/updates/price/latest"
DEFAULT_PYTH_POLL_INTERVAL_S = 5.0
DEFAULT_PYTH_TIMEOUT_S = 5.0
MAX_EXPONENT = 40  # |expo| beyond this is not a price scale
_INT = re.compile(r"^-?[0-9]{1,40}$")
FEED_ID = re.compile(r"(0x)?[0-9a-fA-F]{64}")


def normalize_feed_id(feed_id: str) -> str:
    """A Pyth price feed id as Hermes answers it: 64 lower-case hex digits without ``0x``."""
    if not FEED_ID.fullmatch(feed_id):  # not .match with $: that passes a final newline
        raise ValueError("a Pyth feed id is 32 bytes of hex (64 digits, optional 0x)")
    return feed_id.lower().removeprefix("0x")


def hermes_url(base_url: str, feed_id: str) -> str:
    """The ``latest`` URL of one feed under a Hermes ``base_url``."""
    return f"{base_url.rstrip('/')}{LATEST_PATH}?ids[]={normalize_feed_id(feed_id)}&parsed=true"


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SourceFault(DropReason.MALFORMED, f"{what} is a {type(value).__name__}")
    if isinstance(value, str) and not _INT.match(value):
        raise SourceFault(DropReason.MALFORMED, f"{what} is not an integer: {value[:20]!r}")
    return int(value)


def parse_hermes(data: Any, feed_id: str) -> tuple[int, int, int, int]:
    """``(price, conf, expo, publish_time)`` of ``feed_id`` in a Hermes answer."""
    parsed = data.get("parsed") if isinstance(data, dict) else None
    if not isinstance(parsed, list):
        raise SourceFault(DropReason.MALFORMED, "no parsed[] in the answer")
    for entry in parsed:
        if isinstance(entry, dict) and str(entry.get("id", "")).lower().removeprefix("0x") == (
            feed_id
        ):
            price = entry.get("price")
            if not isinstance(price, dict):
                raise SourceFault(DropReason.MALFORMED, "no price object for the feed")
            expo = _integer(price.get("expo"), "expo")
            if abs(expo) > MAX_EXPONENT:
                raise SourceFault(DropReason.MALFORMED, f"expo {expo}")
            return (
                _integer(price.get("price"), "price"),
                _integer(price.get("conf"), "conf"),
                expo,
                _integer(price.get("publish_time"), "publish_time"),
            )
    raise SourceFault(DropReason.MALFORMED, f"feed {feed_id[:10]}… not in the answer")


@dataclass(slots=True, kw_only=True)
class PythSource:
    """One Pyth price feed read from Hermes."""

    source_id: str
    base_url: str
    feed_id: str  # normalized (``normalize_feed_id``)
    client: JsonHttpClient
    max_age_s: float
    headers: Mapping[str, str] = field(default_factory=dict)
    poll_interval_s: float = DEFAULT_PYTH_POLL_INTERVAL_S
    timeout_s: float = DEFAULT_PYTH_TIMEOUT_S
    kind: SourceKind = SourceKind.PYTH

    def __repr__(self) -> str:
        return f"PythSource(source_id={self.source_id!r}, url={redact_url(self.base_url)!r})"

    async def fetch(self) -> SourceQuote:
        """Fetch the feed's latest price and confidence."""
        try:
            reply = await self.client.get_json(
                hermes_url(self.base_url, self.feed_id),
                timeout_s=self.timeout_s,
                headers=self.headers or None,
            )
            price, conf, expo, publish_time = parse_hermes(reply.data, self.feed_id)
        except SourceFault as fault:
            return fault.quote(self.source_id, self.kind)
        return SourceQuote.pyth(
            self.source_id,
            price=price,
            conf=conf,
            expo=expo,
            publish_time=publish_time,
            max_age_s=self.max_age_s,
        )
