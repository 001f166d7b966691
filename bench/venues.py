"""Benchmark of the ``aave_v3`` venue read: every user's exact health per second, against the
node's raw limit for the same calls and against the naive way.

    uv run python bench/venues.py                       # 10,000 users, 5 rounds
    uv run python bench/venues.py --users 2000 --repeats 3 --naive-sample 200

One local Anvil with a whole Aave v3 market (npm ``@aave/core-v3`` 1.19.3, deployed by
``devnet.aave``) and ``--users`` real Aave positions: ``AavePositionOpener`` (our
fixture) creates one ``AaveBorrower`` contract per user, which mints itself collateral,
``supply``s it and ``borrow``s for itself (four collateral/debt pairs, supplies of $1k-10k,
borrows at 30-95 % of the LTV), 500 users per transaction. Then, in the same run:

(a) the node's raw limit: the exact ``aggregate3`` ``eth_call`` bodies our read sends
    (recorded from one read), encoded to bytes before timing, POSTed over one keep-alive
    aiohttp session with the reader's concurrency; responses are read, never parsed;
(b) ours: ``AaveV3Adapter.snapshot`` of every user pinned to one block — the reserves round,
    the users round, decoding, ``calculateUserAccountData`` for every user and plans;
(c) naive: web3.py 8 ``Pool.getUserAccountData(user).call()`` one by one on a sample of users,
    the rate extrapolated.

Figures are medians of ``--repeats`` rounds ((a) and (b) alternate; the (b)/(a) target uses
the median of the per-round ratios, target ≥ 0.5). A sample of (b) is checked against
``getUserAccountData`` at the same block: a mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3

ROOT = Path(__file__).resolve().parent.parent
# `python bench/venues.py` puts bench/ first on the path, where this file would shadow the
# `venues` package: replace it by the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chains.blocks import BlockRef  # noqa: E402
from chains.rpc import RpcPool  # noqa: E402
from devnet import AnvilNode, DevChain  # noqa: E402
from devnet.aave import (  # noqa: E402
    AAVE_ANVIL_ARGS,
    AAVE_GAS_LIMIT,
    AaveMarket,
    deploy_aave_market,
)
from devnet.contracts import load_artifact  # noqa: E402
from devnet.vendor import deploy_artifact, fixture_artifact, send_batch  # noqa: E402
from venues.adapter import create_adapter  # noqa: E402
from venues.batch import DEFAULT_CONCURRENCY  # noqa: E402
from venues.model import PlanPricing, VenueSpec  # noqa: E402

DEFAULT_USERS = 10_000
DEFAULT_REPEATS = 5
DEFAULT_NAIVE_SAMPLE = 500
USERS_PER_TX = 500
GAS_PER_USER = 1_000_000  # AaveBorrower creation + supply + borrow, with headroom
VERIFY_SAMPLE = 200
CHAIN_ID = 31337
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
LIQUIDITY_USD = Decimal(200_000_000)
PAIRS = (("WETH", "USDC"), ("WBTC", "DAI"), ("WETH", "DAI"), ("WBTC", "USDC"))
RNG_SEED = 20_261_205
FIELDS = (
    "totalCollateralBase",
    "totalDebtBase",
    "availableBorrowsBase",
    "currentLiquidationThreshold",
    "ltv",
    "healthFactor",
)


class RecordingRequester:
    """Passes requests to the pool and keeps each ``eth_call`` body (for the raw replay)."""

    def __init__(self, pool: RpcPool) -> None:
        self.pool = pool
        self.bodies: list[bytes] | None = None

    async def request(self, method: str, params: list[Any]) -> Any:
        return await self.pool.request(method, params)

    async def request_raw(self, method: str, params_json: str) -> Any:
        if self.bodies is not None and method == "eth_call":
            body = f'{{"jsonrpc":"2.0","id":1,"method":"eth_call","params":{params_json}}}'
            self.bodies.append(body.encode())
        return await self.pool.request_raw(method, params_json)


async def open_users(dev: DevChain, market: AaveMarket, count: int) -> list[str]:
    """``count`` real Aave positions through ``AavePositionOpener``; their addresses."""
    rng = random.Random(RNG_SEED)
    opener = await deploy_artifact(dev, fixture_artifact("AavePositionOpener"))
    txs: list[dict[str, str]] = []
    for start in range(0, count, USERS_PER_TX):
        size = min(USERS_PER_TX, count - start)
        collateral, debt = (market.reserve(s) for s in PAIRS[(start // USERS_PER_TX) % len(PAIRS)])
        supplies, borrows = [], []
        for _ in range(size):
            usd = Decimal(rng.randint(1_000, 10_000))
            supplies.append(collateral.units(usd / collateral.spec.price_usd))
            limit = usd * collateral.spec.ltv / 10_000 * Decimal(rng.uniform(0.3, 0.95))
            borrows.append(debt.units(limit / debt.spec.price_usd))
        txs.append(
            opener.tx(
                "open",
                market.pool.address,
                collateral.address,
                debt.address,
                supplies,
                borrows,
                sender=dev.accounts[0],
                gas=GAS_PER_USER * size,
            )
        )
    receipts = await send_batch(dev, txs)
    return [
        "0x" + log["topics"][1][-40:]
        for receipt in receipts
        for log in receipt["logs"]
        if log["address"].lower() == opener.address.lower()
    ]


async def measure_raw(session: aiohttp.ClientSession, url: str, bodies: list[bytes]) -> float:
    """Seconds to POST every body with the reader's concurrency, reading (not parsing)."""
    queue = list(reversed(bodies))
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            body = queue.pop()
            async with session.post(url, data=body) as resp:
                await resp.read()

    await asyncio.gather(*(worker() for _ in range(DEFAULT_CONCURRENCY)))
    return time.perf_counter() - started


