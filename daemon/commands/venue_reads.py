"""One read of every configured venue at its chain's head (``crossmargin health``): set-up
(a wrong address is ``VenueSetupError`` naming the venue, exit 2), discovery from the venue's
events and every account read and evaluated, plans priced by our oracle round."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from daemon.config.model import Config
from daemon.venue_book import plan_pricing
from daemon.venue_feed import VenueFeed
from daemon.wiring import chain_pool
from oracles.model import AssetPrice
from venues.model import VenueResult


async def read_venues(config: Config, prices: Mapping[str, AssetPrice]) -> list[VenueResult]:
    """Every venue's result at its chain's ``head - confirmations`` (stale when a read fails).

    Accounts are read twice when plans need prices: once to learn the venue's underlyings,
    then with our consensus prices of them (``PlanPricing.usd``)."""
    if not config.venues:
        return []
    known = frozenset(a.symbol for a in config.assets)
    async with contextlib.AsyncExitStack() as stack:
        pools = {
            name: await stack.enter_async_context(chain_pool(config.chain(name)))
            for name in sorted({v.chain for v in config.venues})
        }

        async def read(feed: VenueFeed) -> VenueResult:
            await feed.setup()
            head = await feed.target(await feed.heads.latest())
            first = await feed.watcher.cycle(head)
            names = {
                p.asset: p.asset_name
                for e in first.accounts.values()
                for p in e.positions
                if p.asset_name is not None
            }
            if not names or first.stale:
                return first
            pricing = plan_pricing(names, prices, drift_threshold=feed.venue.drift_threshold)
            return await feed.watcher.cycle(head, pricing)

        feeds = [
            VenueFeed(
                venue=v, chain=config.chain(v.chain), requester=pools[v.chain], known_assets=known
            )
            for v in config.venues
        ]
        return list(await asyncio.gather(*(read(f) for f in feeds)))
