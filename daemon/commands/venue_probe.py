"""``crossmargin check``'s venue row: the venue's contracts at the chain's head (code at the
address, the kind's interface), how many reserves or markets it has, and whether its oracles
answer. A wrong address fails the row with the one-line ``VenueSetupError`` naming the venue."""

from __future__ import annotations

from chains.discovery import ZERO_ADDRESS
from chains.rpc import RpcPool
from daemon.commands.probes import CheckStatus, Outcome
from daemon.config.model import ChainConfig
from daemon.config.venues import VenueConfig
from daemon.venue_feed import VenueFeed
from venues.aave.adapter import AaveV3Adapter
from venues.model import PlanPricing
from venues.morpho.adapter import MorphoBlueAdapter


async def probe_venue(
    chain: ChainConfig, venue: VenueConfig, known_assets: frozenset[str], pool: RpcPool
) -> Outcome:
    """Set the venue up as the daemon does, then read its market once."""
    feed = VenueFeed(venue=venue, chain=chain, requester=pool, known_assets=known_assets)
    await feed.setup()  # VenueSetupError (one line naming the venue) fails the row
    block = await feed.target(await feed.heads.latest())
    adapter = feed.watcher.adapter
    if isinstance(adapter, AaveV3Adapter):
        snapshot = await adapter.reader.read_market(block)  # every AaveOracle price, or fails
        addresses = snapshot.addresses
        return CheckStatus.OK, (
            f"pool {addresses.pool}, oracle {addresses.oracle}, "
            f"{len(snapshot.reserves)} reserves, {len(snapshot.emodes)} e-mode categories, "
            "every price answered"
        )
    if isinstance(adapter, MorphoBlueAdapter):
        markets = sorted(adapter.reader.markets)
        if not markets:
            return CheckStatus.OK, "Morpho answers; every market (from CreateMarket logs)"
        snap = await adapter.reader.read({ZERO_ADDRESS: markets}, block)
        silent = sorted(m for m, at in snap.markets.items() if at.price is None)
        if silent:
            return CheckStatus.FAIL, f"oracle price() fails for market(s) {', '.join(silent)}"
        return CheckStatus.OK, f"{len(markets)} market(s), every oracle answered"
    await adapter.snapshot([], block, PlanPricing())
    return CheckStatus.OK, f"{venue.kind} answers"
