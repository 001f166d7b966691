"""On-chain sources on Anvil through ``OracleService``: Chainlink feeds (8 and 18 decimals, a
decimals change, revert/zero/stale/…), L2 sequencer-uptime feeds and their grace period, the
Uniswap v3 TWAP anchor's veto."""

from __future__ import annotations

import logging
import math
import time
from decimal import Decimal
from typing import Any

import pytest

from core.domain import PriceStatus
from daemon.config.load import parse_config
from daemon.wiring import open_oracle
from devnet import DevChain
from oracles.model import DropReason, HoldReason
from oracles.sequencer import SequencerStatus
from tests.pricekit import oracle_config_data
from tests.watchkit import chain_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

D = Decimal
FEED = "MockAggregatorV3"
HOUR_S = 3_600
NO_CODE = "0x000000000000000000000000000000000000dead"
PYTH_ID = "0x" + "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"


def feed_source(address: str, name: str, chain: str = "a", **extra: Any) -> dict[str, Any]:
    return {"kind": "chainlink", "chain": chain, "address": address, "name": name, **extra}


def config(dev: DevChain, sources: list[dict[str, Any]], oracle: Any = None, **chain: Any) -> Any:
    asset = {"symbol": "ETH", "oracle": oracle or {"min_sources": 2}, "sources": sources}
    return parse_config(
        oracle_config_data([asset], [chain_entry("a", dev.chain_id, dev.url, **chain)])
    )


async def test_feeds_with_8_and_18_decimals_and_a_decimals_change(
    dev_a: DevChain, caplog: pytest.LogCaptureFixture
) -> None:
    t0 = int(time.time())
    eight = await dev_a.deploy(FEED, 8, "ETH / USD", 0)
    eighteen = await dev_a.deploy(FEED, 18, "ETH / USD", 0)
    await dev_a.transact(eight, FEED, "setRoundData", 3_000_12345678, t0, t0)
    await dev_a.transact(eighteen, FEED, "setRoundData", 3_000_123456780000000000, t0, t0)
    cfg = config(dev_a, [feed_source(eight, "eight"), feed_source(eighteen, "eighteen")])
    async with open_oracle(cfg) as oracle:
        eth = (await oracle.run_round(t0))["ETH"]
        assert eth.status is PriceStatus.OK
        assert eth.price == D("3000.12345678")
        assert eth.spread == 0.0
        # The feed is migrated to 18 decimals: the raw answer is re-read with the new scale.
        await dev_a.transact(eight, FEED, "setDecimals", 18)
        await dev_a.transact(eight, FEED, "setRoundData", 3_000_123456780000000000, t0, t0 + 1)
        caplog.set_level(logging.WARNING)
        eth = (await oracle.run_round(t0 + 1))["ETH"]
    assert eth.status is PriceStatus.OK
    assert eth.price == D("3000.12345678")
    assert "oracle.feed_decimals_changed source=eight" in caplog.text
    assert "old=8 new=18" in caplog.text


async def test_revert_zero_stale_and_bad_timestamps_are_distinct_reasons(dev_a: DevChain) -> None:
    t0 = int(time.time())
    good = await dev_a.deploy(FEED, 8, "ETH / USD", 0)
    bad = await dev_a.deploy(FEED, 8, "ETH / USD", 0)
    await dev_a.transact(good, FEED, "setRoundData", 3_000 * 10**8, t0, t0)
    cfg = config(
        dev_a,
        [
            feed_source(good, "good"),
            feed_source(bad, "bad", max_age_s=HOUR_S),
            feed_source(NO_CODE, "nocode"),
        ],
    )
    async with open_oracle(cfg) as oracle:

        async def reason_of_bad() -> DropReason:
            return (await oracle.run_round(t0))["ETH"].dropped["bad"]

        await dev_a.transact(bad, FEED, "setReverting", True)
        assert await reason_of_bad() is DropReason.REVERTED
        assert "feed disabled" in oracle.latest_quote("ETH", "bad").detail
        await dev_a.transact(bad, FEED, "setReverting", False)
        for answer, updated_at, reason in [
            (0, t0, DropReason.ZERO_OR_NEGATIVE),
            (-3_000 * 10**8, t0, DropReason.ZERO_OR_NEGATIVE),
            (3_000 * 10**8, 0, DropReason.NO_TIMESTAMP),
            (3_000 * 10**8, t0 - HOUR_S - 1, DropReason.STALE),
            (3_000 * 10**8, t0 + 600, DropReason.FUTURE_TIMESTAMP),
        ]:
            await dev_a.transact(bad, FEED, "setRoundData", answer, updated_at, updated_at)
            assert await reason_of_bad() is reason
        eth = (await oracle.run_round(t0))["ETH"]
        assert eth.dropped["nocode"] is DropReason.MALFORMED
        assert "no data" in oracle.latest_quote("ETH", "nocode").detail
        assert eth.status is PriceStatus.DEGRADED  # one good feed is not a quorum of two