async def measure_naive(url: str, market: AaveMarket, users: Sequence[str]) -> float:
    """Seconds for one ``getUserAccountData(user).call()`` per user through web3.py."""
    w3 = AsyncWeb3(AsyncHTTPProvider(url))
    pool = w3.eth.contract(address=w3.to_checksum_address(market.pool.address), abi=market.pool.abi)
    started = time.perf_counter()
    for user in users:
        await pool.functions.getUserAccountData(w3.to_checksum_address(user)).call()
    elapsed = time.perf_counter() - started
    await w3.provider.disconnect()
    return elapsed


async def verify(
    pool: RpcPool, market: AaveMarket, result: Any, users: Sequence[str], block: BlockRef
) -> list[str]:
    """Users whose figures differ from ``getUserAccountData`` at the same block."""
    calls = [
        (
            "eth_call",
            [
                {"to": market.pool.address, "data": market.pool.encode("getUserAccountData", u)},
                {"blockHash": block.hash},
            ],
        )
        for u in users
    ]
    wrong = []
    for user, raw in zip(users, await pool.batch(calls), strict=True):
        data = bytes.fromhex(raw[2:])
        theirs = dict(
            zip(
                FIELDS,
                (int.from_bytes(data[i : i + 32], "big") for i in range(0, 192, 32)),
                strict=True,
            )
        )
        if result.accounts[user].exact != theirs:
            wrong.append(user)
    return wrong


