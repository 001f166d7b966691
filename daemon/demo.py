"""``crossmargin demo``: real Anvil chains, seeded portfolios, watchers following them live.

Everything runs on this machine and stops on Ctrl-C: three Anvil nodes with different block
times, a USDC (6 decimals) and a WETH (18 decimals) token on each, ``DEMO_ACCOUNTS`` accounts
with random cross-chain balances, then one ``ChainWatcher`` per chain. A scenario moves funds
(Transfer logs mark pairs dirty), adds newcomers (discovered from logs) and reorganises one
chain (``anvil_reorg``), while a terminal view shows heads, reads, lag and reorgs per chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TextIO

from chains.rpc import RpcPool
from chains.watcher import ChainWatcher
from daemon.config import Config, parse_config
from daemon.devnet import AnvilNode, DevChain, encode_call
from daemon.snapshot import build_watcher

DEMO_ACCOUNTS = 1000
DEMO_SEED = 7
VIEW_REFRESH_S = 1.0
SCENARIO_STEP_S = 3.0
REORG_GAS = 200_000  # explicit: Anvil's estimate for a reorg replacement tx runs out of gas
CHAINS = (  # name, chain id, block time (s), liquidation latency (s)
    ("ethereum", 31001, 2.0, 60.0),
    ("arbitrum", 31002, 0.5, 20.0),
    ("base", 31003, 1.0, 30.0),
)


@dataclass(slots=True)
class DemoChain:
    """One running demo chain: its node, driver and tokens."""

    name: str
    node: AnvilNode
    dev: DevChain
    usdc: str
    weth: str


async def _start_chain(
    stack: contextlib.AsyncExitStack, name: str, chain_id: int, block_time_s: float
) -> DemoChain:
    node = await stack.enter_async_context(AnvilNode(chain_id=chain_id, block_time_s=block_time_s))
    dev = await stack.enter_async_context(DevChain(node.url))
    usdc = (await dev.deploy("MintableERC20", "USD Coin", "USDC", 6)).lower()
    weth = (await dev.deploy("MintableERC20", "Wrapped Ether", "WETH", 18)).lower()
    return DemoChain(name=name, node=node, dev=dev, usdc=usdc, weth=weth)


async def _seed(chain: DemoChain, accounts: list[str], rng: random.Random) -> None:
    usdc = [(a, rng.randrange(1, 50_000) * 10**6) for a in accounts if rng.random() < 0.6]
    weth = [(a, rng.randrange(1, 40) * 10**17) for a in accounts if rng.random() < 0.5]
    await chain.dev.mint_many(chain.usdc, usdc)
    await chain.dev.mint_many(chain.weth, weth)


def demo_config(chains: list[DemoChain], accounts: list[str]) -> Config:
    """The config a user would write for these chains (printed at start)."""
    return parse_config(
        {
            "chains": [
                {
                    "name": c.name,
                    "chain_id": c.node.chain_id,
                    "rpc_urls": [c.node.url],
                    "poll_interval_s": 0.25,
                    "max_lag_s": 10,
                    "liquidation_latency_s": latency,
                    "sweep_interval_s": 30,
                }
                for c, (_, _, _, latency) in zip(chains, CHAINS, strict=True)
            ],
            "tokens": [
                entry
                for c in chains
                for entry in (
                    {
                        "chain": c.name,
                        "address": c.usdc,
                        "asset": "USDC",
                        "role": "liability",
                        "weight": 1.0,
                        "decimals": 6,
                    },
                    {
                        "chain": c.name,
                        "address": c.weth,
                        "asset": "ETH",
                        "role": "collateral",
                        "weight": 0.8,
                        "decimals": 18,
                    },
                )
            ],
            "accounts": accounts,
            "discover_accounts": True,
        }
    )


async def _follow(watcher: ChainWatcher, counts: dict[str, int]) -> None:
    async for update in watcher.updates():
        counts[watcher.chain.name] += len(update.readings)


async def _scenario(chains: list[DemoChain], rng: random.Random, log: list[str]) -> None:
    step = 0
    while True:
        await asyncio.sleep(SCENARIO_STEP_S)
        step += 1
        chain = chains[step % len(chains)]
        if step % 5 == 0:
            victim = chain.dev.accounts[1]
            data = "0x" + encode_call("MintableERC20", "mint", victim, 10**18).hex()
            tx = {
                "from": chain.dev.accounts[0],
                "to": chain.weth,
                "data": data,
                "gas": hex(REORG_GAS),
            }
            await chain.dev.rpc("anvil_reorg", [2, [[tx, 0]]])
            log.append(f"{chain.name}: reorg of depth 2 (replacement block mints 1 WETH)")
        else:
            newcomer = f"0x{rng.getrandbits(160):040x}"
            await chain.dev.transact(chain.weth, "MintableERC20", "mint", newcomer, 10**18)
            log.append(f"{chain.name}: newcomer {newcomer[:10]}… receives 1 WETH")


def _render(
    watchers: list[ChainWatcher], counts: dict[str, int], log: list[str], out: TextIO
) -> None:
    lines = ["\x1b[2J\x1b[H crossmargin demo — chain watchers (Ctrl-C to stop)", ""]
    lines.append(
        f" {'chain':<10}{'head':>8}{'read@':>8}{'lag s':>8}{'accounts':>10}"
        f"{'holdings':>10}{'changes':>9}{'reorgs':>8}{'batch':>7}"
    )
    for watcher in watchers:
        s = watcher.status()
        lag = "-" if s.last_read_age_s is None else f"{s.last_read_age_s:.1f}"
        lines.append(
            f" {s.chain:<10}{s.head_number or 0:>8}{s.last_read_number or 0:>8}{lag:>8}"
            f"{s.accounts:>10}{s.holdings:>10}{counts[s.chain]:>9}{s.reorgs:>8}"
            f"{s.batch_size:>7}"
        )
    lines += ["", " recent events:"] + [f"   {line}" for line in log[-8:]]
    out.write("\n".join(lines) + "\n")
    out.flush()


@contextlib.asynccontextmanager
async def _demo_chains() -> AsyncIterator[list[DemoChain]]:
    async with contextlib.AsyncExitStack() as stack:
        chains = [
            await _start_chain(stack, name, chain_id, block_time)
            for name, chain_id, block_time, _ in CHAINS
        ]
        yield chains


async def run_demo(*, duration_s: float | None = None, out: TextIO = sys.stdout) -> int:
    """Run the demo until Ctrl-C (or ``duration_s``); everything started is stopped."""
    rng = random.Random(DEMO_SEED)
    accounts = [f"0x{rng.getrandbits(160):040x}" for _ in range(DEMO_ACCOUNTS)]
    out.write("starting 3 Anvil chains and seeding portfolios…\n")
    async with _demo_chains() as chains, contextlib.AsyncExitStack() as stack:
        for chain in chains:
            await _seed(chain, accounts, rng)
        config = demo_config(chains, accounts)
        watchers = []
        for chain_config in config.chains:
            pool = await stack.enter_async_context(
                RpcPool(
                    chain=chain_config.name,
                    chain_id=chain_config.chain_id,
                    urls=chain_config.rpc_urls,
                )
            )
            watcher = build_watcher(config, chain_config, pool)
            await watcher.setup()
            watchers.append(watcher)
        counts = {w.chain.name: 0 for w in watchers}
        log: list[str] = []
        deadline = None if duration_s is None else time.monotonic() + duration_s
        async with asyncio.TaskGroup() as tasks:
            followers = [
                tasks.create_task(_follow(w, counts), name=f"watch:{w.chain.name}")
                for w in watchers
            ]
            scenario = tasks.create_task(_scenario(chains, rng, log), name="scenario")
            try:
                while deadline is None or time.monotonic() < deadline:
                    _render(watchers, counts, log, out)
                    await asyncio.sleep(VIEW_REFRESH_S)
            finally:
                for task in [*followers, scenario]:
                    task.cancel()
    out.write("demo stopped; all Anvil nodes shut down.\n")
    return 0
