"""A whole Aave v3 market on a dev chain, from the compiled artifacts of npm ``@aave/core-v3``
1.19.3 (Aave v3.0.2), for tests, benchmarks and the demo.

Deployment follows the order of Aave's ``deploy-v3`` scripts: PoolAddressesProvider, the ACL
admin then ACLManager, the logic libraries, the Pool implementation linked to them and
``setPoolImpl`` (which creates the Pool proxy), the PoolConfigurator the same way (linked to
ConfiguratorLogic), AaveProtocolDataProvider, AaveOracle on Chainlink-style feeds (our
``MockAggregatorV3``), token implementations, a rate strategy per reserve, ``initReserves``,
then the risk parameters (``configureReserveAsCollateral``, borrowing, the liquidation protocol
fee, e-mode). Underlying tokens are our ``MintableERC20`` (anyone may mint).

Start the node with ``AAVE_ANVIL_ARGS`` (high gas limit, raised code size limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from devnet.driver import DevChain
from devnet.vendor import (
    BoundContract,
    aave_artifact,
    deploy_artifact,
    fixture_artifact,
    send_batch,
)

AAVE_ANVIL_ARGS = ("--code-size-limit", "100000")
"""Extra Anvil arguments for an Aave market (the Pool is close to the 24 KiB code limit)."""
AAVE_GAS_LIMIT = 1_000_000_000  # block gas limit: bursts of user transactions mine in one block
PRICE_DECIMALS = 8  # Chainlink USD feeds; AaveOracle's base currency unit is 10**8 (USD)
RAY = 10**27
MAX_UINT = 2**256 - 1
DEFAULT_LIQUIDITY_USD = Decimal(10_000_000)  # supplied per reserve by the liquidity provider
USER_TX_GAS = 1_500_000  # explicit gas of one user transaction (no estimation round trip)
VARIABLE_RATE_MODE = 2
STABLE_RATE_MODE = 1

LOGIC_LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "PoolLogic",
)


@dataclass(frozen=True, slots=True)
class ReserveSpec:
    """One reserve of the dev market; thresholds, bonus and fees in basis points."""

    symbol: str
    decimals: int
    price_usd: Decimal
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    protocol_fee: int = 1_000
    borrowing: bool = True
    stable_borrowing: bool = False
    emode_category: int = 0
    borrowable_in_isolation: bool = False
    reserve_factor: int = 1_000


@dataclass(frozen=True, slots=True)
class EModeSpec:
    """An e-mode category; ``price_usd`` set gives it its own price source."""

    category: int
    label: str
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_usd: Decimal | None = None


DEFAULT_RESERVES = (
    ReserveSpec("WETH", 18, Decimal(3_000), 8_000, 8_250, 10_500),
    ReserveSpec("WBTC", 8, Decimal(60_000), 7_000, 7_500, 11_000, protocol_fee=2_000),
    ReserveSpec(
        "USDC",
        6,
        Decimal(1),
        7_700,
        8_000,
        10_450,
        stable_borrowing=True,
        emode_category=1,
        borrowable_in_isolation=True,
    ),
    ReserveSpec("DAI", 18, Decimal(1), 7_500, 8_000, 10_500, emode_category=1),
)
DEFAULT_EMODES = (EModeSpec(1, "USD stables", 9_300, 9_500, 10_100, price_usd=Decimal(1)),)

# DefaultReserveInterestRateStrategy parameters (rays): non-zero rates so interest accrues.
RATE_STRATEGY = (
    8 * RAY // 10,  # optimal usage ratio
    RAY // 100,  # base variable borrow rate
    4 * RAY // 100,  # variable slope 1
    60 * RAY // 100,  # variable slope 2
    2 * RAY // 100,  # stable slope 1
    60 * RAY // 100,  # stable slope 2
    2 * RAY // 100,  # base stable rate offset
    8 * RAY // 100,  # stable rate excess offset
    2 * RAY // 10,  # optimal stable to total debt ratio
)


def feed_answer(price_usd: Decimal) -> int:
    """A USD price as an 8-decimal feed answer."""
    return int(price_usd * 10**PRICE_DECIMALS)


@dataclass(slots=True)
class AaveReserve:
    """One deployed reserve: its underlying, price feed and Aave tokens."""

    spec: ReserveSpec
    token: BoundContract
    feed: BoundContract
    a_token: str = ""
    stable_debt_token: str = ""
    variable_debt_token: str = ""

    @property
    def address(self) -> str:
        """The underlying asset's address."""
        return self.token.address

    def units(self, amount: Decimal | int) -> int:
        """Whole-token ``amount`` in raw units."""
        return int(Decimal(amount) * 10**self.spec.decimals)


