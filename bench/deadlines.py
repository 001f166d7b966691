"""How long the bounded failure paths take: the times the tests no longer judge.

    uv run python bench/deadlines.py            # 5 repetitions of each case
    uv run python bench/deadlines.py --repeat 20

The tests check *what* happens on these paths (one request to the hung endpoint, one timeout,
the fallback answers); this script measures *how long* it takes, on loopback:

- oracle round with one of three HTTP sources holding its answer (timeout 0.5 s): the round
  costs one timeout (was ``elapsed < 0.9 s`` in tests/oracles/test_http.py);
- RPC pool, 20 concurrent requests while the first URL hangs (timeout 0.5 s): one timeout, then
  the fallback (was ``< 2.5 s`` in tests/chains/test_rpc_pool.py);
- RPC pool, every URL refusing connections: the error (was ``< 1.5 s``), and the next request
  while all are parked: no I/O (was ``< 0.25 s``);
- RPC pool, every URL hanging (timeout 0.3 s, 3 attempts): ``RpcTimeout`` (was ``< 2.0 s``).

Prints min / median / max per case in seconds. Needs Anvil (npm ``@foundry-rs/anvil``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/deadlines.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from chains.rpc import RpcPool  # noqa: E402
from core.errors import NoHealthyEndpoint, RpcError, RpcTimeout  # noqa: E402
from daemon.config.load import parse_config  # noqa: E402
from daemon.wiring import open_oracle  # noqa: E402
from devnet import AnvilNode  # noqa: E402
from tests.faultproxy import FaultMode, FaultProxy, free_port  # noqa: E402
from tests.pricekit import (  # noqa: E402
    Mode,
    PriceServer,
    binance,
    coinbase,
    generic,
    oracle_config_data,
)
from tests.watchkit import chain_entry  # noqa: E402

CHAIN_ID = 1901
SOURCE_TIMEOUT_S = 0.5
POOL = {
    "request_timeout_s": 0.5,
    "breaker_failure_threshold": 2,
    "base_reactivation_delay_s": 0.5,
    "max_reactivation_delay_s": 1.0,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
}


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    """Seconds ``action()`` took."""
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def oracle_round_with_a_slow_source() -> float:
    async with PriceServer() as cb, PriceServer() as bn, PriceServer() as gen:
        for server in (cb, bn, gen):
            server.set("ETH-USD", "3000")
            server.set("ETHUSDT", "3000")
            server.set("ETH", "3000")
        sources = [
            coinbase(cb, name="coinbase", timeout_s=SOURCE_TIMEOUT_S),
            binance(bn, name="binance", timeout_s=SOURCE_TIMEOUT_S),
            generic(gen, name="generic", timeout_s=SOURCE_TIMEOUT_S),
        ]
        asset = {"symbol": "ETH", "oracle": {}, "sources": sources}
        chain = chain_entry("a", 1001, "http://127.0.0.1:9")  # never contacted
        config = parse_config(oracle_config_data([asset], [chain]))
        async with open_oracle(config) as oracle:
            await oracle.run_round()
            await cb.set_mode(Mode.SLOW)
            return await timed(oracle.run_round)


async def pool_failover_from_a_hung_url(anvil: str) -> float:
    async with (
        FaultProxy(anvil) as proxy,
        RpcPool(chain="a", chain_id=CHAIN_ID, urls=[proxy.url, anvil], **POOL) as pool,
    ):
        await pool.request("eth_chainId")
        await proxy.set_mode(FaultMode.HANG)
        requests = [pool.request("eth_blockNumber") for _ in range(20)]
        return await timed(lambda: asyncio.gather(*requests))


async def pool_all_down() -> tuple[float, float]:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    async with RpcPool(chain="a", chain_id=CHAIN_ID, urls=dead, **POOL) as pool:

        async def failing(kind: type[Exception]) -> None:
            try:
                await pool.request("eth_blockNumber")
            except kind:
                return
            raise AssertionError("the request did not fail")

        first = await timed(lambda: failing(RpcError))
        parked = await timed(lambda: failing(NoHealthyEndpoint))
        return first, parked


async def pool_all_hanging(anvil: str) -> float:
    async with FaultProxy(anvil) as p1, FaultProxy(anvil) as p2:
        await p1.set_mode(FaultMode.HANG)
        await p2.set_mode(FaultMode.HANG)
        settings = {**POOL, "request_timeout_s": 0.3, "max_attempts": 3}
        async with RpcPool(chain="a", chain_id=CHAIN_ID, urls=[p1.url, p2.url], **settings) as pool:

            async def timing_out() -> None:
                try:
                    await pool.request("eth_blockNumber")
                except RpcTimeout:
                    return
                raise AssertionError("no RpcTimeout")

            return await timed(timing_out)


def line(name: str, samples: list[float]) -> str:
    return (
        f"{name:<48} min {min(samples):6.3f}  median {statistics.median(samples):6.3f}  "
        f"max {max(samples):6.3f} s"
    )


async def main(repeat: int) -> None:
    results: dict[str, list[float]] = {}
    async with AnvilNode(chain_id=CHAIN_ID) as node:
        for _ in range(repeat):
            results.setdefault("oracle round, 1 of 3 sources hung (0.5 s)", []).append(
                await oracle_round_with_a_slow_source()
            )
            results.setdefault("rpc: 20 requests, first URL hung (0.5 s)", []).append(
                await pool_failover_from_a_hung_url(node.url)
            )
            first, parked = await pool_all_down()
            results.setdefault("rpc: every URL refusing, the error", []).append(first)
            results.setdefault("rpc: every URL parked, the next request", []).append(parked)
            results.setdefault("rpc: every URL hung (0.3 s x 3 attempts)", []).append(
                await pool_all_hanging(node.url)
            )
    for name, samples in results.items():
        print(line(name, samples))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeat))
