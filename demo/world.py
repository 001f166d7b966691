"""The demo's world: three local chains with tokens and price feeds, two loopback exchanges,
and the block producers that give each chain its own block time.

Every chain starts as an instant-mining Anvil node, so contracts deploy and thousands of
mints land in seconds; then a ``BlockProducer`` per chain mines a block every
``block_time_s`` (``evm_mine`` with automine off). Stalling a chain is pausing its producer,
what a halted sequencer looks like from outside: the node answers, the head stops moving.

Prices have one truth per asset (``DemoWorld.prices``) that every source follows: the
MockAggregatorV3 feeds on the feed chain and both exchanges. ``manipulate`` pins one
exchange to a price of its own until released.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from core.errors import NonRetryableError
from devnet import AnvilNode, DevChain, encode_call
from devnet.exchange import PriceServer

FEED_DECIMALS = 8  # Chainlink USD feeds answer with 8 decimals
START_PRICES: dict[str, Decimal] = {
    "ETH": Decimal(3000),
    "BTC": Decimal(60000),
    "USDC": Decimal(1),
}
FEED_ASSETS = ("ETH", "BTC")  # assets with an on-chain feed (on FEED_CHAIN)
EXCHANGE_A_PAIRS = {"ETH": "ETH-USD", "BTC": "BTC-USD", "USDC": "USDC-USD"}  # Coinbase-shaped
EXCHANGE_B_KEYS = {"ETH": "ETH", "BTC": "BTC", "USDC": "USDC"}  # hand-written JSON API
PRICE_QUANTUM = Decimal("0.01")  # exchanges quote to the cent


class DemoError(NonRetryableError):
    """The demo cannot go on (the CLI prints it as one line and exits 1)."""


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """One demo chain: how fast it makes blocks and how slow liquidations on it are."""

    name: str
    chain_id: int
    block_time_s: float
    liquidation_latency_s: float
    max_lag_s: float


CHAIN_SPECS = (
    # An L1 where a keeper's liquidation lands within a minute.
    ChainSpec("ethereum", 31001, block_time_s=2.0, liquidation_latency_s=60.0, max_lag_s=10.0),
    # A fast L2 whose collateral takes a while to get out (10 minutes).
    ChainSpec("arbitrum", 31002, block_time_s=0.5, liquidation_latency_s=600.0, max_lag_s=5.0),
    # An L2 whose collateral must be bridged before it can be sold (an hour).
    ChainSpec("base", 31003, block_time_s=1.0, liquidation_latency_s=3600.0, max_lag_s=6.0),
)
FEED_CHAIN = "ethereum"
ALL_CHAINS = tuple(spec.name for spec in CHAIN_SPECS)


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """An ERC-20 deployed on some demo chains, and how the margin engine counts it."""

    symbol: str
    name: str
    asset: str
    decimals: int
    role: Literal["collateral", "liability"]
    weight: float
    chains: tuple[str, ...] = ALL_CHAINS


TOKEN_SPECS = (
    TokenSpec("WETH", "Wrapped Ether", "ETH", 18, "collateral", 0.8),
    TokenSpec("USDC", "USD Coin", "USDC", 6, "collateral", 0.9),
    TokenSpec("WBTC", "Wrapped BTC", "BTC", 8, "collateral", 0.75, chains=(FEED_CHAIN,)),
    # Aave-style variable debt token: its balance is what the account owes.
    TokenSpec("vdUSDC", "Variable Debt USDC", "USDC", 6, "liability", 1.0),
)


class BlockProducer:
    """Mines a block every ``block_time_s`` on a node whose automine is off; can stall."""

    def __init__(self, dev: DevChain, block_time_s: float) -> None:
        self.dev = dev
        self.block_time_s = block_time_s
        self._running = asyncio.Event()
        self._running.set()

    @property
    def stalled(self) -> bool:
        """True while block production is paused."""
        return not self._running.is_set()

    def stall(self) -> None:
        """Stop producing blocks (transactions stay pending)."""
        self._running.clear()

    def resume(self) -> None:
        """Produce blocks again."""
        self._running.set()

    async def run(self) -> None:
        """Produce blocks until cancelled."""
        await self.dev.rpc("evm_setAutomine", [False])
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self._running.wait()
            next_at = max(next_at + self.block_time_s, loop.time())
            await asyncio.sleep(next_at - loop.time())
            if self._running.is_set():
                await self.dev.rpc("evm_mine")


@dataclass(slots=True)
class DemoChain:
    """One running demo chain: its node, driver, token addresses and block producer."""

    spec: ChainSpec
    node: AnvilNode
    dev: DevChain
    producer: BlockProducer
    tokens: dict[str, str] = field(default_factory=dict)  # token symbol -> address (lower)

    @property
    def name(self) -> str:
        """The chain's name in the config."""
        return self.spec.name


