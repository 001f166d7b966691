"""CPU cost of one request through ``RpcPool``, with one endpoint and with two (hedged path).

    uv run python bench/rpc_overhead.py                       # 3,000 requests × 5 rounds
    uv run python bench/rpc_overhead.py --requests 1000 --rounds 3

Wall-clock rates on these shared 2-core machines swing by 2× with other processes' load, so
this measures what the pool itself costs: this process's CPU time (``time.process_time``) per
``eth_blockNumber`` against one local Anvil, sent ``--concurrency`` at a time, beside the same
requests over one bare keep-alive aiohttp session (the floor: HTTP and JSON only). A pool of two
endpoints (the node's URL twice) takes the hedged path: every read runs in a task raced against
the hedge delay. The pool's own cost is the difference to the floor. Median of ``--rounds``,
the three variants alternating within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/rpc_overhead.py` puts bench/ on the path
    sys.path.insert(0, str(ROOT))

from chains.rpc import RpcPool  # noqa: E402
from devnet import AnvilNode  # noqa: E402

CHAIN_ID = 1803
DEFAULT_REQUESTS = 3_000
DEFAULT_ROUNDS = 5
DEFAULT_CONCURRENCY = 4  # the watcher's reads in flight per chain
US_PER_S = 1e6

Send = Callable[[], Awaitable[object]]


async def cpu_per_request_us(send: Send, requests: int, concurrency: int) -> float:
    """This process's CPU µs per request for ``requests`` calls of ``send``."""
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await send()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) * US_PER_S / (per_worker * concurrency)


async def main(args: argparse.Namespace) -> None:
    figures: dict[str, list[float]] = {"bare aiohttp": [], "pool, 1 endpoint": []}
    figures["pool, 2 endpoints (hedged path)"] = []
    async with AnvilNode(chain_id=CHAIN_ID) as node:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
        async with (
            aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session,
            RpcPool(chain="bench", chain_id=CHAIN_ID, urls=[node.url]) as one,
            RpcPool(chain="bench", chain_id=CHAIN_ID, urls=[node.url] * 2) as two,
        ):

            async def bare() -> object:
                async with session.post(node.url, data=body) as resp:
                    return json.loads(await resp.read())["result"]

            senders: dict[str, Send] = {
                "bare aiohttp": bare,
                "pool, 1 endpoint": lambda: one.request_raw("eth_blockNumber", "[]"),
                "pool, 2 endpoints (hedged path)": lambda: two.request_raw("eth_blockNumber", "[]"),
            }
            for send in senders.values():  # connections, chain id checks: untimed
                await cpu_per_request_us(send, args.concurrency * 10, args.concurrency)
            for round_no in range(args.rounds):
                order = list(senders.items())
                if round_no % 2:
                    order.reverse()
                for name, send in order:
                    us = await cpu_per_request_us(send, args.requests, args.concurrency)
                    figures[name].append(us)
            hedges = sum(s.hedges for s in two.status())
    floor = statistics.median(figures["bare aiohttp"])
    print(
        f"# rpc_overhead {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.requests} eth_blockNumber "
        f"× {args.rounds} rounds, {args.concurrency} in flight; CPU µs per request (median)"
    )
    print()
    print("| path | CPU µs / request | pool's own µs (minus the floor) |")
    print("|---|---:|---:|")
    for name, values in figures.items():
        median = statistics.median(values)
        extra = "—" if name == "bare aiohttp" else f"{median - floor:.0f}"
        print(f"| {name} | {median:.0f} | {extra} |")
    print(f"\nhedges sent by the two-endpoint pool: {hedges}")


def parse_args() -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
