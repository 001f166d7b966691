"""Random cross-chain portfolios for the demo: drawn so that most accounts start healthy and a
realistic share sits just above health 1, minted on the chains, with perp positions posted
through the daemon's own API (``PUT /v1/positions/{address}``) as a protocol would.

Each account holds ETH on one to three chains, sometimes USDC or WBTC as well, and owes USDC
(a variable-debt token) on one chain. Its debt is sized from a starting health drawn from
``HEALTH_BANDS``; a 30% ETH crash pulls most of the lowest band under 1.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from demo.world import (
    ALL_CHAINS,
    FEED_CHAIN,
    START_PRICES,
    TOKEN_SPECS,
    DemoError,
    DemoWorld,
)

HEALTH_BANDS = (  # (share of accounts, lowest, highest starting health); the rest owe nothing
    (0.22, 1.03, 1.35),
    (0.35, 1.35, 1.8),
    (0.35, 1.8, 4.0),
)
ETH_VALUE_USD = (2_000.0, 400_000.0)  # log-uniform range of an account's ETH
ETH_CHAIN_COUNT_WEIGHTS = (0.4, 0.35, 0.25)  # ETH on 1, 2 or 3 chains
USDC_COLLATERAL_SHARE = 0.4  # accounts that also hold USDC ...
USDC_VALUE_OF_ETH = (0.1, 0.6)  # ... worth this fraction of their ETH
WBTC_SHARE = 0.2
WBTC_VALUE_OF_ETH = (0.1, 0.8)
PERP_SHARE = 0.08  # accounts with an ETH perp position
PERP_NOTIONAL_OF_COLLATERAL = (0.2, 1.0)
PERP_LONG_SHARE = 0.6  # the rest are short (hedged: the crash helps them)
PERP_ENTRY_SPREAD = 0.02  # entries within ±2% of the start price
PERP_CHAIN = "arbitrum"
PERP_MMR_TIERS = ({"up_to": 500_000.0, "rate": 0.05}, {"rate": 0.1})
HEDGE_RATIO = (0.85, 1.0)  # hedged accounts: perp short / spot ETH
HEDGED_WEIGHTED_HEALTH = (0.85, 0.97)  # … borrowing so much that flat weights liquidate them
POST_CONCURRENCY = 8
POST_TIMEOUT_S = 30.0

_TOKENS = {t.symbol: t for t in TOKEN_SPECS}


@dataclass(frozen=True, slots=True)
class PerpPosition:
    """A perp position the demo posts for an account."""

    chain: str
    asset: str
    size: float  # signed, in asset units
    entry_price: float


@dataclass(slots=True)
class Portfolio:
    """One account's starting balances (raw token amounts) and optional perp position."""

    account: str
    balances: dict[tuple[str, str], int] = field(default_factory=dict)  # (chain, symbol) -> raw
    perp: PerpPosition | None = None

    def add(self, chain: str, symbol: str, value_usd: float) -> float:
        """Give the account ``value_usd`` worth of ``symbol`` on ``chain`` (rounded down to a
        raw unit); returns the weighted value the margin engine will count."""
        token = _TOKENS[symbol]
        price = float(START_PRICES[token.asset])
        raw = int(value_usd / price * 10**token.decimals)
        if raw <= 0:
            return 0.0
        key = (chain, symbol)
        self.balances[key] = self.balances.get(key, 0) + raw
        return float(raw / 10**token.decimals * price * token.weight)


def _starting_health(rng: random.Random) -> float:
    draw = rng.random()
    for share, low, high in HEALTH_BANDS:
        if draw < share:
            return rng.uniform(low, high)
        draw -= share
    return math.inf


def _split(rng: random.Random, total: float, parts: int) -> list[float]:
    weights = [rng.random() + 0.2 for _ in range(parts)]
    return [total * w / sum(weights) for w in weights]