async def run(args: argparse.Namespace) -> int:
    async with (
        AnvilNode(chain_id=CHAIN_ID, gas_limit=AAVE_GAS_LIMIT, extra_args=AAVE_ANVIL_ARGS) as node,
        DevChain(node.url, timeout_s=600) as dev,
        RpcPool(chain="bench", chain_id=CHAIN_ID, urls=[node.url], request_timeout_s=120) as pool,
        aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session,
    ):
        started = time.perf_counter()
        market = await deploy_aave_market(dev, liquidity_usd=LIQUIDITY_USD)
        users = await open_users(dev, market, args.users)
        setup_s = time.perf_counter() - started
        print(f"opened {len(users):,} Aave users in {setup_s:.1f} s", flush=True)
        # Prices fall so that some users are liquidatable: their plans are part of the read.
        await market.set_price("WETH", Decimal(2_400))
        await market.set_price("WBTC", Decimal(50_000))

        recorder = RecordingRequester(pool)
        spec = VenueSpec(
            name="bench",
            kind="aave_v3",
            chain="bench",
            address=market.provider.address,
            known_assets=frozenset(market.reserves),
        )
        adapter = create_adapter(
            spec,
            requester=recorder,
            multicall_address=MULTICALL3,
            override_code=load_artifact("Multicall3").deployed_bytecode,
        )
        block = BlockRef.from_rpc(await dev.rpc("eth_getBlockByNumber", ["latest", False]))
        await adapter.setup(block)
        await adapter.snapshot(users, block, PlanPricing())  # warm the reader's caches
        recorder.bodies = []
        result = await adapter.snapshot(users, block, PlanPricing())
        bodies, recorder.bodies = recorder.bodies, None
        calls = sum(
            body.count(b"0000000000000000000000000000000000000000000000000000000000000060")
            for body in bodies
        )

        wrong = await verify(
            pool,
            market,
            result,
            random.Random(1).sample(users, min(VERIFY_SAMPLE, len(users))),
            block,
        )
        if wrong:
            print(f"MISMATCH with getUserAccountData for {len(wrong)} users, e.g. {wrong[0]}")
            return 1

        raw_s: list[float] = []
        ours_s: list[float] = []
        ratios: list[float] = []
        for i in range(args.repeats):
            order = ("raw", "ours") if i % 2 == 0 else ("ours", "raw")
            round_times: dict[str, float] = {}
            for step in order:
                if step == "raw":
                    round_times[step] = await measure_raw(session, node.url, bodies)
                else:
                    t0 = time.perf_counter()
                    await adapter.snapshot(users, block, PlanPricing())
                    round_times[step] = time.perf_counter() - t0
            raw_s.append(round_times["raw"])
            ours_s.append(round_times["ours"])
            ratios.append(round_times["raw"] / round_times["ours"])
            print(
                f"round {i + 1}: raw {len(users) / round_times['raw']:,.0f} users/s, "
                f"ours {len(users) / round_times['ours']:,.0f} users/s",
                flush=True,
            )
        sample = users[: args.naive_sample]
        naive_s = await measure_naive(node.url, market, sample)

        raw_rate = len(users) / statistics.median(raw_s)
        ours_rate = len(users) / statistics.median(ours_s)
        naive_rate = len(sample) / naive_s
        ratio = statistics.median(ratios)
        liquidatable = len(result.liquidatable())
        raw_med, ours_med = statistics.median(raw_s), statistics.median(ours_s)
        print()
        print(
            f"users: {len(users):,}, eth_calls per read: {calls:,} in {len(bodies)} "
            f"aggregate3 bodies, liquidatable at the block: {liquidatable} (plans computed)"
        )
        print("| path | users/s (median) | seconds per full read |")
        print("|---|---:|---:|")
        print(f"| (a) raw limit, the same bodies pre-encoded | {raw_rate:,.0f} | {raw_med:.3f} |")
        print(f"| (b) ours: read + exact health + plans | {ours_rate:,.0f} | {ours_med:.3f} |")
        naive_full = len(users) / naive_rate
        print(
            f"| (c) naive web3.py getUserAccountData ({len(sample)} sampled) "
            f"| {naive_rate:,.0f} | {naive_full:.1f} (extrapolated) |"
        )
        print()
        target = "met" if ratio >= 0.5 else "MISSED"
        print(
            f"(b)/(a), median of per-round ratios: {ratio:.2f}x (target >= 0.5: {target}); "
            f"(b)/(c): {ours_rate / naive_rate:.1f}x"
        )
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--naive-sample", type=int, default=DEFAULT_NAIVE_SAMPLE)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