@dataclass(slots=True)
class AaveMarket:
    """A deployed Aave v3 market and the helpers tests drive it with."""

    dev: DevChain
    admin: str
    treasury: str
    provider: BoundContract
    pool: BoundContract
    configurator: BoundContract
    oracle: BoundContract
    data_provider: BoundContract
    reserves: dict[str, AaveReserve] = field(default_factory=dict)
    emode_feeds: dict[int, BoundContract] = field(default_factory=dict)

    def reserve(self, symbol: str) -> AaveReserve:
        """The reserve of ``symbol`` (``KeyError`` names the known ones)."""
        try:
            return self.reserves[symbol]
        except KeyError:
            raise KeyError(f"no reserve {symbol!r}; have {sorted(self.reserves)}") from None

    async def set_price(self, symbol: str, price_usd: Decimal) -> None:
        """Move a reserve's feed (AaveOracle reads ``latestAnswer``)."""
        await self.reserve(symbol).feed.transact("setAnswer", feed_answer(price_usd))

    # -- user actions, as transaction dicts for ``send_batch`` --------------------------------

    def mint_tx(self, symbol: str, to: str, raw: int) -> dict[str, str]:
        """Mint ``raw`` of ``symbol`` to ``to`` (sent by the admin)."""
        return self.reserve(symbol).token.tx("mint", to, raw, sender=self.admin, gas=200_000)

    def approve_tx(self, symbol: str, owner: str) -> dict[str, str]:
        """Let the Pool pull ``symbol`` from ``owner`` without limit."""
        token = self.reserve(symbol).token
        return token.tx("approve", self.pool.address, MAX_UINT, sender=owner, gas=200_000)

    def supply_tx(self, symbol: str, user: str, raw: int) -> dict[str, str]:
        """``Pool.supply`` of ``raw`` ``symbol`` by ``user`` for itself."""
        asset = self.reserve(symbol).address
        return self.pool.tx("supply", asset, raw, user, 0, sender=user, gas=USER_TX_GAS)

    def borrow_tx(
        self, symbol: str, user: str, raw: int, *, mode: int = VARIABLE_RATE_MODE
    ) -> dict[str, str]:
        """``Pool.borrow`` of ``raw`` ``symbol`` by ``user`` (variable rate by default)."""
        asset = self.reserve(symbol).address
        return self.pool.tx("borrow", asset, raw, mode, 0, user, sender=user, gas=USER_TX_GAS)

    def collateral_tx(self, symbol: str, user: str, enabled: bool) -> dict[str, str]:
        """Switch ``symbol`` on or off as ``user``'s collateral."""
        asset = self.reserve(symbol).address
        return self.pool.tx(
            "setUserUseReserveAsCollateral", asset, enabled, sender=user, gas=USER_TX_GAS
        )

    def emode_tx(self, user: str, category: int) -> dict[str, str]:
        """Put ``user`` into e-mode ``category`` (0 leaves it)."""
        return self.pool.tx("setUserEMode", category, sender=user, gas=USER_TX_GAS)


async def impersonate(dev: DevChain, accounts: Sequence[str], *, eth: int = 10**21) -> None:
    """Let the node sign for ``accounts`` and give each ``eth`` wei for gas."""
    calls: list[tuple[str, Sequence[Any]]] = []
    for account in accounts:
        calls.append(("anvil_impersonateAccount", [account]))
        calls.append(("anvil_setBalance", [account, hex(eth)]))
    for start in range(0, len(calls), 500):
        await dev.rpc_batch(calls[start : start + 500])