@dataclass(slots=True)
class DemoWorld:
    """Everything the demo daemon watches, with the levers the scenario pulls."""

    chains: list[DemoChain]
    exchange_a: PriceServer
    exchange_b: PriceServer
    feeds: dict[str, str] = field(default_factory=dict)  # asset -> feed address on FEED_CHAIN
    prices: dict[str, Decimal] = field(default_factory=lambda: dict(START_PRICES))
    manipulated: dict[str, Decimal] = field(default_factory=dict)  # asset -> exchange-b quote

    def __post_init__(self) -> None:
        for asset in self.prices:  # the exchanges quote every asset from the start
            self._quote(asset)

    def chain(self, name: str) -> DemoChain:
        """The chain called ``name``."""
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(name)

    async def set_price(self, asset: str, price: Decimal) -> None:
        """Move ``asset`` on every source at once: the feed transaction is sent first, the
        exchanges follow, and the call returns once the feed's block is mined."""
        price = price.quantize(PRICE_QUANTUM)
        self.prices[asset] = price
        feed_tx = None
        if asset in self.feeds:
            dev = self.chain(FEED_CHAIN).dev
            answer = int(price * 10**FEED_DECIMALS)
            data = "0x" + encode_call("MockAggregatorV3", "setAnswer", answer).hex()
            tx = {"from": dev.accounts[0], "to": self.feeds[asset], "data": data}
            feed_tx = await dev.rpc("eth_sendTransaction", [tx])
        self._quote(asset)
        if feed_tx is not None:
            await self.chain(FEED_CHAIN).dev.wait_receipt(feed_tx)

    def manipulate(self, asset: str, price: Decimal | None) -> None:
        """Pin exchange-b's ``asset`` quote to ``price`` (``None`` releases it)."""
        if price is None:
            self.manipulated.pop(asset, None)
        else:
            self.manipulated[asset] = price.quantize(PRICE_QUANTUM)
        self._quote(asset)

    def _quote(self, asset: str) -> None:
        price = self.prices[asset]
        self.exchange_a.set(EXCHANGE_A_PAIRS[asset], price)
        self.exchange_b.set(EXCHANGE_B_KEYS[asset], self.manipulated.get(asset, price))


async def _start_chain(stack: contextlib.AsyncExitStack, spec: ChainSpec) -> DemoChain:
    node = await stack.enter_async_context(AnvilNode(chain_id=spec.chain_id))
    dev = await stack.enter_async_context(DevChain(node.url))
    chain = DemoChain(spec=spec, node=node, dev=dev, producer=BlockProducer(dev, spec.block_time_s))
    for token in TOKEN_SPECS:
        if spec.name in token.chains:
            address = await dev.deploy("MintableERC20", token.name, token.symbol, token.decimals)
            chain.tokens[token.symbol] = address.lower()
    return chain


async def open_world(stack: contextlib.AsyncExitStack) -> DemoWorld:
    """Start the chains (instant mining until the producers run), deploy tokens and feeds,
    start both exchanges at ``START_PRICES``; everything is closed by ``stack``."""
    chains = [await _start_chain(stack, spec) for spec in CHAIN_SPECS]
    exchange_a = await stack.enter_async_context(PriceServer())
    exchange_b = await stack.enter_async_context(PriceServer())
    world = DemoWorld(chains=chains, exchange_a=exchange_a, exchange_b=exchange_b)
    feed_dev = world.chain(FEED_CHAIN).dev
    for asset in FEED_ASSETS:
        answer = int(START_PRICES[asset] * 10**FEED_DECIMALS)
        address = await feed_dev.deploy("MockAggregatorV3", FEED_DECIMALS, f"{asset} / USD", answer)
        world.feeds[asset] = address.lower()
    return world
