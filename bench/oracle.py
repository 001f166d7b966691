"""Benchmark of one oracle round (DESIGN §8): 200 assets × 3 HTTP sources + on-chain feeds.

    uv run python bench/oracle.py                         # 200 assets, 50 feeds, 15 rounds
    uv run python bench/oracle.py --assets 200 --feeds 50 --rounds 15 --concurrency 32 128

Setup: three loopback price servers (Coinbase-, Binance- and a generic shape with a timestamp
path, ``tests.pricekit``) in a **separate process**, so their CPU does not count against the
client; one Anvil with ``--feeds`` MockAggregatorV3 feeds, one per asset for the first assets.
Every round is a fresh ``OracleService.run_round()``: 600 HTTP GETs + JSON parsing + one
``latestRoundData``/``decimals`` batch per feed + aggregation of every asset.

Limits measured in the same run, because these machines are noisy:
- **raw I/O floor**: the same GETs (body read, no parsing) and the same eth_call batches
  through one bare aiohttp session under the same concurrency bound — what the transport
  alone costs; the ratio round / floor is the service's overhead;
- **aggregation alone**: ``AssetAggregator.round`` over the round's quotes, per asset.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.domain import PriceStatus
from daemon.config.assets import HttpSourceConfig
from daemon.config.load import parse_config
from daemon.config.model import Config
from daemon.wiring import open_oracle
from devnet import AnvilNode, DevChain
from oracles.aggregate import AssetAggregator
from oracles.sources.chainlink import DECIMALS, LATEST_ROUND_DATA
from tests.pricekit import PriceServer, binance, coinbase, free_port, generic, oracle_config_data
from tests.watchkit import chain_entry

CHAIN_ID = 4242
WARMUP_ROUNDS = 1
AGGREGATION_REPEATS = 50
SERVER_START_TIMEOUT_S = 30.0


def pair_names(i: int) -> tuple[str, str, str]:
    """(Coinbase pair, Binance symbol, generic key) of asset ``i``."""
    return f"A{i:03d}-USD", f"A{i:03d}USDT", f"A{i:03d}"


def serve(ports: list[int], assets: int, ready: Any) -> None:
    """Child process: three price servers with a price for every asset, until killed."""

    async def run() -> None:
        async with (
            PriceServer(port=ports[0]) as cb,
            PriceServer(port=ports[1]) as bn,
            PriceServer(port=ports[2]) as gen,
        ):
            for i in range(assets):
                cb_pair, bn_pair, key = pair_names(i)
                cb.set(cb_pair, "100.00")
                bn.set(bn_pair, "100.01")
                gen.set(key, "99.99")
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(run())


def build_config(
    ports: list[int], node_url: str, feeds: list[str], assets: int, concurrency: int
) -> Config:
    base = [f"http://127.0.0.1:{p}" for p in ports]
    entries = []
    for i in range(assets):
        cb_pair, bn_pair, key = pair_names(i)
        sources: list[dict[str, Any]] = [
            coinbase(base[0], pair=cb_pair),
            binance(base[1], pair=bn_pair),
            generic(base[2], key=key),
        ]
        if i < len(feeds):
            sources.append({"kind": "chainlink", "chain": "bench", "address": feeds[i]})
        entries.append({"symbol": f"A{i:03d}", "sources": sources})
    data = oracle_config_data(entries, [chain_entry("bench", CHAIN_ID, node_url)])
    data["oracle_polling"] = {"max_concurrency": concurrency}
    return parse_config(data)


Timings = tuple[list[float], list[float]]  # wall seconds, this process's CPU seconds


async def paired(
    a: Callable[[], Awaitable[object]], b: Callable[[], Awaitable[object]], rounds: int
) -> tuple[Timings, Timings]:
    """Time ``a`` and ``b`` alternately (so drift in machine load hits both alike)."""
    for _ in range(WARMUP_ROUNDS):
        await a()
        await b()
    times: tuple[Timings, Timings] = (([], []), ([], []))
    for _ in range(rounds):
        for fn, (wall, cpu) in ((a, times[0]), (b, times[1])):
            start, start_cpu = time.perf_counter(), time.process_time()
            await fn()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return times


async def raw_floor(config: Config, node_url: str, feeds: list[str], concurrency: int) -> Any:
    """The same GETs and eth_call batches, bare: one session, bodies read, nothing parsed."""
    urls = [
        s.resolved()[0] for a in config.assets for s in a.sources if isinstance(s, HttpSourceConfig)
    ]
    bodies = [
        (
            f'[{{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{{"to":"{f}",'
            f'"data":"{LATEST_ROUND_DATA}"}},"latest"]}},{{"jsonrpc":"2.0","id":2,'
            f'"method":"eth_call","params":[{{"to":"{f}","data":"{DECIMALS}"}},"latest"]}}]'
        ).encode()
        for f in feeds
    ]
    limit = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    session = aiohttp.ClientSession(connector=connector)

    async def get(url: str) -> None:
        async with limit, session.get(url) as resp:
            await resp.read()

    async def post(body: bytes) -> None:
        async with (
            limit,
            session.post(node_url, data=body, headers={"Content-Type": "application/json"}) as resp,
        ):
            await resp.read()

    async def once() -> None:
        async with asyncio.TaskGroup() as group:
            for url in urls:
                group.create_task(get(url))
            for body in bodies:
                group.create_task(post(body))

    return session, once


def aggregation_cost(config: Config, quotes: dict[str, list[Any]]) -> float:
    """Seconds per asset of ``AssetAggregator.round`` over one round's quotes."""
    now = time.time()
    total = 0.0
    for _ in range(AGGREGATION_REPEATS):
        aggregators = [AssetAggregator(symbol=a.symbol, params=a.params()) for a in config.assets]
        start = time.perf_counter()
        for aggregator, asset in zip(aggregators, config.assets, strict=True):
            aggregator.round(quotes[asset.symbol], now)
        total += time.perf_counter() - start
    return total / AGGREGATION_REPEATS / len(config.assets)


