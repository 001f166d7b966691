"""Field types and bounds shared by ``daemon.config.model`` and ``daemon.config.assets``.

Every config model derives from ``StrictModel``: unknown keys are errors, and no float or
decimal may be NaN or infinite (``.inf`` as a poll interval used to poll once, then never).
Durations also have upper bounds (below), so a typo cannot overflow a timer either.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

from core.addresses import normalize_address

MAX_TIMEOUT_S = 600.0
"""Request and fetch timeouts."""
MAX_INTERVAL_S = 86_400.0
"""Polling, sweep and round intervals, staleness thresholds, grace periods: one day."""
MAX_HORIZON_S = 30 * 86_400.0
"""Ages, latencies and volatility units: 30 days (an optimistic-rollup exit takes 7)."""
MAX_LIABILITY_WEIGHT = 10.0
MAX_VOLATILITY = 10.0
"""Annualized (10 = 1,000 %)."""
MAX_USD = 1e15
"""Tier bounds in USD (as the API's position prices)."""
HTTP_SCHEMES = ("http", "https")
WS_SCHEMES = ("ws", "wss")
"""Written in lower case, as the clients compare them."""


class StrictModel(BaseModel):
    """A config block: unknown keys refused, frozen, floats finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def url_parts(url: str, schemes: tuple[str, ...]) -> SplitResult:
    """``url`` split, with one of ``schemes``, a host, and a port in range (if any).

    ``urlsplit(...).port`` raises ``ValueError`` for a port like 99999; it is asked here, so
    the config names the key instead of a traceback naming nothing later.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        raise ValueError("not a valid URL (a port must be a number from 0 to 65535)") from None
    prefixes = tuple(f"{scheme}://" for scheme in schemes)
    if not url.startswith(prefixes):
        raise ValueError(f"must be a URL starting with {' or '.join(prefixes)}")
    if not parts.hostname:
        raise ValueError("names no host")
    return parts


def _http_url(url: str) -> str:
    url_parts(url, HTTP_SCHEMES)
    return url


def _ws_url(url: str) -> str:
    url_parts(url, WS_SCHEMES)
    return url


Address = Annotated[str, AfterValidator(normalize_address)]
"""An EVM address (exactly ``0x`` + 40 hex digits), stored lower-case."""
HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An ``http(s)://`` URL with a host and a valid port."""
WsUrl = Annotated[str, AfterValidator(_ws_url)]
"""A ``ws(s)://`` URL with a host and a valid port."""


class KeyedError(ValueError):
    """A cross-field problem that knows its own key path (raised inside validators)."""

    def __init__(self, key: str, problem: str, value: object = None) -> None:
        self.key = key
        self.problem = problem
        self.value = value
        super().__init__(problem)
