"""Which L2 quotes may be used: the oracle's view of every sequencer-uptime feed.

While an L2's sequencer is down or in its grace period, nothing read on that chain is a price:
a sequencer outage is exactly when an L2 feed or pool can be moved while nobody can act on
it. ``SequencerGate`` keeps the latest reading of each chain's uptime feed and screens every
quote from a source on such a chain (``chain:`` in its config — Chainlink feeds, Uniswap v3
TWAP anchors) before a round sees it. A quote is used only if

1. the chain's latest reading says ``UP`` at the round time, and
2. it is *vouched for*: a reading of the uptime feed **sent after the quote's answer came
   back** said ``UP`` at the time it was taken.

Otherwise it becomes a failed quote with ``DropReason.SEQUENCER_DOWN`` and a detail saying
why. Rule 2 closes the race a polling interval would leave open: the uptime feed lives on the
same chain, so a reading sent after the quote's answer sees a block at least as new as the
quote (on one node; failover between nodes can blur it by their lag). A feed flipped to down
in the same block as (or before) a crazy price therefore always drops that price, however long
``sequencer_poll_interval_s`` is. What remains is the chain's own ordering: a price moved in a
block *before* the uptime feed says down is indistinguishable from a real one.

Ordering uses the event loop's monotonic clock, never the service's (injectable) round clock,
so "sent after" holds even when a test freezes time. Readings of one chain that are needed to
vouch for quotes are serialised per chain, so a burst of quotes shares one read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from oracles.model import DropReason, SourceQuote
from oracles.sequencer import SequencerStatus
from oracles.sources.chainlink import SequencerReading, SequencerUptimeFeed

log = logging.getLogger(__name__)

QuoteKey = tuple[str, str]  # (asset symbol, source id)


@dataclass(frozen=True, slots=True)
class _Seen:
    reading: SequencerReading
    sent_at: float  # event-loop time the read was sent


class SequencerGate:
    """Reads the uptime feeds and screens L2 quotes (see the module docstring).

    ``limit`` is the service's semaphore of fetches in flight; ``clock`` the unix time a
    reading is classified at (the service's round clock).
    """

    def __init__(
        self,
        feeds: Sequence[SequencerUptimeFeed],
        *,
        limit: asyncio.Semaphore,
        clock: Callable[[], float],
    ) -> None:
        self._feeds = {feed.chain: feed for feed in feeds}
        self._limit = limit
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._locks = {chain: asyncio.Lock() for chain in self._feeds}
        self._vouchers: dict[QuoteKey, SequencerReading] = {}

    @property
    def feeds(self) -> list[SequencerUptimeFeed]:
        """Every configured uptime feed."""
        return list(self._feeds.values())

    def guards(self, chain: str | None) -> bool:
        """True when quotes read on ``chain`` must be vouched for (it has an uptime feed)."""
        return chain is not None and chain in self._feeds

    @property
    def readings(self) -> Mapping[str, SequencerReading]:
        """Latest reading of every chain whose feed was read."""
        return {chain: seen.reading for chain, seen in self._seen.items()}

    def status(self, chain: str, now: float) -> SequencerStatus | None:
        """``chain``'s sequencer at ``now`` from its latest reading (``None``: not read)."""
        seen = self._seen.get(chain)
        return None if seen is None else seen.reading.status(now)

    async def read(self, feed: SequencerUptimeFeed) -> SequencerReading:
        """Read ``feed`` once (bounded by its timeout; a fault reads as ``DOWN``) and keep the
        reading unless one sent later is already kept."""
        loop = asyncio.get_running_loop()
        async with self._limit:
            sent_at = loop.time()
            try:
                async with asyncio.timeout(feed.timeout_s):
                    reading = await feed.read(self._clock())
            except TimeoutError:
                reading = feed.failed(self._clock(), f"no answer within {feed.timeout_s:g}s")
            except Exception as exc:  # a bug in one feed must not stop the oracle
                log.exception("oracle.sequencer_error chain=%s", feed.chain)
                reading = feed.failed(self._clock(), f"internal error: {type(exc).__name__}")
        previous = self._seen.get(feed.chain)
        if previous is not None and previous.sent_at > sent_at:
            return reading  # a newer read finished first: it stands
        status = reading.status(reading.checked_at)
        if previous is None or previous.reading.status(reading.checked_at) is not status:
            log.log(
                logging.INFO if status.usable else logging.WARNING,
                "oracle.sequencer chain=%s status=%s started_at=%s detail=%s",
                feed.chain,
                status,
                reading.started_at,
                reading.detail,
            )
        self._seen[feed.chain] = _Seen(reading, sent_at)
        return reading

    async def vouch(self, key: QuoteKey, chain: str, answered_at: float) -> None:
        """Vouch for the quote ``key`` whose answer came back at loop time ``answered_at``:
        with the latest reading if it was sent since, else with a new one."""
        async with self._locks[chain]:
            seen = self._seen.get(chain)
            if seen is not None and seen.sent_at >= answered_at:
                reading = seen.reading
            else:
                reading = await self.read(self._feeds[chain])
        self._vouchers[key] = reading

    def screen(
        self, key: QuoteKey, chain: str | None, quote: SourceQuote, now: float
    ) -> SourceQuote:
        """``quote`` as a round at ``now`` may use it: itself, or ``SEQUENCER_DOWN``."""
        if quote.failure is not None or chain is None or not self.guards(chain):
            return quote
        seen = self._seen.get(chain)
        voucher = self._vouchers.get(key)
        if seen is None or voucher is None:
            why = "sequencer not read since this quote"
        elif (current := seen.reading.status(now)) is not SequencerStatus.UP:
            why = f"sequencer {current}"
        elif (then := voucher.status(voucher.checked_at)) is not SequencerStatus.UP:
            why = f"read while the sequencer was {then}"
        else:
            return quote
        return SourceQuote.failed(
            quote.source_id, quote.kind, DropReason.SEQUENCER_DOWN, f"chain {chain}: {why}"
        )
