"""Helpers for watcher tests: configs for devnet chains, and a watcher running in a task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from chains.rpc import RpcPool
from chains.watcher import BalanceUpdate, ChainWatcher
from daemon.config.load import parse_config
from daemon.config.model import ChainConfig, Config
from daemon.wiring import build_watcher
from tests.waitkit import WAIT_S


def chain_entry(name: str, chain_id: int, *urls: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "chain_id": chain_id,
        "rpc_urls": list(urls),
        "confirmations": 0,
        "poll_interval_s": 0.05,
        "request_timeout_s": 2.0,
        **extra,
    }


def token_entry(chain: str, address: str, asset: str = "ETH", **extra: Any) -> dict[str, Any]:
    return {
        "chain": chain,
        "address": address,
        "asset": asset,
        "role": "collateral",
        "weight": 0.8,
        **extra,
    }


def make_config(
    chains: list[dict[str, Any]],
    tokens: list[dict[str, Any]],
    accounts: list[str],
    discover: bool = False,
) -> Config:
    return parse_config(
        {"chains": chains, "tokens": tokens, "accounts": accounts, "discover_accounts": discover}
    )


class RunningWatcher:
    """A watcher following its chain in a background task; updates land in a queue."""

    def __init__(self, watcher: ChainWatcher) -> None:
        self.watcher = watcher
        self.queue: asyncio.Queue[BalanceUpdate] = asyncio.Queue()

    async def _run(self) -> None:
        async for update in self.watcher.updates():
            await self.queue.put(update)

    async def next_update(self, timeout: float = WAIT_S) -> BalanceUpdate:
        """The next update (a generous bound: ``tests.waitkit``)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            status = self.watcher.status()
            raise AssertionError(f"no update within {timeout:g} s; status {status!r}") from None

    async def until(
        self, predicate: Callable[[BalanceUpdate], bool], timeout: float = WAIT_S
    ) -> BalanceUpdate:
        """Wait for the first update satisfying ``predicate``; fail with the last one seen."""
        last: BalanceUpdate | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    last = await self.queue.get()
                    if predicate(last):
                        return last
        except TimeoutError:
            raise AssertionError(
                f"no matching update within {timeout:g} s; last seen: {last!r}"
            ) from None


@contextlib.asynccontextmanager
async def running_watcher(config: Config, chain: ChainConfig) -> AsyncIterator[RunningWatcher]:
    """Start a watcher on ``chain`` and stop it (and its RPC pool) afterwards."""
    async with RpcPool(
        chain=chain.name,
        chain_id=chain.chain_id,
        urls=chain.rpc_urls,
        request_timeout_s=chain.request_timeout_s,
    ) as pool:
        running = RunningWatcher(build_watcher(config, chain, pool))
        await running.watcher.setup()
        task = asyncio.create_task(running._run(), name=f"watcher:{chain.name}")
        try:
            yield running
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
