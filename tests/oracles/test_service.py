"""The oracle end to end: Chainlink feeds on Anvil and HTTP APIs on loopback, through
``OracleService`` built from a config, round after round.

Every source's clock is set by the test (feeds via ``setRoundData``, servers via ``clock``)
and rounds run at an explicit ``now``, so freshness and jump confirmations are exact.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from core.domain import PriceStatus
from daemon.config.load import parse_config
from daemon.wiring import open_oracle
from devnet import DevChain
from oracles.model import DropReason, HoldReason
from oracles.service import OracleService
from tests.pricekit import PriceServer, binance, coinbase, oracle_config_data
from tests.watchkit import chain_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

D = Decimal
FEED = "MockAggregatorV3"


@pytest.fixture
async def exchanges() -> AsyncIterator[tuple[PriceServer, PriceServer]]:
    async with PriceServer() as cb, PriceServer() as bn:
        yield cb, bn


class Market:
    """One asset priced by a Chainlink feed on chain a, Coinbase and Binance on loopback."""

    def __init__(self, dev: DevChain, feed: str, cb: PriceServer, bn: PriceServer) -> None:
        self.dev, self.feed, self.cb, self.bn = dev, feed, cb, bn

    async def set(self, at: int, feed: str, cb: str | None = None, bn: str | None = None) -> None:
        """Every source reports its price observed at ``at`` (defaults: the feed's price)."""
        await self.dev.transact(self.feed, FEED, "setRoundData", int(D(feed) * 10**8), at, at)
        self.cb.set("ETH-USD", cb or feed)
        self.bn.set("ETHUSDT", bn or feed)
        self.cb.clock = self.bn.clock = at


async def market_oracle(
    dev: DevChain, cb: PriceServer, bn: PriceServer, **oracle: Any
) -> tuple[Market, Any]:
    feed = await dev.deploy(FEED, 8, "ETH / USD", 3_000 * 10**8)
    asset = {
        "symbol": "ETH",
        "oracle": {"min_sources": 2, "max_deviation": 0.02, "max_jump": 0.2, **oracle},
        "sources": [
            {"kind": "chainlink", "chain": "a", "address": feed, "name": "feed"},
            coinbase(cb, name="coinbase"),
            binance(bn, name="binance"),
        ],
    }
    config = parse_config(oracle_config_data([asset], [chain_entry("a", dev.chain_id, dev.url)]))
    return Market(dev, feed, cb, bn), open_oracle(config)


async def test_three_agreeing_sources_give_their_median(
    dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    market, opened = await market_oracle(dev_a, *exchanges)
    t0 = int(time.time())
    await market.set(t0, "3000.00", cb="3000.50", bn="3001.00")
    async with opened as oracle:
        eth = (await oracle.run_round(t0 + 1))["ETH"]
    assert eth.status is PriceStatus.OK
    assert eth.price == D("3000.50")
    assert set(eth.used) == {"feed", "coinbase", "binance"}
    assert eth.dropped == {}
    assert eth.observed_at == t0
    assert eth.spread == pytest.approx(1 / 3000)
    assert eth.price_low == eth.price_high == eth.price  # no confidence anywhere


@pytest.mark.parametrize("manipulated", ["4500", "1500"])
async def test_one_source_manipulated_by_50_percent_is_dropped_and_the_price_stays(
    dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer], manipulated: str
) -> None:
    market, opened = await market_oracle(dev_a, *exchanges)
    t0 = int(time.time())
    async with opened as oracle:
        await market.set(t0, "3000")
        assert (await oracle.run_round(t0))["ETH"].price == D(3000)
        for k in range(1, 6):  # it never gets through, however long it lasts
            await market.set(t0 + 10 * k, "3000", cb=manipulated)
            eth = (await oracle.run_round(t0 + 10 * k))["ETH"]
            assert eth.status is PriceStatus.OK
            assert eth.price == D(3000)
            assert eth.dropped == {"coinbase": DropReason.OUTLIER}
            assert eth.pending is None


async def test_two_of_three_stale_hold_the_price_then_recover_without_restart(
    dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    market, opened = await market_oracle(dev_a, *exchanges)
    t0 = int(time.time())
    async with opened as oracle:
        await market.set(t0, "3000")
        assert (await oracle.run_round(t0))["ETH"].status is PriceStatus.OK
        # The exchanges stop updating (their clock stays at t0, max_age_s 60); the feed moves.
        await market.dev.transact(market.feed, FEED, "setRoundData", 3010 * 10**8, t0, t0 + 120)
        eth = (await oracle.run_round(t0 + 120))["ETH"]
        assert eth.status is PriceStatus.DEGRADED
        assert eth.hold_reason is HoldReason.NO_QUORUM
        assert eth.held
        assert eth.price == D(3000)
        assert eth.dropped == {
            "coinbase": DropReason.STALE,
            "binance": DropReason.STALE,
            "feed": DropReason.NO_QUORUM,
        }
        await market.set(t0 + 130, "3010")
        eth = (await oracle.run_round(t0 + 130))["ETH"]
        assert eth.status is PriceStatus.OK
        assert eth.price == D(3010)
        assert not eth.held


async def test_a_real_30_percent_crash_passes_after_confirm_rounds(
    dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    market, opened = await market_oracle(dev_a, *exchanges, confirm_rounds=3)
    t0 = int(time.time())
    async with opened as oracle:
        await market.set(t0, "3000")
        assert (await oracle.run_round(t0))["ETH"].price == D(3000)
        statuses = []
        for k, level in enumerate(["2100", "2095", "2090"], start=1):
            await market.set(t0 + 5 * k, level)
            eth = (await oracle.run_round(t0 + 5 * k))["ETH"]
            statuses.append((eth.status, eth.price))
    assert statuses == [
        (PriceStatus.TRIPPED, D(3000)),
        (PriceStatus.TRIPPED, D(3000)),
        (PriceStatus.OK, D(2090)),  # the latest level once confirmed
    ]


async def test_repeating_the_same_crash_data_does_not_confirm_it(
    dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    market, opened = await market_oracle(dev_a, *exchanges, confirm_rounds=2)
    t0 = int(time.time())
    async with opened as oracle:
        await market.set(t0, "3000")
        await oracle.run_round(t0)
        await market.set(t0 + 5, "2000")
        for k in range(4):  # nobody publishes anything newer: one confirmation, not four
            eth = (await oracle.run_round(t0 + 6 + k))["ETH"]
            assert eth.status is PriceStatus.TRIPPED
            assert eth.pending is not None
            assert eth.pending.confirmations == 1


async def test_a_single_source_spike_never_passes_even_against_two_stale_sources(
    dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    market, opened = await market_oracle(dev_a, *exchanges, confirm_rounds=2)
    t0 = int(time.time())
    async with opened as oracle:
        await market.set(t0, "3000")
        await oracle.run_round(t0)
        for k in range(1, 5):
            # Only the feed is fresh, and it spikes: one source is never a quorum.
            await market.dev.transact(
                market.feed, FEED, "setRoundData", 6000 * 10**8, t0 + 100 * k, t0 + 100 * k
            )
            eth = (await oracle.run_round(t0 + 100 * k))["ETH"]
            assert eth.status is PriceStatus.DEGRADED
            assert eth.price == D(3000)
            assert eth.dropped["feed"] is DropReason.NO_QUORUM


async def test_run_round_fetches_fresh_and_rounds_reuse_latest_quotes(
    dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    market, opened = await market_oracle(dev_a, *exchanges)
    t0 = int(time.time())
    async with opened as oracle:
        assert isinstance(oracle, OracleService)
        before = market.cb.requests
        await market.set(t0, "3000")
        await oracle.run_round(t0)
        assert market.cb.requests == before + 1
        await market.set(t0 + 1, "3001")
        eth = (await oracle.run_round(t0 + 2, refresh=False))["ETH"]
        assert market.cb.requests == before + 1
        assert eth.price == D(3000)  # nothing new was fetched
        assert oracle.latest_quote("ETH", "coinbase").price == D(3000)