async def deploy_aave_market(
    dev: DevChain,
    *,
    reserves: Sequence[ReserveSpec] = DEFAULT_RESERVES,
    emodes: Sequence[EModeSpec] = DEFAULT_EMODES,
    market_id: str = "crossmargin-dev",
    liquidity_usd: Decimal = DEFAULT_LIQUIDITY_USD,
) -> AaveMarket:
    """Deploy and configure a complete Aave v3 market; returns its contracts.

    ``dev.accounts[8]`` then supplies ``liquidity_usd`` of every reserve, so users can borrow.
    """
    admin = dev.accounts[0]
    treasury = dev.accounts[9]

    provider = await deploy_artifact(dev, aave_artifact("PoolAddressesProvider"), market_id, admin)
    await provider.transact("setACLAdmin", admin)
    acl = await deploy_artifact(dev, aave_artifact("ACLManager"), provider.address)
    await provider.transact("setACLManager", acl.address)
    await acl.transact("addPoolAdmin", admin)
    await acl.transact("addEmergencyAdmin", admin)

    libraries: dict[str, str] = {}
    for name in LOGIC_LIBRARIES:
        libraries[name] = (await deploy_artifact(dev, aave_artifact(name))).address
    flash = await deploy_artifact(dev, aave_artifact("FlashLoanLogic"), libraries=libraries)
    libraries["FlashLoanLogic"] = flash.address
    pool_impl = await deploy_artifact(
        dev, aave_artifact("Pool"), provider.address, libraries=libraries
    )
    await pool_impl.transact("initialize", provider.address)
    await provider.transact("setPoolImpl", pool_impl.address)
    pool = pool_impl.at(await provider.call("getPool"))

    configurator_logic = await deploy_artifact(dev, aave_artifact("ConfiguratorLogic"))
    configurator_impl = await deploy_artifact(
        dev,
        aave_artifact("PoolConfigurator"),
        libraries={"ConfiguratorLogic": configurator_logic.address},
    )
    await configurator_impl.transact("initialize", provider.address)
    await provider.transact("setPoolConfiguratorImpl", configurator_impl.address)
    configurator = configurator_impl.at(await provider.call("getPoolConfigurator"))

    data_provider = await deploy_artifact(
        dev, aave_artifact("AaveProtocolDataProvider"), provider.address
    )
    await provider.transact("setPoolDataProvider", data_provider.address)

    token_artifact = fixture_artifact("MintableERC20")
    feed_artifact = fixture_artifact("MockAggregatorV3")
    deployed: dict[str, AaveReserve] = {}
    for spec in reserves:
        token = await deploy_artifact(dev, token_artifact, spec.symbol, spec.symbol, spec.decimals)
        feed = await deploy_artifact(
            dev, feed_artifact, PRICE_DECIMALS, f"{spec.symbol} / USD", feed_answer(spec.price_usd)
        )
        deployed[spec.symbol] = AaveReserve(spec=spec, token=token, feed=feed)
    emode_feeds: dict[int, BoundContract] = {}
    for emode in emodes:
        if emode.price_usd is not None:
            emode_feeds[emode.category] = await deploy_artifact(
                dev,
                feed_artifact,
                PRICE_DECIMALS,
                f"e-mode {emode.category} / USD",
                feed_answer(emode.price_usd),
            )
    # An e-mode price source is an "asset" key of AaveOracle: the feed's own address here.
    oracle_assets = [r.address for r in deployed.values()] + [
        f.address for f in emode_feeds.values()
    ]
    oracle_sources = [r.feed.address for r in deployed.values()] + [
        f.address for f in emode_feeds.values()
    ]
    oracle = await deploy_artifact(
        dev,
        aave_artifact("AaveOracle"),
        provider.address,
        oracle_assets,
        oracle_sources,
        "0x" + "00" * 20,
        "0x" + "00" * 20,
        10**PRICE_DECIMALS,
    )
    await provider.transact("setPriceOracle", oracle.address)

    a_token_impl = await deploy_artifact(dev, aave_artifact("AToken"), pool.address)
    stable_impl = await deploy_artifact(dev, aave_artifact("StableDebtToken"), pool.address)
    variable_impl = await deploy_artifact(dev, aave_artifact("VariableDebtToken"), pool.address)
    strategy = await deploy_artifact(
        dev, aave_artifact("DefaultReserveInterestRateStrategy"), provider.address, *RATE_STRATEGY
    )
    inputs = [
        (
            a_token_impl.address,
            stable_impl.address,
            variable_impl.address,
            r.spec.decimals,
            strategy.address,
            r.address,
            treasury,
            "0x" + "00" * 20,
            f"Aave {r.spec.symbol}",
            f"a{r.spec.symbol}",
            f"Aave variable debt {r.spec.symbol}",
            f"variableDebt{r.spec.symbol}",
            f"Aave stable debt {r.spec.symbol}",
            f"stableDebt{r.spec.symbol}",
            b"",
        )
        for r in deployed.values()
    ]
    await configurator.transact("initReserves", inputs)
    for r in deployed.values():
        await _configure_reserve(configurator, r)
        data = await pool.call("getReserveData", r.address)
        r.a_token, r.stable_debt_token, r.variable_debt_token = data[8], data[9], data[10]
    for emode in emodes:
        price_source = (
            emode_feeds[emode.category].address if emode.category in emode_feeds else None
        )
        await configurator.transact(
            "setEModeCategory",
            emode.category,
            emode.ltv,
            emode.liquidation_threshold,
            emode.liquidation_bonus,
            price_source or "0x" + "00" * 20,
            emode.label,
        )
    for r in deployed.values():
        if r.spec.emode_category:
            await configurator.transact("setAssetEModeCategory", r.address, r.spec.emode_category)

    market = AaveMarket(
        dev=dev,
        admin=admin,
        treasury=treasury,
        provider=provider,
        pool=pool,
        configurator=configurator,
        oracle=oracle,
        data_provider=data_provider,
        reserves=deployed,
        emode_feeds=emode_feeds,
    )
    if liquidity_usd > 0:
        provider_of_liquidity = dev.accounts[8]
        await open_positions(
            market,
            {
                provider_of_liquidity: [
                    ("supply", r.spec.symbol, r.units(liquidity_usd / r.spec.price_usd))
                    for r in deployed.values()
                ]
            },
        )
    return market


