"""The real daemon when an L2's sequencer goes down and, in the same block, the L2's ETH feed
goes crazy (0.5): the feed is not used for any asset, so an L1-only account never becomes
liquidatable; the account holding debt on the L2 is held (``SEQUENCER_DOWN``) within the
sequencer poll interval; no account becomes actionable and no ``liquidatable`` event goes out.

ETH is priced by that L2 feed alone, with ``confirm_rounds: 1`` (no jump breaker): the only
thing between the crazy price and the keepers is the sequencer check.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.daemonkit import (
    BOB,
    World,
    eventually,
    get_json,
    running_daemon,
    world,
)
from tests.mqttkit import Subscriber
from tests.storekit import postgres_database

CAROL = "0x" + "c0" * 20  # L1 only: WETH collateral and USDC debt, both on l1
FEED = "MockAggregatorV3"
UPTIME = "SequencerUptimeFeed"
HOUR_S = 3_600
QUIET_S = 1.0  # a short look once the crazy price is known dropped: no event follows


@pytest.fixture
async def chaos_world(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        yield w


class L2Setup:
    """The L2's uptime feed and ETH feed, and the config around them."""

    def __init__(self, w: World, uptime: str, feed: str, l1_debt: str) -> None:
        self.w, self.uptime, self.feed, self.l1_debt = w, uptime, feed, l1_debt

    @classmethod
    async def deploy(cls, w: World) -> L2Setup:
        uptime = await w.l2.deploy(UPTIME)
        up_since = await w.l2.block_timestamp() - 2 * HOUR_S  # up, and past its grace period
        await w.l2.transact(uptime, UPTIME, "setStatusAt", False, up_since)
        feed = await w.l2.deploy(FEED, 8, "ETH / USD", 2_000 * 10**8)
        l1_debt = (await w.l1.deploy("MintableERC20", "l1 USDC", "lUSDC", 6)).lower()
        await w.l1.transact(w.weth, "MintableERC20", "mint", CAROL, 10**18)
        await w.l1.transact(l1_debt, "MintableERC20", "mint", CAROL, 1500 * 10**6)
        return cls(w, uptime, feed, l1_debt)

    def config(self) -> dict[str, Any]:
        data = self.w.config()
        l2 = next(c for c in data["chains"] if c["name"] == "l2")
        l2.update(sequencer_uptime_feed=self.uptime, sequencer_grace_period_s=HOUR_S)
        data["tokens"].append(
            {
                "chain": "l1",
                "address": self.l1_debt,
                "asset": "USDC",
                "role": "liability",
                "weight": 1.0,
            }
        )
        data["accounts"] = [BOB, CAROL]
        eth = next(a for a in data["assets"] if a["symbol"] == "ETH")
        eth["oracle"] = {"min_sources": 1, "confirm_rounds": 1}
        source = {"kind": "chainlink", "chain": "l2", "address": self.feed, "name": "l2feed"}
        eth["sources"] = [{**source, "max_age_s": HOUR_S, "poll_interval_s": 0.2}]
        return data

    async def outage_and_crash(self) -> float:
        """Flip the sequencer down and the feed to 0.5, sent back to back (the same block,
        or the flip first); the time the second was mined."""
        l2 = self.w.l2
        flip = await l2.encode(self.uptime, UPTIME, "setStatus", True)
        crash = await l2.encode(self.feed, FEED, "setAnswer", 5 * 10**7)
        hashes = [
            await l2.rpc("eth_sendTransaction", [{"from": sender, "to": to, "data": data}])
            for sender, to, data in (
                (l2.accounts[1], self.uptime, flip),
                (l2.accounts[2], self.feed, crash),
            )
        ]
        await l2.wait_receipts(hashes)
        return time.monotonic()


async def ok_json(w: World, path: str) -> Any:
    status, body = await get_json(w, path)
    assert status == 200, (path, body)
    return body


async def account(w: World, address: str) -> dict[str, Any]:
    state: dict[str, Any] = (await ok_json(w, f"/v1/accounts/{address}"))["state"]
    return state


def published_states(sub: Subscriber, w: World, address: str) -> list[dict[str, Any]]:
    return [json.loads(p) for p in sub.payloads(f"{w.prefix}/accounts/{address}")]


async def test_a_dead_sequencer_and_a_crazy_l2_price_make_nothing_actionable(
    chaos_world: World,
) -> None:
    w = chaos_world
    setup = await L2Setup.deploy(w)
    async with Subscriber(w.broker.port, f"{w.prefix}/#") as sub, running_daemon(w, setup.config()):
        for who in (BOB, CAROL):  # 1 WETH x 2000 x 0.8 = 1600 against 1500: healthy
            assert (await account(w, who))["flags"] == [], who
        seen = {who: len(published_states(sub, w, who)) for who in (BOB, CAROL)}

        mined = await setup.outage_and_crash()

        async def bob_held() -> float | None:
            flags = (await account(w, BOB))["flags"]
            return time.monotonic() - mined if "SEQUENCER_DOWN" in flags else None

        held_after_s = await eventually(bob_held, what="Bob held")

        async def eth_dropped() -> bool:
            prices = (await ok_json(w, "/v1/prices"))["prices"]
            eth = next(p for p in prices if p["asset"] == "ETH")
            return eth["dropped"] == {"l2feed": "sequencer_down"} and eth["status"] == "STALE"

        await eventually(eth_dropped, what="the L2 feed dropped as sequencer_down")
        await asyncio.sleep(QUIET_S)  # nothing liquidatable is published after that either

        # Every state published since the flip: nobody liquidatable, nobody actionable.
        for who in (BOB, CAROL):
            for state in published_states(sub, w, who)[seen[who] :]:
                assert "LIQUIDATABLE" not in state["flags"], (who, state)
                assert state["actionable"] is False, (who, state)
        assert sub.payloads(f"{w.prefix}/events/liquidatable") == []
        assert (await ok_json(w, "/v1/liquidatable"))["accounts"] == []
        carol = await account(w, CAROL)
        assert carol["held_reasons"] == ["STALE_PRICE"], carol
        prices = (await ok_json(w, "/v1/prices"))["prices"]
        eth = next(p for p in prices if p["asset"] == "ETH")
        assert (eth["status"], Decimal(eth["price"])) == ("STALE", Decimal("2000")), eth
        assert eth["dropped"] == {"l2feed": "sequencer_down"}
        chains = (await ok_json(w, "/v1/chains"))["chains"]
        assert {c["name"]: c["sequencer"] for c in chains}["l2"] == "DOWN"
    print(f"sequencer down -> Bob held after {held_after_s:.2f} s")
