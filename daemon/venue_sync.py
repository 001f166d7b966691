"""``VenueSync``: the engine loop's venue side — venue results into the margin engine (the
unified account), changed entries to the store, and which accounts to republish.

The engine loop owns one and calls it: ``apply`` while applying a cycle's events, ``write``
before the cycle's own write (entries that fail to store wait for the next cycle, latest
wins), ``touched`` after it to republish the retained state of the accounts whose venue
entries moved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from daemon.store.errors import StoreUnavailable
from daemon.store.venues import VenueRow
from daemon.store.writer import HealthStore
from daemon.venue_ledger import VenueLedger
from margin.engine import MarginEngine
from venues.model import VenueResult

log = logging.getLogger(__name__)


def venue_requirement(venue: str) -> str:
    """The engine's warm-up requirement of a venue's first result (beside the chains')."""
    return f"venue:{venue}"


class VenueSync:
    """Venue entries between the feeds, the engine and the store."""

    def __init__(self) -> None:
        self.ledger = VenueLedger()
        self._chains: dict[str, str] = {}  # venue → chain
        self._rows: dict[tuple[str, str], VenueRow] = {}  # stored at the next chance
        self._touched: set[str] = set()
        self.listeners: list[Callable[[], None]] = []
        """Called after venue entries were stored (the venue event announcer's wake-up)."""

    def apply(self, result: VenueResult, engine: MarginEngine) -> None:
        """``result``'s positions into the unified accounts (new engine tokens first, those
        of drifting prices flagged ``ORACLE_DRIFT``); its changed entries are kept to store
        and their accounts to republish."""
        change = self.ledger.apply(result)
        self._chains[result.venue] = result.chain
        engine.add_tokens(change.feed.tokens)
        if change.feed.holdings:
            engine.load_holdings(change.feed.holdings)
        engine.set_token_flags(self.ledger.drift_flags(self._chains))
        for row in change.rows:
            self._rows[(row.venue, row.account)] = row
        self._touched |= change.accounts

    async def write(self, store: HealthStore) -> None:
        """Store the entries that moved; on failure they wait for the next call."""
        if not self._rows:
            return
        rows = list(self._rows.values())
        try:
            await store.write_venue_rows(rows)
        except StoreUnavailable as exc:
            log.warning("venue_rows_unstored rows=%d error=%s", len(rows), exc)
            return
        for row in rows:
            if self._rows.get((row.venue, row.account)) is row:
                del self._rows[(row.venue, row.account)]
        for listener in self.listeners:
            listener()

    def touched(self) -> list[str]:
        """The accounts whose venue entries moved since the last call, sorted."""
        found, self._touched = self._touched, set()
        return sorted(found)
