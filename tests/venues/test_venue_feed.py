"""``VenueFeed`` on a real Aave market: a venue whose chain is down at start yields stale
results and is set up once the chain answers (a wrong address then fails naming the venue);
the same block at the same prices is not read twice, new consensus prices are (and drift
shows with the venue's health at our price)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chains.rpc import RpcPool
from daemon.config.model import ChainConfig
from daemon.config.venues import VenueConfig
from daemon.venue_feed import VenueFeed
from devnet.aave import deploy_aave_market, open_positions
from tests.faultproxy import FaultMode, FaultProxy
from tests.venues.venuekit import venue_chain
from venues.errors import VenueSetupError
from venues.model import ORACLE_DRIFT, STALE_CHAIN, PlanPricing

CHAIN_ID = 1051
ALICE = "0x" + "a5" * 20


def _feed(url: str, provider: str, pool: RpcPool) -> VenueFeed:
    chain = ChainConfig(name="v", chain_id=CHAIN_ID, rpc_urls=[url], poll_interval_s=0.05)
    venue = VenueConfig(
        name="aave-feed", kind="aave_v3", chain="v", pool_addresses_provider=provider
    )
    known = frozenset({"WETH", "USDC"})
    return VenueFeed(venue=venue, chain=chain, requester=pool, known_assets=known)


async def test_a_venue_down_at_start_is_stale_then_set_up_or_refused() -> None:
    async with (
        venue_chain(CHAIN_ID) as (_, dev, _pool),
        FaultProxy(dev.url) as proxy,
        RpcPool(chain="v", chain_id=CHAIN_ID, urls=[proxy.url], max_attempts=1) as flaky,
    ):
        await proxy.set_mode(FaultMode.HTTP500)
        feed = _feed(proxy.url, "0x" + "12" * 20, flaky)
        results = feed.results(PlanPricing)
        first = await anext(results)
        assert (first.stale, dict(first.accounts)) == (True, {})  # nothing known: nothing zero
        await proxy.set_mode(FaultMode.PASS)

        async def until_set_up() -> None:
            while True:
                assert (await anext(results)).stale  # retried until the chain answers

        with pytest.raises(VenueSetupError, match="venue aave-feed: no contract code at"):
            await until_set_up()


async def test_reads_follow_blocks_and_prices() -> None:
    async with venue_chain(CHAIN_ID) as (_, dev, pool):
        market = await deploy_aave_market(dev)
        weth = market.reserve("WETH").address.lower()
        usdc = market.reserve("USDC")
        await open_positions(
            market, {ALICE: [("supply", "WETH", 10**18), ("borrow", "USDC", usdc.units(2_300))]}
        )
        feed = _feed(dev.url, market.provider.address, pool)
        await feed.setup()
        prices = [PlanPricing(usd={weth: Decimal(3_000)}, drift_threshold=Decimal("0.05"))]
        read = await feed.poll_once(lambda: prices[0])
        assert read is not None
        assert read.accounts[ALICE].flags == frozenset()
        assert await feed.poll_once(lambda: prices[0]) is None  # same block, same prices
        prices[0] = PlanPricing(usd={weth: Decimal(2_700)}, drift_threshold=Decimal("0.05"))
        again = await feed.poll_once(lambda: prices[0])
        assert again is not None
        entry = again.accounts[ALICE]
        assert again.block_hash == read.block_hash
        assert ORACLE_DRIFT in entry.flags
        assert STALE_CHAIN not in entry.flags
        assert entry.liquidatable is False  # the venue's own rule: its oracle still says 3,000
        assert entry.health_at_consensus is not None
        assert entry.health_at_consensus < 10**18 <= (entry.health_raw or 0)
        assert again.drifting == frozenset({weth})