async def _configure_reserve(configurator: BoundContract, reserve: AaveReserve) -> None:
    spec, asset = reserve.spec, reserve.address
    await configurator.transact(
        "configureReserveAsCollateral",
        asset,
        spec.ltv,
        spec.liquidation_threshold,
        spec.liquidation_bonus,
    )
    if spec.borrowing:
        await configurator.transact("setReserveBorrowing", asset, True)
    if spec.stable_borrowing:
        await configurator.transact("setReserveStableRateBorrowing", asset, True)
    if spec.borrowable_in_isolation:
        await configurator.transact("setBorrowableInIsolation", asset, True)
    await configurator.transact("setReserveFactor", asset, spec.reserve_factor)
    await configurator.transact("setLiquidationProtocolFee", asset, spec.protocol_fee)


async def open_positions(market: AaveMarket, plans: Mapping[str, Sequence[Any]]) -> None:
    """Run many users' actions in bulk.

    ``plans`` maps a user address to its actions in order: ``("supply", symbol, raw)``,
    ``("borrow", symbol, raw)`` / ``("borrow_stable", symbol, raw)``,
    ``("collateral", symbol, enabled)``, ``("emode", category)``. Users are impersonated and
    funded; each round sends every user's next action in one batch, so a user's actions stay
    in order while different users' actions share blocks.
    """
    users = list(plans)
    await impersonate(market.dev, users)
    mints: list[dict[str, str]] = []
    approvals: list[dict[str, str]] = []
    for user, actions in plans.items():
        supplied = {a[1] for a in actions if a[0] == "supply"}
        mints += [market.mint_tx(a[1], user, a[2]) for a in actions if a[0] == "supply"]
        approvals += [market.approve_tx(symbol, user) for symbol in sorted(supplied)]
    await send_batch(market.dev, mints + approvals)
    rounds = max((len(a) for a in plans.values()), default=0)
    for i in range(rounds):
        txs = [_action_tx(market, user, acts[i]) for user, acts in plans.items() if i < len(acts)]
        await send_batch(market.dev, txs)


def _action_tx(market: AaveMarket, user: str, action: Sequence[Any]) -> dict[str, str]:
    match action[0]:
        case "supply":
            return market.supply_tx(action[1], user, action[2])
        case "borrow":
            return market.borrow_tx(action[1], user, action[2])
        case "borrow_stable":
            return market.borrow_tx(action[1], user, action[2], mode=STABLE_RATE_MODE)
        case "collateral":
            return market.collateral_tx(action[1], user, action[2])
        case "emode":
            return market.emode_tx(user, action[1])
    raise ValueError(f"unknown action {action!r}")
