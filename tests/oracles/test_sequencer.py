"""Sources on an L2 whose sequencer is down (or in grace, or not confirmed up since the quote)
are not used, on Anvil with ``SequencerUptimeFeed`` and ``MockAggregatorV3`` through the
``OracleService`` the daemon builds; and the ``sequencer_poll_interval_s`` key."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from core.domain import PriceStatus
from core.errors import ConfigError
from daemon.config.load import parse_config
from daemon.wiring import build_oracle_service, open_oracle
from devnet import DevChain
from oracles.model import AssetPrice, DropReason, HoldReason
from oracles.sequencer import SequencerStatus
from tests.pricekit import PriceServer, coinbase, oracle_config_data
from tests.watchkit import chain_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

D = Decimal
FEED = "MockAggregatorV3"
UPTIME = "SequencerUptimeFeed"
HOUR_S = 3_600
WAIT_S = 30.0  # generous bound for a background poller to catch up


@pytest.fixture
async def exchange() -> AsyncIterator[PriceServer]:
    async with PriceServer() as server:
        server.set("ETH-USD", "3000")
        yield server


class L2:
    """Chain ``a`` as an L2: an uptime feed (up for two hours) and an ETH/USD feed at 3,000."""

    def __init__(self, dev: DevChain, uptime: str, feed: str) -> None:
        self.dev, self.uptime, self.feed = dev, uptime, feed

    @classmethod
    async def deploy(cls, dev: DevChain) -> L2:
        uptime = await dev.deploy(UPTIME)
        now = await dev.block_timestamp()
        await dev.transact(uptime, UPTIME, "setStatusAt", False, now - 2 * HOUR_S)
        return cls(dev, uptime, await dev.deploy(FEED, 8, "ETH / USD", 3_000 * 10**8))

    async def set_price(self, price: str) -> None:
        await self.dev.transact(self.feed, FEED, "setAnswer", int(D(price) * 10**8))

    async def sequencer(self, down: bool, since: int | None = None) -> None:
        if since is None:
            await self.dev.transact(self.uptime, UPTIME, "setStatus", down)
        else:
            await self.dev.transact(self.uptime, UPTIME, "setStatusAt", down, since)

    def config(self, sources: list[dict[str, Any]], **chain: Any) -> Any:
        # confirm_rounds 1: no jump breaker, so only the sequencer gate keeps a crazy price out
        asset = {
            "symbol": "ETH",
            "oracle": {"min_sources": 1, "confirm_rounds": 1},
            "sources": sources,
        }
        entry = chain_entry(
            "a",
            self.dev.chain_id,
            self.dev.url,
            sequencer_uptime_feed=self.uptime,
            sequencer_grace_period_s=HOUR_S,
            **chain,
        )
        return parse_config(oracle_config_data([asset], [entry]))

    def feed_source(self, **extra: Any) -> dict[str, Any]:
        return {"kind": "chainlink", "chain": "a", "address": self.feed, "name": "l2feed", **extra}


async def test_an_l2_feed_is_dropped_while_its_sequencer_is_down_or_in_grace(
    dev_a: DevChain, exchange: PriceServer
) -> None:
    l2 = await L2.deploy(dev_a)
    cfg = l2.config([l2.feed_source(), coinbase(exchange, name="coinbase")])
    async with open_oracle(cfg) as oracle:
        eth = (await oracle.run_round())["ETH"]
        assert (eth.status, eth.price, set(eth.used)) == (
            PriceStatus.OK,
            D(3000),
            {"l2feed", "coinbase"},
        )

        # The sequencer goes down and the L2 feed goes crazy: the feed is not used for any
        # asset; the exchange alone still prices ETH.
        await l2.sequencer(down=True)
        await l2.set_price("0.5")
        eth = (await oracle.run_round())["ETH"]
        assert (eth.status, eth.price, eth.used) == (PriceStatus.OK, D(3000), ("coinbase",))
        assert eth.dropped == {"l2feed": DropReason.SEQUENCER_DOWN}
        assert oracle.round_quote("ETH", "l2feed").detail == "chain a: sequencer DOWN"
        assert oracle.latest_quote("ETH", "l2feed").price == D("0.5")  # read, never used

        # Up again, but inside the grace period: still not trusted.
        await l2.sequencer(down=False)
        eth = (await oracle.run_round())["ETH"]
        assert eth.dropped == {"l2feed": DropReason.SEQUENCER_DOWN}
        assert oracle.round_quote("ETH", "l2feed").detail == "chain a: sequencer GRACE"
        assert oracle.sequencer_status("a") is SequencerStatus.GRACE

        # Up for longer than the grace period: the feed counts again (and disagrees).
        await l2.set_price("3001")
        await l2.sequencer(down=False, since=await dev_a.block_timestamp() - 2 * HOUR_S)
        eth = (await oracle.run_round())["ETH"]
        assert eth.dropped == {}
        assert eth.price == D("3000.5")


async def test_an_asset_priced_only_on_the_l2_goes_stale_on_its_last_good_price(
    dev_a: DevChain,
) -> None:
    l2 = await L2.deploy(dev_a)
    async with open_oracle(l2.config([l2.feed_source()])) as oracle:
        assert (await oracle.run_round())["ETH"].price == D(3000)
        await l2.sequencer(down=True)
        await l2.set_price("0.5")
        eth = (await oracle.run_round())["ETH"]
    assert (eth.status, eth.hold_reason) == (PriceStatus.STALE, HoldReason.NO_VALID_SOURCE)
    assert (eth.price, eth.held) == (D(3000), True)


async def test_a_quote_is_used_only_once_a_later_reading_says_up(dev_a: DevChain) -> None:
    """The uptime feed is polled once an hour here: only the reading sent after each quote
    (not the poller) can keep the crazy price out, and it does."""
    l2 = await L2.deploy(dev_a)
    cfg = l2.config([l2.feed_source(poll_interval_s=0.05)], sequencer_poll_interval_s=HOUR_S)
    async with open_oracle(cfg) as oracle:
        rounds = oracle.rounds(0.05)
        assert (await anext(rounds))["ETH"].price == D(3000)
        # The outage and the crazy price land in one block.
        flip = await dev_a.encode(l2.uptime, UPTIME, "setStatus", True)
        crash = await dev_a.encode(l2.feed, FEED, "setAnswer", 5 * 10**7)
        await dev_a.rpc("evm_setAutomine", [False])
        try:
            hashes = [
                await dev_a.rpc("eth_sendTransaction", [{"from": sender, "to": to, "data": d}])
                for sender, to, d in (
                    (dev_a.accounts[1], l2.uptime, flip),
                    (dev_a.accounts[2], l2.feed, crash),
                )
            ]
            await dev_a.mine()
        finally:
            await dev_a.rpc("evm_setAutomine", [True])
        await dev_a.wait_receipts(hashes)
        after: list[AssetPrice] = []
        crazy_rounds = 0
        async with asyncio.timeout(WAIT_S):
            async for prices in rounds:
                after.append(prices["ETH"])
                crazy_rounds += oracle.latest_quote("ETH", "l2feed").price == D("0.5")
                if crazy_rounds >= 5:  # rounds over the crazy quote, fetched by the poller
                    break
        await rounds.aclose()
        assert all(eth.price == D(3000) for eth in after), [str(e.price) for e in after]
        assert after[-1].dropped == {"l2feed": DropReason.SEQUENCER_DOWN}
        assert oracle.sequencer_status("a") is SequencerStatus.DOWN  # read after the quote


def test_sequencer_poll_interval_is_configurable_finite_and_positive() -> None:
    def chain_with(**extra: Any) -> dict[str, Any]:
        return chain_entry("a", 1, "http://127.0.0.1:1", **extra)

    def build(**extra: Any) -> Any:
        source = {"kind": "chainlink", "chain": "a", "address": "0x" + "11" * 20}
        asset = {"symbol": "ETH", "sources": [source]}
        return parse_config(oracle_config_data([asset], [chain_with(**extra)]))

    uptime = "0x" + "22" * 20
    default = build(sequencer_uptime_feed=uptime)
    assert default.chains[0].sequencer_poll_interval_s == 2.0
    service = build_oracle_service(
        build(sequencer_uptime_feed=uptime, sequencer_poll_interval_s=0.5), {"a": _NoRpc()}
    )
    assert [f.poll_interval_s for f in service.sequencer_feeds] == [0.5]
    for bad in (0, -1, math.inf, math.nan, "soon"):
        with pytest.raises(ConfigError, match=r"chains\[0\]\.sequencer_poll_interval_s"):
            build(sequencer_poll_interval_s=bad)


class _NoRpc:
    """An RPC pool that is never called (the service is built, not run)."""

    async def request(self, method: str, params: Any = ()) -> Any:
        raise AssertionError("not called")

    async def batch(self, calls: Any) -> list[Any]:
        raise AssertionError("not called")
