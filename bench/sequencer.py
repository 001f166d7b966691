"""How long after an L2's sequencer goes down is it noticed, and is a crazy price ever used?

One Anvil as the L2 with a ``SequencerUptimeFeed`` and an ETH ``MockAggregatorV3`` (the only
ETH source, no jump breaker), priced by the real ``OracleService`` in long-running mode
(rounds every 0.1 s). Each trial puts the sequencer up (past its grace period), then flips it
down and moves the feed to 0.5 **in one block**, and measures from that block's mining:

- ``noticed_s``: until ``sequencer_status`` says DOWN — what marks the chain
  ``SEQUENCER_DOWN`` (the daemon's chain-status task adds up to 0.25 s and one engine cycle);
- ``crazy_rounds``: rounds whose ETH price was the crazy one (must be 0).

Two set-ups: the L2 feed polled every 0.2 s (each of its quotes triggers an uptime reading)
and every 10 s (the Chainlink default: only the uptime poller notices). Usage::

    uv run python bench/sequencer.py [--trials 10] [--sequencer-poll 2.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from decimal import Decimal
from typing import Any

from daemon.config.load import parse_config
from daemon.wiring import open_oracle
from devnet import AnvilNode, DevChain
from oracles.sequencer import SequencerStatus

FEED = "MockAggregatorV3"
UPTIME = "SequencerUptimeFeed"
HOUR_S = 3_600
ROUND_S = 0.1
TIMEOUT_S = 30.0
CRAZY = Decimal("0.5")


def config(dev: DevChain, uptime: str, feed: str, feed_poll_s: float, seq_poll_s: float) -> Any:
    chain = {
        "name": "l2",
        "chain_id": dev.chain_id,
        "rpc_urls": [dev.url],
        "sequencer_uptime_feed": uptime,
        "sequencer_grace_period_s": HOUR_S,
        "sequencer_poll_interval_s": seq_poll_s,
    }
    source = {"kind": "chainlink", "chain": "l2", "address": feed, "max_age_s": HOUR_S}
    asset = {
        "symbol": "ETH",
        "oracle": {"min_sources": 1, "confirm_rounds": 1},
        "sources": [{**source, "poll_interval_s": feed_poll_s}],
    }
    token = {"chain": "l2", "address": "0x" + "11" * 20, "asset": "ETH", "role": "collateral"}
    return parse_config(
        {
            "chains": [chain],
            "tokens": [{**token, "weight": 0.8}],
            "accounts": ["0x" + "22" * 20],
            "assets": [asset],
        }
    )


async def one_block(dev: DevChain, calls: list[tuple[str, str]]) -> None:
    """Send ``(to, calldata)`` transactions and mine them in a single block."""
    await dev.rpc("evm_setAutomine", [False])
    try:
        hashes = [
            await dev.rpc("eth_sendTransaction", [{"from": dev.accounts[i], "to": to, "data": d}])
            for i, (to, d) in enumerate(calls, start=1)
        ]
        await dev.mine()
    finally:
        await dev.rpc("evm_setAutomine", [True])
    await dev.wait_receipts(hashes)


async def trials(
    dev: DevChain, feed_poll_s: float, seq_poll_s: float, count: int
) -> tuple[list[float], int]:
    uptime = await dev.deploy(UPTIME)
    feed = await dev.deploy(FEED, 8, "ETH / USD", 2_000 * 10**8)
    noticed: list[float] = []
    crazy = 0
    async with open_oracle(config(dev, uptime, feed, feed_poll_s, seq_poll_s)) as oracle:
        rounds = oracle.rounds(ROUND_S)
        for _ in range(count):
            since = await dev.block_timestamp() - 2 * HOUR_S
            await dev.transact(uptime, UPTIME, "setStatusAt", False, since)
            await dev.transact(feed, FEED, "setAnswer", 2_000 * 10**8)
            async with asyncio.timeout(TIMEOUT_S):
                async for prices in rounds:  # until the sources are trusted again
                    if prices["ETH"].price == Decimal(2000) and not prices["ETH"].dropped:
                        break
            flip = await dev.encode(uptime, UPTIME, "setStatus", True)
            crash = await dev.encode(feed, FEED, "setAnswer", 5 * 10**7)
            await one_block(dev, [(uptime, flip), (feed, crash)])
            mined = time.monotonic()
            async with asyncio.timeout(TIMEOUT_S):
                async for prices in rounds:
                    crazy += prices["ETH"].price == CRAZY
                    if oracle.sequencer_status("l2") is SequencerStatus.DOWN:
                        noticed.append(time.monotonic() - mined)
                        break
            for _ in range(5):  # a few more rounds: still never the crazy price
                crazy += (await anext(rounds))["ETH"].price == CRAZY
        await rounds.aclose()
    return noticed, crazy


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--sequencer-poll", type=float, default=2.0)
    args = parser.parse_args()
    async with AnvilNode(chain_id=4242) as node, DevChain(node.url) as dev:
        print(f"sequencer_poll_interval_s={args.sequencer_poll:g}, {args.trials} trials each")
        print("| L2 feed poll | noticed_s median | noticed_s max | crazy rounds |")
        print("|---:|---:|---:|---:|")
        for feed_poll_s in (0.2, 10.0):
            noticed, crazy = await trials(dev, feed_poll_s, args.sequencer_poll, args.trials)
            print(
                f"| {feed_poll_s:g} s | {statistics.median(noticed):.2f} | "
                f"{max(noticed):.2f} | {crazy} |"
            )


if __name__ == "__main__":
    asyncio.run(main())
