"""A small world for portfolio-model tests: an engine and the same inputs in the independent
oracle's terms (``tests/margin/portfolio_oracle.py``).

Four chains (latency 10 s … 3,600 s), ETH on every chain, stETH, USDC (collateral and debt) and
BTC; every token has 6 decimals so a USD amount maps to a raw balance exactly. Values are in
cents (``value_decimals`` 2): the engine rounds each holding and option line to a cent and M up to
a cent, so engine and oracle agree within a few cents per line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.domain import Role
from margin.engine import MarginEngine
from margin.model import (
    ChainInput,
    EngineParams,
    MarginModel,
    Position,
    PriceInput,
    Tier,
    TokenRisk,
)
from margin.options import OptionPosition, Right
from margin.scenarios import PortfolioParams, RiskGroup
from tests.margin import portfolio_oracle as oracle

CHAINS = {"fast": 10.0, "main": 60.0, "arb": 600.0, "slow": 3600.0}
DECIMALS = 6
TOKENS: list[tuple[str, str, str, Role]] = [
    *((chain, f"eth-{chain}", "ETH", Role.COLLATERAL) for chain in CHAINS),
    ("main", "steth", "stETH", Role.COLLATERAL),
    ("main", "usdc", "USDC", Role.COLLATERAL),
    ("main", "usdc-debt", "USDC", Role.LIABILITY),
    ("arb", "usdc-debt-arb", "USDC", Role.LIABILITY),
    ("arb", "btc", "BTC", Role.COLLATERAL),
]
MMR = (Tier(rate=0.05),)


def eth_usd_groups(**overrides: object) -> PortfolioParams:
    """ETH+stETH at 15 %, USD at 3 %, BTC alone (default 10 %), as in the issue."""
    base = PortfolioParams(
        groups=(
            RiskGroup(name="ETH", assets=("ETH", "stETH"), scan_range=0.15),
            RiskGroup(name="USD", assets=("USDC",), scan_range=0.03),
        ),
        default_scan_range=0.10,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass
class World:
    """One engine and the oracle's view of the same inputs."""

    params: PortfolioParams = field(default_factory=eth_usd_groups)
    model: MarginModel = MarginModel.PORTFOLIO
    prices: dict[str, float] = field(
        default_factory=lambda: {"ETH": 2000.0, "stETH": 1990.0, "USDC": 1.0, "BTC": 40000.0}
    )
    volatility: dict[str, float] = field(default_factory=dict)
    now: float = 1_700_000_000.0
    z: float = 2.33

    def __post_init__(self) -> None:
        self.engine = MarginEngine(
            tokens=[
                TokenRisk(
                    chain=c,
                    token=t,
                    asset=a,
                    role=r,
                    weight=0.8 if r is Role.COLLATERAL else 1.0,
                    decimals=DECIMALS,
                )
                for c, t, a, r in TOKENS
            ],
            chains=[ChainInput(name=c, liquidation_latency_s=s) for c, s in CHAINS.items()],
            params=EngineParams(model=self.model, z=self.z),
            portfolio=self.params,
            now=self.now,
        )
        self.engine.set_prices(
            PriceInput(asset=a, price=p, volatility=self.volatility.get(a, 0.0))
            for a, p in self.prices.items()
        )
        self.books: dict[str, oracle.Book] = {}

    def book(self, account: str) -> oracle.Book:
        return self.books.setdefault(account, oracle.Book())

    def hold(self, account: str, token: str, usd: float, *, at: float | None = None) -> None:
        """A balance worth ``usd`` at price ``at`` (the asset's price by default; amount
        rounded to the token's 6 decimals, so ``usd`` should be exact at that precision)."""
        chain, _, asset, role = next(x for x in TOKENS if x[1] == token)
        raw = round(usd / (at or self.prices[asset]) * 10**DECIMALS)
        self.engine.set_balance(account, chain, token, raw, 1)
        value = raw / 10**DECIMALS * self.prices[asset]
        self.book(account).holdings.append(
            (asset, chain, value if role is Role.COLLATERAL else -value)
        )

    def perp(self, account: str, asset: str, chain: str, size: float, entry: float) -> None:
        self.engine.set_position(
            Position(
                account=account,
                asset=asset,
                chain=chain,
                size=size,
                entry_price=entry,
                mmr_tiers=MMR,
            )
        )
        self.book(account).perps.append((asset, chain, size, entry))

    def options(self, account: str, lines: list[OptionPosition]) -> None:
        self.engine.set_options(account, lines)
        self.book(account).options = [
            (o.asset, o.chain, o.size, o.right.value, o.strike, float(o.expiry), o.implied_vol)
            for o in lines
        ]

    def setup(self) -> oracle.Setup:
        p = self.params
        return oracle.Setup(
            groups={g.name: (list(g.assets), g.scan_range) for g in p.groups},
            default_scan_range=p.default_scan_range,
            price_steps=p.price_steps,
            extreme_multiple=p.extreme_multiple,
            extreme_weight=p.extreme_weight,
            vol_up=p.vol_up,
            vol_down=p.vol_down,
            correlations={(a, b): rho for a, b, rho in p.correlations},
            default_correlation=p.default_correlation,
            z=self.z,
            prices=dict(self.prices),
            volatility=dict(self.volatility),
            floors=dict(p.volatility_floors),
            latency=dict(CHAINS),
            now=self.now,
        )

    def expected(self, account: str) -> oracle.Answer:
        return oracle.evaluate(self.setup(), self.book(account))


def option(
    account: str,
    *,
    size: float,
    right: Right = Right.CALL,
    strike: float = 2000.0,
    days: float = 30.0,
    vol: float = 0.6,
    asset: str = "ETH",
    chain: str = "main",
    now: float = 1_700_000_000.0,
) -> OptionPosition:
    """An option line expiring ``days`` after ``now``."""
    return OptionPosition(
        account=account,
        asset=asset,
        chain=chain,
        size=size,
        right=right,
        strike=strike,
        expiry=int(now + days * 86_400),
        implied_vol=vol,
    )
