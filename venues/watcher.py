"""``VenueWatcher``: one venue's accounts kept current, block by block.

Each ``cycle(block)`` scans the venue's events up to the block (adaptive ranges; new accounts
join, touched ones are counted), then reads and evaluates every known account pinned to that
block: health moves with prices and interest without any event, so every cycle reads all
(one batched round trip or two; see ``bench/venues.py``). A read that fails leaves nothing
dropped and nothing zeroed: the venue's entries keep their last good values, marked
``stale`` and flagged ``STALE_CHAIN``; an account whose own calls failed is carried the same
way. A reorg (``roll_back``) rewinds the event scan to the common ancestor and marks entries
read above it stale until the next cycle re-reads them.
"""

from __future__ import annotations

import dataclasses
import logging

from chains.blocks import BlockRef, Reorg
from chains.multicall import MalformedReturn
from core.errors import CrossmarginError, ExecutionReverted
from core.requester import Requester
from venues.adapter import VenueAdapter
from venues.errors import VenueSetupError
from venues.logs import EventScanner
from venues.model import STALE_CHAIN, PlanPricing, VenueAccount, VenueResult

log = logging.getLogger(__name__)


class VenueWatcher:
    """Discovers and reads one venue's accounts."""

    def __init__(self, adapter: VenueAdapter, *, requester: Requester) -> None:
        self.adapter = adapter
        spec = adapter.spec
        self.scanner = EventScanner(
            name=spec.name,
            requester=requester,
            from_block=spec.from_block,
            max_range=spec.log_range_blocks,
        )
        self.accounts: set[str] = set()
        self.touched: set[str] = set()  # accounts whose events were seen since the last read
        self.last: VenueResult | None = None
        self.ready = False

    async def setup(self, block: BlockRef) -> None:
        """Check the venue at ``block`` (``VenueSetupError`` names what is wrong)."""
        try:
            await self.adapter.setup(block)
        except (ExecutionReverted, MalformedReturn) as exc:
            # A revert or nonsense from the configured address means the wrong contract;
            # transport faults propagate as themselves (retryable).
            raise VenueSetupError(self.adapter.spec.name, str(exc)) from exc
        self.ready = True

    async def discover(self, block: BlockRef) -> set[str]:
        """Scan events up to ``block``; returns the accounts first seen now."""
        addresses, topics = self.adapter.log_filter()
        self.scanner.watch(addresses, topics)
        new: set[str] = set()
        for entry in await self.scanner.scan_to(block.number):
            for account in self.adapter.accounts_in(entry):
                self.touched.add(account)
                if account not in self.accounts:
                    self.accounts.add(account)
                    new.add(account)
        if new:
            log.info("venue_accounts_discovered venue=%s new=%d", self.adapter.spec.name, len(new))
        return new

    async def cycle(self, block: BlockRef, pricing: PlanPricing | None = None) -> VenueResult:
        """Discover, read and evaluate every account at ``block``; never raises for a read
        failure (the result is then the last good one, stale)."""
        spec = self.adapter.spec
        try:
            await self.discover(block)
            result = await self.adapter.snapshot(
                sorted(self.accounts), block, pricing or PlanPricing()
            )
        except CrossmarginError as exc:
            log.warning(
                "venue_read_failed venue=%s block=%d error=%s", spec.name, block.number, exc
            )
            return self._stale(str(exc))
        self.touched.clear()
        if result.failed:
            log.warning(
                "venue_accounts_read_failed venue=%s block=%d failed=%d",
                spec.name,
                block.number,
                len(result.failed),
            )
            carried = {
                account: _stale_entry(self.last.accounts[account])
                for account in result.failed
                if self.last is not None and account in self.last.accounts
            }
            result = dataclasses.replace(result, accounts={**result.accounts, **carried})
        self.last = result
        return result

    def roll_back(self, reorg: Reorg) -> int:
        """Rewind after a reorg; entries read above the surviving block turn stale."""
        floor = (
            reorg.ancestor.number
            if reorg.ancestor is not None
            else max(0, reorg.head.number - reorg.depth)
        )
        self.scanner.rewind(floor)
        if self.last is not None and self.last.block_number > floor:
            self.last = dataclasses.replace(
                self.last,
                stale=True,
                error=f"reorg below block {self.last.block_number}",
                accounts={a: _stale_entry(e) for a, e in self.last.accounts.items()},
            )
        log.warning("venue_reorg venue=%s ancestor=%d", self.adapter.spec.name, floor)
        return floor

    def mark_stale(self, error: str) -> VenueResult:
        """The last good result with every entry marked stale (a read that failed outside
        ``cycle``: the chain's head, the pinned block, the set-up)."""
        return self._stale(error)

    def _stale(self, error: str) -> VenueResult:
        spec = self.adapter.spec
        if self.last is None:
            return VenueResult(
                venue=spec.name,
                kind=spec.kind,
                chain=spec.chain,
                block_number=0,
                block_hash="",
                accounts={},
                stale=True,
                error=error,
            )
        self.last = dataclasses.replace(
            self.last,
            stale=True,
            error=error,
            accounts={a: _stale_entry(e) for a, e in self.last.accounts.items()},
        )
        return self.last


def _stale_entry(entry: VenueAccount) -> VenueAccount:
    return dataclasses.replace(entry, stale=True, flags=entry.flags | {STALE_CHAIN})
