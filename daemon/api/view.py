"""What the API asks of the running daemon (``DaemonView``), and the documents it expects.

The store answers everything about accounts; the live state that is not stored — chain
watchers, the oracle's last round, readiness — comes from the daemon through this protocol,
so the API can be served (and tested) without chain watchers. ``chain_document`` and
``price_document`` turn the watchers' and the oracle's own types into the JSON the OpenAPI
spec describes; a ``DaemonView`` should build its answers with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from chains.rpc_endpoint import EndpointStatus
from chains.watcher import ChainStatus
from core.redaction import scrub_optional
from daemon.store.records import StoredPrice
from oracles.model import AssetPrice
from oracles.sequencer import SequencerStatus


class DaemonView(Protocol):
    """The running daemon as the API sees it."""

    def chain_statuses(self) -> list[Mapping[str, object]]:
        """One JSON-ready document per chain (``chain_document``), in config order."""
        ...

    def price_statuses(self) -> list[Mapping[str, object]] | None:
        """One JSON-ready document per asset (``price_document``) from the oracle's last round,
        or ``None`` to let the API read the newest stored round of every asset instead."""
        ...

    def readiness(self) -> list[str]:
        """Why the daemon is not ready to be trusted yet (empty: ready). Ready means every
        chain has been read and every asset priced at least once, and no token fails every
        read."""
        ...

    def read_failures(self) -> list[dict[str, object]]:
        """Tokens whose latest read failed for some watched account:
        ``{"chain", "token", "failed", "watched"}`` each (empty: every read succeeds)."""
        ...

    async def position_changed(self, account: str) -> None:
        """``account``'s positions were replaced in the store: recompute it."""
        ...


def endpoint_document(endpoint: EndpointStatus) -> dict[str, object]:
    """One RPC endpoint (its URL is already redacted by the pool).

    ``error_rate`` (failed or too-slow share of the last ``recent_requests``) and ``latency_ms``
    are what the breaker judges; ``hedge_delay_ms`` is how long a request may go unanswered
    there before a copy goes to the next endpoint, ``hedges`` how often that happened.
    """
    return {
        "url": endpoint.url,
        "state": endpoint.state.value,
        "consecutive_failures": endpoint.consecutive_failures,
        "error_rate": endpoint.error_rate,
        "recent_requests": endpoint.recent_requests,
        "latency_ms": endpoint.latency_ewma_ms,
        "hedge_delay_ms": endpoint.hedge_delay_ms,
        "hedges": endpoint.hedges,
        "requests": endpoint.requests,
        "errors": endpoint.errors,
        "chain_id_verified": endpoint.chain_id_verified,
        "last_error": scrub_optional(endpoint.last_error),
    }


def chain_document(
    status: ChainStatus, *, sequencer: SequencerStatus | None = None
) -> dict[str, object]:
    """A chain watcher's status as ``/v1/chains`` shows it.

    ``lag_s`` is the age of the last block read (what ``max_lag_s`` bounds); ``sequencer`` is
    ``null`` for chains without an uptime feed.
    """
    return {
        "name": status.chain,
        "chain_id": status.chain_id,
        "head": status.head_number,
        "head_hash": status.head_hash,
        "last_read_block": status.last_read_number,
        "last_read_hash": status.last_read_hash,
        "last_read_age_s": status.last_read_age_s,
        "since_head_s": status.since_head_s,
        "lag_s": status.last_read_age_s,
        "stale": status.stale,
        "sequencer": None if sequencer is None else sequencer.value,
        "reorgs": status.reorgs,
        "accounts": status.accounts,
        "holdings": status.holdings,
        "failed_reads": status.failed_reads,
        "last_error": scrub_optional(status.last_error),
        "endpoints": [
            endpoint_document(e) for e in status.endpoints if isinstance(e, EndpointStatus)
        ],
    }


def price_document(price: AssetPrice) -> dict[str, object]:
    """One asset's oracle round as ``/v1/prices`` shows it (prices as decimal strings)."""
    return {
        "asset": price.symbol,
        "status": price.status.value,
        "price": _text(price.price),
        "price_low": _text(price.price_low),
        "price_high": _text(price.price_high),
        "held": price.held,
        "hold_reason": None if price.hold_reason is None else price.hold_reason.value,
        "used": list(price.used),
        "anchors": list(price.anchors),
        "dropped": {source: reason.value for source, reason in sorted(price.dropped.items())},
        "spread": price.spread,
        "observed_at": price.observed_at,
        "round_at": price.round_at,
        "volatility": price.volatility,
    }


def stored_price_document(price: StoredPrice) -> dict[str, object]:
    """The newest stored round of an asset, shaped like ``price_document``."""
    sources = price.sources
    return {
        "asset": price.asset,
        "status": price.status,
        "price": _text(price.price),
        "price_low": _text(price.price_low),
        "price_high": _text(price.price_high),
        "held": price.held,
        "hold_reason": price.hold_reason,
        "used": list(sources.get("used", [])),
        "anchors": list(sources.get("anchors", [])),
        "dropped": dict(sources.get("dropped", {})),
        "spread": price.spread,
        "observed_at": price.observed_at,
        "round_at": price.round_at,
        "volatility": price.volatility,
    }


def _text(value: Decimal | None) -> str | None:
    # Plain notation: Decimal("6E+4") is shown as "60000".
    return None if value is None else format(value, "f")
