"""A ``newHeads`` notification that arrives while the tracker is polling is not lost: the next
poll follows at once instead of after the poll interval."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from chains.blocks import NewBlock
from chains.heads import HeadTracker
from chains.rpc import RpcPool
from devnet import AnvilNode, DevChain

POLL_INTERVAL_S = 60.0  # far beyond the wait below: only a wake-up can bring the block
WAIT_S = 20.0
HELD_S = 1.0  # how long the slow poll holds its answer (the notification lands in it)


class HeldHeads:
    """A requester that, once armed, holds the node's answer to the next head poll for a
    while after the node gave it: a notification sent meanwhile lands during the poll."""

    def __init__(self, pool: RpcPool) -> None:
        self._pool = pool
        self.armed = False
        self.answered = asyncio.Event()

    async def request(self, method: str, params: list[Any]) -> Any:
        result = await self._pool.request(method, params)
        if method == "eth_getBlockByNumber" and self.armed:
            self.armed = False
            self.answered.set()
            await asyncio.sleep(HELD_S)
        return result

    async def request_raw(self, method: str, params_json: str) -> Any:
        return await self._pool.request_raw(method, params_json)


async def test_a_notification_during_a_poll_wakes_the_next_poll(
    chain_a: AnvilNode, dev_a: DevChain, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chains.heads")
    blocks: asyncio.Queue[int] = asyncio.Queue()
    async with RpcPool(chain="a", chain_id=dev_a.chain_id, urls=[dev_a.url]) as pool:
        held = HeldHeads(pool)
        tracker = HeadTracker(
            chain="a", requester=held, poll_interval_s=POLL_INTERVAL_S, ws_url=chain_a.ws_url
        )

        async def follow() -> None:
            async for event in tracker.events():
                if isinstance(event, NewBlock):
                    await blocks.put(event.block.number)

        task = asyncio.create_task(follow())
        try:
            first = await asyncio.wait_for(blocks.get(), WAIT_S)
            async with asyncio.timeout(WAIT_S):
                # a log line is all there is to wait for: no event to await
                while not any("heads_ws_connected" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            held.armed = True  # the poll this block wakes holds its answer
            await dev_a.mine()
            await asyncio.wait_for(held.answered.wait(), WAIT_S)
            await dev_a.mine()  # notified while that poll is still running
            seen = [await asyncio.wait_for(blocks.get(), WAIT_S)]
            async with asyncio.timeout(WAIT_S):
                while seen[-1] < first + 2:
                    seen.append(await blocks.get())
        except TimeoutError:
            pytest.fail(f"block {first + 2} not followed within {WAIT_S} s (saw {first})")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
