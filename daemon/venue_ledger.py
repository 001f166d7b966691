"""``VenueLedger``: every venue's latest entries as the daemon shows, stores and feeds them.

Pure bookkeeping (no I/O): ``apply`` takes one venue result and says what changed — the
engine's holdings of the unified account (``daemon.venue_book.engine_feed``), the store rows
whose document moved, and the accounts whose retained MQTT state must be republished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.documents import health_bucket, venue_document
from daemon.store.venues import VenueRow
from daemon.venue_book import EngineFeed, asset_names, engine_feed, shortfall_usd, token_asset
from margin.model import Flag
from venues.model import VenueAccount, VenueResult


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """What one venue result changed: the engine's feed, the entries to store (every entry
    whose document moved, the block included) and the accounts to republish (those whose
    ``venue_signal`` moved)."""

    feed: EngineFeed
    rows: list[VenueRow]
    accounts: set[str]


@dataclass(slots=True)
class VenueLedger:
    """The latest entry of every (venue, account), its document, and the engine tokens each
    account holds through each venue."""

    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """account → venue → ``venue_document``."""
    held: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    """venue → account → engine tokens held."""
    names: dict[str, dict[str, str]] = field(default_factory=dict)
    """venue → underlying → configured asset."""
    read: set[str] = field(default_factory=set)
    """Venues with at least one result (stale or not)."""

    drifting: dict[str, frozenset[str]] = field(default_factory=dict)
    """venue → underlyings whose venue price drifts from our consensus."""

    def apply(self, result: VenueResult) -> LedgerChange:
        """Take ``result`` in."""
        self.read.add(result.venue)
        if not result.stale:
            self.drifting[result.venue] = frozenset(
                p.asset
                for e in result.accounts.values()
                for p in e.positions
                if p.asset in result.drifting or p.market in result.drifting
            )
        self.names.setdefault(result.venue, {}).update(asset_names(result.accounts.values()))
        feed = engine_feed(result, self.held.get(result.venue, {}))
        self.held[result.venue] = feed.held
        rows: list[VenueRow] = []
        accounts: set[str] = set()
        for account, entry in result.accounts.items():
            document = venue_document(entry)
            mine = self.documents.setdefault(account, {})
            previous = mine.get(result.venue)
            if previous == document:
                continue
            mine[result.venue] = document
            rows.append(_row(entry, document))
            if previous is None or venue_signal(previous) != venue_signal(document):
                accounts.add(account)
        return LedgerChange(feed=feed, rows=rows, accounts=accounts)

    def drift_flags(self, chains: Mapping[str, str]) -> dict[tuple[str, str], Flag]:
        """``ORACLE_DRIFT`` on every engine token of a drifting (venue, underlying), for
        ``MarginBook.set_token_flags``; ``chains`` maps venues to their chain."""
        flags: dict[tuple[str, str], Flag] = {}
        for venue, held in self.held.items():
            assets = self.drifting.get(venue, frozenset())
            for tokens in held.values():
                for token in tokens:
                    if token_asset(token) in assets:
                        flags[(chains[venue], token)] = Flag.ORACLE_DRIFT
        return flags

    def venues_of(self, account: str) -> list[dict[str, Any]]:
        """``account``'s venue documents, by venue name."""
        return [d for _, d in sorted(self.documents.get(account, {}).items())]


def venue_signal(document: Mapping[str, Any]) -> tuple[object, ...]:
    """The part of a venue entry whose change is worth republishing the account's retained
    state: the venue's verdict, staleness, flags and health band (not every block's interest,
    which moves ``health_raw`` a little every block)."""
    health = document.get("health")
    band = health_bucket(None if health is None else float(health))
    return (document.get("liquidatable"), document.get("stale"), tuple(document["flags"]), band)


def _row(entry: VenueAccount, document: dict[str, Any]) -> VenueRow:
    profit = entry.plan.profit_usd if entry.plan is not None else None
    shortfall = shortfall_usd(entry)
    return VenueRow(
        venue=entry.venue,
        account=entry.account,
        kind=entry.kind,
        chain=entry.chain,
        block_number=entry.block_number,
        liquidatable=entry.liquidatable,
        stale=entry.stale,
        profit_usd=None if profit is None else float(profit),
        shortfall_usd=None if shortfall is None else float(shortfall),
        document=document,
    )