async def test_sequencer_down_inside_grace_and_up(dev_a: DevChain) -> None:
    t0 = int(time.time())
    uptime = await dev_a.deploy("SequencerUptimeFeed")
    feed = await dev_a.deploy(FEED, 8, "ETH / USD", 0)
    cfg = config(
        dev_a,
        [feed_source(feed, "feed")],
        sequencer_uptime_feed=uptime,
        sequencer_grace_period_s=HOUR_S,
    )
    async with open_oracle(cfg) as oracle:

        async def status(down: bool, since: int, at: int = t0) -> SequencerStatus | None:
            await dev_a.transact(uptime, "SequencerUptimeFeed", "setStatusAt", down, since)
            await oracle.run_round(at)
            return oracle.sequencer_status("a", at)

        assert await status(False, t0 - 2 * HOUR_S) is SequencerStatus.UP
        assert await status(True, t0 - 10) is SequencerStatus.DOWN
        assert await status(True, t0 - 30 * 86_400) is SequencerStatus.DOWN  # never "stale"
        assert await status(False, t0 - 60) is SequencerStatus.GRACE
        # The grace period runs out by itself, measured from startedAt.
        assert oracle.sequencer_status("a", t0 + HOUR_S - 60) is SequencerStatus.UP
        assert oracle.sequencer_status("b") is None  # no feed configured


async def test_an_unreadable_sequencer_feed_counts_as_down(dev_a: DevChain) -> None:
    feed = await dev_a.deploy(FEED, 8, "ETH / USD", 0)
    cfg = config(dev_a, [feed_source(feed, "feed")], sequencer_uptime_feed=NO_CODE)
    async with open_oracle(cfg) as oracle:
        await oracle.run_round()
        assert oracle.sequencer_status("a") is SequencerStatus.DOWN
        assert "no data" in oracle.sequencers["a"].detail


def tick_for(price: float) -> int:
    return round(math.log(price) / math.log(1.0001))


async def test_twap_anchor_vetoes_but_never_sets_a_price(dev_a: DevChain) -> None:
    window = 60
    start = await dev_a.block_timestamp() + 1
    await dev_a.set_next_block_timestamp(start)
    pool = await dev_a.deploy("MockUniswapV3Pool", dev_a.accounts[5], dev_a.accounts[6], 0)
    await dev_a.transact(pool, "MockUniswapV3Pool", "setTick", tick_for(3000))
    feeds = [await dev_a.deploy(FEED, 8, "ETH / USD", 0) for _ in range(2)]
    twap = {
        "kind": "uniswap_v3_twap",
        "chain": "a",
        "address": pool,
        "name": "twap",
        "window_s": window,
        "decimals0": 0,
        "decimals1": 0,
    }
    sources = [feed_source(feeds[0], "f1"), feed_source(feeds[1], "f2"), twap]
    cfg = config(dev_a, sources, oracle={"min_sources": 2, "anchor_tolerance": 0.05})
    await dev_a.set_next_block_timestamp(start + 2 * window)  # the window is all at 3,000
    await dev_a.mine()

    async def round_at(feed_price: int, age_s: int = 0) -> Any:
        for feed in feeds:
            at = await dev_a.block_timestamp() - age_s
            await dev_a.transact(feed, FEED, "setRoundData", feed_price * 10**8, at, at)
        return (await oracle.run_round(await dev_a.block_timestamp()))["ETH"]

    async with open_oracle(cfg) as oracle:
        eth = await round_at(3000)
        assert eth.status is PriceStatus.OK
        assert eth.anchors == ("twap",)
        assert eth.used == ("f1", "f2")
        assert oracle.latest_quote("ETH", "twap").price == pytest.approx(D(3000), rel=D("0.0001"))
        # Both feeds say 3,200 (+6.7 %, inside max_jump) but the pool says 3,000 ± 5 %.
        eth = await round_at(3200)
        assert eth.status is PriceStatus.DEGRADED
        assert eth.hold_reason is HoldReason.ANCHOR_VETO
        assert eth.price == D(3000)
        assert eth.held
        assert eth.dropped == {"f1": DropReason.ANCHOR_VETO, "f2": DropReason.ANCHOR_VETO}
        assert (await round_at(3100)).price == D(3100)  # within tolerance: accepted
        # Only the anchor is fresh: it never sets a price, the last good one is held.
        eth = await round_at(3000, age_s=2 * HOUR_S)
        assert eth.status is PriceStatus.STALE
        assert eth.price == D(3100)
        assert eth.anchors == ("twap",)


async def test_twap_window_longer_than_the_pool_history_reverts(dev_a: DevChain) -> None:
    pool = await dev_a.deploy("MockUniswapV3Pool", dev_a.accounts[5], dev_a.accounts[6], 0)
    feed = await dev_a.deploy(FEED, 8, "ETH / USD", 0)
    twap = {
        "kind": "uniswap_v3_twap",
        "chain": "a",
        "address": pool,
        "name": "twap",
        "window_s": 10 * HOUR_S,
        "decimals0": 18,
        "decimals1": 6,
    }
    async with open_oracle(config(dev_a, [feed_source(feed, "feed"), twap])) as oracle:
        eth = (await oracle.run_round())["ETH"]
    assert eth.dropped["twap"] is DropReason.REVERTED