def draw_portfolio(rng: random.Random, account: str) -> Portfolio:
    """One random portfolio (pure: the same ``rng`` state gives the same portfolio)."""
    p = Portfolio(account=account)
    eth_value = math.exp(rng.uniform(*(math.log(v) for v in ETH_VALUE_USD)))
    count = rng.choices((1, 2, 3), weights=ETH_CHAIN_COUNT_WEIGHTS)[0]
    chains = rng.sample(ALL_CHAINS, count)
    weighted = sum(
        p.add(chain, "WETH", value)
        for chain, value in zip(chains, _split(rng, eth_value, count), strict=True)
    )
    if rng.random() < USDC_COLLATERAL_SHARE:
        value = eth_value * rng.uniform(*USDC_VALUE_OF_ETH)
        weighted += p.add(rng.choice(ALL_CHAINS), "USDC", value)
    if rng.random() < WBTC_SHARE:
        weighted += p.add(FEED_CHAIN, "WBTC", eth_value * rng.uniform(*WBTC_VALUE_OF_ETH))
    pnl = maintenance = 0.0
    if rng.random() < PERP_SHARE:
        mark = float(START_PRICES["ETH"])
        notional = weighted * rng.uniform(*PERP_NOTIONAL_OF_COLLATERAL)
        sign = 1.0 if rng.random() < PERP_LONG_SHARE else -1.0
        entry = mark * (1 + rng.uniform(-PERP_ENTRY_SPREAD, PERP_ENTRY_SPREAD))
        size = sign * notional / mark
        p.perp = PerpPosition(chain=PERP_CHAIN, asset="ETH", size=size, entry_price=entry)
        pnl = size * (mark - entry)
        maintenance = notional * float(PERP_MMR_TIERS[0]["rate"])
    health = _starting_health(rng)
    debt = (weighted + pnl) / health - maintenance if math.isfinite(health) else 0.0
    if debt > 0:
        p.add(rng.choice(ALL_CHAINS), "vdUSDC", debt)
    return p


def draw_hedged(rng: random.Random, account: str) -> Portfolio:
    """A basis trade: ETH spot on one chain, an ETH perp short of about the same size on
    ``PERP_CHAIN``, USDC borrowed against it. Under flat weights the haircut on the spot and
    the perp's maintenance are both charged (health below 1 whatever ETH does); under the
    portfolio model the two legs net out in the ETH group and it stays healthy through the
    crash."""
    p = Portfolio(account=account)
    eth_value = math.exp(rng.uniform(*(math.log(v) for v in ETH_VALUE_USD)))
    weighted = p.add(rng.choice(ALL_CHAINS), "WETH", eth_value)
    mark = float(START_PRICES["ETH"])
    size = -rng.uniform(*HEDGE_RATIO) * eth_value / mark
    p.perp = PerpPosition(chain=PERP_CHAIN, asset="ETH", size=size, entry_price=mark)
    maintenance = abs(size) * mark * float(PERP_MMR_TIERS[0]["rate"])
    health = rng.uniform(*HEDGED_WEIGHTED_HEALTH)
    p.add(rng.choice(ALL_CHAINS), "vdUSDC", weighted / health - maintenance)
    return p


def draw_portfolios(
    rng: random.Random, count: int, *, hedged_share: float = 0.0
) -> list[Portfolio]:
    """``count`` accounts with random addresses and portfolios, ``hedged_share`` of them
    basis trades (``draw_hedged``)."""
    out = []
    for _ in range(count):
        account = f"0x{rng.getrandbits(160):040x}"
        hedged = hedged_share > 0 and rng.random() < hedged_share
        out.append(draw_hedged(rng, account) if hedged else draw_portfolio(rng, account))
    return out


async def mint_portfolios(world: DemoWorld, portfolios: Sequence[Portfolio]) -> int:
    """Mint every balance on its chain (chains in parallel); returns the number of mints."""
    per_token: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for p in portfolios:
        for key, raw in p.balances.items():
            per_token.setdefault(key, []).append((p.account, raw))

    async def mint_chain(chain: str) -> None:
        demo_chain = world.chain(chain)
        for (on, symbol), mints in sorted(per_token.items()):
            if on == chain:
                await demo_chain.dev.mint_many(demo_chain.tokens[symbol], mints)

    await asyncio.gather(*(mint_chain(c.name) for c in world.chains))
    return sum(len(m) for m in per_token.values())


async def post_positions(api_url: str, token: str, portfolios: Sequence[Portfolio]) -> int:
    """PUT every perp position through the keeper API; returns how many were posted."""
    with_perps = [p for p in portfolios if p.perp is not None]
    limit = asyncio.Semaphore(POST_CONCURRENCY)
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT_S)

    async def post(session: aiohttp.ClientSession, p: Portfolio) -> None:
        perp = p.perp
        assert perp is not None
        body = {
            "positions": [
                {
                    "asset": perp.asset,
                    "chain": perp.chain,
                    "size": f"{perp.size:.6f}",
                    "entry_price": f"{perp.entry_price:.2f}",
                    "mmr_tiers": list(PERP_MMR_TIERS),
                }
            ]
        }
        async with limit, session.put(f"{api_url}/v1/positions/{p.account}", json=body) as r:
            if r.status != 200:
                raise DemoError(f"PUT /v1/positions answered {r.status}: {await r.text()}")

    try:
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            await asyncio.gather(*(post(session, p) for p in with_perps))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DemoError(f"posting positions to {api_url} failed: {exc!r}") from exc
    return len(with_perps)