async def bench(args: argparse.Namespace) -> None:
    ports = [free_port() for _ in range(3)]
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=serve, args=(ports, args.assets, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(SERVER_START_TIMEOUT_S):
            raise RuntimeError("price servers did not start")
        async with AnvilNode(chain_id=CHAIN_ID) as node, DevChain(node.url) as dev:
            now = int(time.time())
            feeds = []
            for _ in range(args.feeds):
                feed = await dev.deploy("MockAggregatorV3", 8, "A / USD", 0)
                await dev.transact(feed, "MockAggregatorV3", "setRoundData", 100 * 10**8, now, now)
                feeds.append(feed)
            print(
                f"oracle round: {args.assets} assets × 3 HTTP sources + {args.feeds} Chainlink "
                f"feeds on one Anvil; {os.cpu_count()} CPUs; median of {args.rounds} rounds"
            )
            for concurrency in args.concurrency:
                await one_setting(args, ports, node.url, feeds, concurrency)
    finally:
        server.kill()
        server.join()


async def one_setting(
    args: argparse.Namespace, ports: list[int], node_url: str, feeds: list[str], concurrency: int
) -> None:
    config = build_config(ports, node_url, feeds, args.assets, concurrency)
    session, once = await raw_floor(config, node_url, feeds, concurrency)
    try:
        async with open_oracle(config) as oracle:
            prices: dict[str, Any] = {}

            async def round_() -> None:
                prices.update(await oracle.run_round())

            rounds, floor = await paired(round_, once, args.rounds)
            not_ok = [s for s, p in prices.items() if p.status is not PriceStatus.OK]
            if not_ok:
                raise RuntimeError(f"{len(not_ok)} assets not OK, e.g. {prices[not_ok[0]]}")
            quotes = {
                a.symbol: [oracle.latest_quote(a.symbol, s.source_id()) for s in a.sources]
                for a in config.assets
            }
    finally:
        await session.close()
    per_asset = aggregation_cost(config, quotes)
    round_s, floor_s = statistics.median(rounds[0]), statistics.median(floor[0])
    round_cpu, floor_cpu = statistics.median(rounds[1]), statistics.median(floor[1])
    fetches = 3 * args.assets + len(feeds)
    print(
        f"  concurrency {concurrency:>4}: round {round_s * 1000:6.1f} ms wall "
        f"(min {min(rounds[0]) * 1000:.1f}; {fetches / round_s:,.0f} fetches/s), "
        f"{round_cpu * 1e6 / fetches:4.0f} µs CPU/fetch | raw I/O floor {floor_s * 1000:6.1f} ms "
        f"wall, {floor_cpu * 1e6 / fetches:4.0f} µs CPU/fetch | ratio wall {round_s / floor_s:4.2f}"
        f", CPU {round_cpu / floor_cpu:4.2f}\n"
        f"{'':19}aggregation alone {per_asset * 1e6:5.1f} µs/asset "
        f"({per_asset * args.assets * 1000:.2f} ms/round of {args.assets})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
