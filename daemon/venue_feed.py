"""``VenueFeed``: one configured venue followed block by block in the daemon.

Each poll fetches the chain's head, links it to a ring of recent blocks (a reorg rewinds the
venue's event scan to the common ancestor, ``VenueWatcher.roll_back``) and reads every known
account at ``head - confirmations`` (``VenueWatcher.cycle``: discovery from the venue's own
events, then every account re-read and evaluated), and again at the same block when our
consensus prices moved (plans and oracle drift are priced with them). A read that fails —
the head, the block, the venue itself — yields the last good result marked stale
(``STALE_CHAIN`` on every entry): nothing is dropped, nothing becomes zero. ``setup`` checks
the venue's contracts: a wrong address is ``VenueSetupError`` naming the venue
(``crossmargin run`` exits 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

from chains.blocks import BlockRef, Reorg
from chains.contracts import multicall3_runtime
from chains.heads import HeadTracker
from core.errors import CrossmarginError, NonRetryableError
from core.requester import Requester
from daemon.config.model import ChainConfig, Config
from daemon.config.venues import VenueConfig
from daemon.engine_loop import EngineLoop, VenueChanged
from daemon.venue_book import plan_pricing
from venues.adapter import create_adapter
from venues.errors import VenueSetupError
from venues.model import PlanPricing, VenueResult
from venues.watcher import VenueWatcher

log = logging.getLogger(__name__)

SETUP_RETRY_S = 2.0  # a chain down at start: retry the venue's set-up this often


class VenueFeed:
    """Reads one venue every block of its chain."""

    def __init__(
        self,
        *,
        venue: VenueConfig,
        chain: ChainConfig,
        requester: Requester,
        known_assets: frozenset[str],
    ) -> None:
        self.venue = venue
        self.chain = chain
        self._rpc = requester
        override = multicall3_runtime() if chain.use_state_override else None
        adapter = create_adapter(
            venue.spec(known_assets),
            requester=requester,
            multicall_address=chain.multicall_address,
            override_code=override,
        )
        self.watcher = VenueWatcher(adapter, requester=requester)
        self.heads = HeadTracker(
            chain=chain.name,
            requester=requester,
            poll_interval_s=chain.poll_interval_s,
            ring_depth=chain.confirmations + 64,
        )
        self.last_read: BlockRef | None = None
        self.read_once = False  # a read succeeded since start (readiness)
        self._last_pricing: PlanPricing | None = None

    @property
    def name(self) -> str:
        """The venue's configured name."""
        return self.venue.name

    async def target(self, head: BlockRef) -> BlockRef:
        """The block reads are pinned to: ``head - confirmations``."""
        number = max(0, head.number - self.chain.confirmations)
        known = self.heads.ring.at(number)
        if known is not None:
            return known
        block = await self._rpc.request("eth_getBlockByNumber", [hex(number), False])
        return BlockRef.from_rpc(block)

    async def setup(self) -> None:
        """Check the venue at the current head (``VenueSetupError`` names what is wrong;
        a transport fault propagates as itself, retryable)."""
        head = await self.heads.latest()
        await self.watcher.setup(await self.target(head))

    async def results(self, pricing: Callable[[], PlanPricing]) -> AsyncIterator[VenueResult]:
        """Follow the chain forever: one result per new pinned block, or the last good one
        marked stale when a read fails. ``pricing`` gives the plans' USD prices now."""
        while not self.watcher.ready:
            try:
                await self.setup()
            except NonRetryableError:
                raise
            except CrossmarginError as exc:
                log.warning("venue_setup_deferred venue=%s error=%s", self.name, exc)
                yield self.watcher.mark_stale(str(exc))
                await asyncio.sleep(SETUP_RETRY_S)
        while True:
            result = await self.poll_once(pricing)
            if result is not None:
                yield result
            await asyncio.sleep(self.chain.poll_interval_s)

    async def poll_once(self, pricing: Callable[[], PlanPricing]) -> VenueResult | None:
        """One poll: the result at the current pinned block, the last one marked stale when a
        read fails, or ``None`` when neither the block nor our prices moved."""
        try:
            events = await self.heads.poll_once()
            for event in events:
                if isinstance(event, Reorg):
                    self.watcher.roll_back(event)
                    self.last_read = None  # re-read at the new head even if its number is old
            target = await self.target(self.heads.ring.tip or await self.heads.latest())
        except CrossmarginError as exc:
            if isinstance(exc, NonRetryableError) and not self.watcher.ready:
                raise
            log.warning("venue_head_failed venue=%s error=%s", self.name, exc)
            self.last_read = None  # re-read once the chain answers, even at the same block
            return self.watcher.mark_stale(str(exc))
        now = pricing()
        if (
            self.last_read is not None
            and target.hash == self.last_read.hash
            and now == self._last_pricing
        ):
            return None  # nothing moved: the same block at the same prices
        result = await self.watcher.cycle(target, now)
        if result.stale:
            self.last_read = None  # re-read once the venue answers, even at the same block
        else:
            self.last_read, self._last_pricing = target, now
            self.read_once = True
        return result


def build_feeds(config: Config, pools: Mapping[str, Requester]) -> dict[str, VenueFeed]:
    """A feed per configured venue, reading through its chain's pool."""
    known = frozenset(a.symbol for a in config.assets)
    return {
        v.name: VenueFeed(
            venue=v, chain=config.chain(v.chain), requester=pools[v.chain], known_assets=known
        )
        for v in config.venues
    }


async def setup_feeds(feeds: Iterable[VenueFeed], timeout_s: float) -> None:
    """Check every venue's contracts: a wrong address is fatal (``VenueSetupError``, exit
    2); a chain down (or slow) at start is retried by the venue's component."""

    async def setup(feed: VenueFeed) -> None:
        try:
            await asyncio.wait_for(feed.setup(), timeout_s)
        except NonRetryableError:
            raise
        except (CrossmarginError, TimeoutError) as exc:
            log.warning("venue_setup_deferred venue=%s error=%s", feed.name, exc)

    await asyncio.gather(*(setup(f) for f in feeds))


async def follow_venue(feed: VenueFeed, loop: EngineLoop) -> None:
    """The component ``venue:<name>``: every result into the engine loop's queue, plans and
    drift priced with the loop's latest oracle round."""

    def pricing() -> PlanPricing:
        return plan_pricing(
            loop.venues.ledger.names.get(feed.name, {}),
            loop.prices,
            drift_threshold=feed.venue.drift_threshold,
        )

    try:
        async for result in feed.results(pricing):
            await loop.queue.put(VenueChanged(result))
    except VenueSetupError as exc:
        # Found only once the chain answered (it was down at start): the venue stays
        # unready and its component ends, instead of restarting into the same error.
        log.error("venue_unusable venue=%s error=%s", feed.name, exc)  # noqa: TRY400 - one line
