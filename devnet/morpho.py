"""Morpho Blue on a dev chain: the ``Morpho`` contract compiled from npm
``@morpho-org/morpho-blue`` 1.0.0 (``contracts/vendor/morpho-blue``), with the package's own
mocks: ``OracleMock`` (a settable 1e36-scaled price), ``IrmMock`` (borrow rate = utilization /
365 days per second: non-zero as soon as something is borrowed, so interest accrues) and
``ERC20Mock``. Tokens with decimals and symbols are our ``MintableERC20``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from devnet.aave import MAX_UINT, impersonate
from devnet.driver import DevChain
from devnet.vendor import (
    BoundContract,
    deploy_artifact,
    fixture_artifact,
    send_batch,
    vendor_artifact,
)

MORPHO_PACKAGE = "morpho-blue"
ORACLE_PRICE_SCALE = 10**36
WAD = 10**18
USER_TX_GAS = 800_000


@dataclass(frozen=True, slots=True)
class MorphoMarketSpec:
    """A market to create: token symbols/decimals, LLTV (WAD), initial oracle price (1e36
    scale: loan-token raw units per collateral raw unit), fee (WAD), ERC20Mock tokens or not."""

    loan_symbol: str
    loan_decimals: int
    collateral_symbol: str
    collateral_decimals: int
    lltv: int
    price: int
    fee: int = 0
    erc20_mock: bool = False


def oracle_price(
    collateral_usd: float | int, loan_usd: float | int, collateral_decimals: int, loan_decimals: int
) -> int:
    """Morpho oracle price for whole-token USD prices: loan raw per collateral raw × 1e36."""
    scale = ORACLE_PRICE_SCALE * 10**loan_decimals // 10**collateral_decimals
    return int(scale * collateral_usd / loan_usd)


DEFAULT_MARKETS = (
    MorphoMarketSpec("USDC", 6, "WETH", 18, 86 * WAD // 100, oracle_price(3_000, 1, 18, 6)),
    MorphoMarketSpec(
        "USDC", 6, "WBTC", 8, 915 * WAD // 1000, oracle_price(60_000, 1, 8, 6), fee=WAD // 10
    ),
    MorphoMarketSpec(
        "MLOAN", 18, "MCOLL", 18, 77 * WAD // 100, 2 * ORACLE_PRICE_SCALE, erc20_mock=True
    ),
)


@dataclass(slots=True)
class MorphoMarket:
    """One created market: its params tuple, id and contracts."""

    spec: MorphoMarketSpec
    loan: BoundContract
    collateral: BoundContract
    oracle: BoundContract
    irm: BoundContract

    @property
    def params(self) -> tuple[str, str, str, str, int]:
        """``MarketParams`` (loanToken, collateralToken, oracle, irm, lltv)."""
        return (
            self.loan.address,
            self.collateral.address,
            self.oracle.address,
            self.irm.address,
            self.spec.lltv,
        )

    @property
    def id(self) -> str:
        """The market id: keccak256 of the ABI-encoded params (``MarketParamsLib.id``)."""
        return "0x" + self.id_bytes.hex()

    @property
    def id_bytes(self) -> bytes:
        """The market id as 32 bytes (for ``bytes32`` arguments)."""
        return keccak(
            abi_encode(["address", "address", "address", "address", "uint256"], self.params)
        )


@dataclass(slots=True)
class MorphoDeployment:
    """Morpho, its markets and the helpers tests drive it with."""

    dev: DevChain
    owner: str
    morpho: BoundContract
    markets: list[MorphoMarket] = field(default_factory=list)

    def fund_tx(self, token: BoundContract, to: str, raw: int) -> dict[str, str]:
        """Give ``to`` ``raw`` of ``token`` (``mint``, or ``setBalance`` on an ERC20Mock)."""
        if token.name == "ERC20Mock":
            return token.tx("setBalance", to, raw, sender=self.owner, gas=200_000)
        return token.tx("mint", to, raw, sender=self.owner, gas=200_000)

    def approve_tx(self, token: BoundContract, owner: str) -> dict[str, str]:
        """Let Morpho pull ``token`` from ``owner``."""
        return token.tx("approve", self.morpho.address, MAX_UINT, sender=owner, gas=200_000)

    def action_tx(self, market: MorphoMarket, user: str, action: Sequence[Any]) -> dict[str, str]:
        """``("supply", raw)``, ``("collateral", raw)`` or ``("borrow", raw)`` for ``user``."""
        m, p = self.morpho, market.params
        match action[0]:
            case "supply":
                return m.tx("supply", p, action[1], 0, user, b"", sender=user, gas=USER_TX_GAS)
            case "collateral":
                return m.tx(
                    "supplyCollateral", p, action[1], user, b"", sender=user, gas=USER_TX_GAS
                )
            case "borrow":
                return m.tx("borrow", p, action[1], 0, user, user, sender=user, gas=USER_TX_GAS)
        raise ValueError(f"unknown action {action!r}")

    async def open_positions(
        self, plans: Mapping[str, Sequence[tuple[MorphoMarket, Sequence[Any]]]]
    ) -> None:
        """Run users' ``(market, action)`` lists in bulk (funding and approvals first)."""
        await impersonate(self.dev, list(plans))
        setup: list[dict[str, str]] = []
        for user, actions in plans.items():
            balances: dict[str, tuple[BoundContract, int]] = {}
            for market, action in actions:
                if action[0] in ("supply", "collateral"):
                    token = market.loan if action[0] == "supply" else market.collateral
                    _, before = balances.get(token.address, (token, 0))
                    balances[token.address] = (token, before + action[1])
            for token, raw in balances.values():
                setup.append(self.fund_tx(token, user, raw))
                setup.append(self.approve_tx(token, user))
        await send_batch(self.dev, setup)
        rounds = max((len(a) for a in plans.values()), default=0)
        for i in range(rounds):
            txs = [
                self.action_tx(acts[i][0], user, acts[i][1])
                for user, acts in plans.items()
                if i < len(acts)
            ]
            await send_batch(self.dev, txs)


async def deploy_morpho(
    dev: DevChain,
    *,
    markets: Sequence[MorphoMarketSpec] = DEFAULT_MARKETS,
    liquidity: int = 10**6,
) -> MorphoDeployment:
    """Deploy Morpho, create ``markets`` (IRM and LLTVs enabled first) and let
    ``dev.accounts[8]`` supply ``liquidity`` whole loan tokens to each."""
    owner = dev.accounts[0]
    morpho = await deploy_artifact(dev, vendor_artifact(MORPHO_PACKAGE, "Morpho"), owner)
    irm = await deploy_artifact(dev, vendor_artifact(MORPHO_PACKAGE, "IrmMock"))
    await morpho.transact("enableIrm", irm.address)
    await morpho.transact("setFeeRecipient", dev.accounts[9])
    deployment = MorphoDeployment(dev=dev, owner=owner, morpho=morpho)
    tokens: dict[tuple[str, int, bool], BoundContract] = {}
    enabled: set[int] = set()

    async def token(symbol: str, decimals: int, mock: bool) -> BoundContract:
        key = (symbol, decimals, mock)
        if key not in tokens:
            if mock:
                tokens[key] = await deploy_artifact(
                    dev, vendor_artifact(MORPHO_PACKAGE, "ERC20Mock")
                )
            else:
                artifact = fixture_artifact("MintableERC20")
                tokens[key] = await deploy_artifact(dev, artifact, symbol, symbol, decimals)
        return tokens[key]

    for spec in markets:
        oracle = await deploy_artifact(dev, vendor_artifact(MORPHO_PACKAGE, "OracleMock"))
        await oracle.transact("setPrice", spec.price)
        market = MorphoMarket(
            spec=spec,
            loan=await token(spec.loan_symbol, spec.loan_decimals, spec.erc20_mock),
            collateral=await token(
                spec.collateral_symbol, spec.collateral_decimals, spec.erc20_mock
            ),
            oracle=oracle,
            irm=irm,
        )
        if spec.lltv not in enabled:
            await morpho.transact("enableLltv", spec.lltv)
            enabled.add(spec.lltv)
        await morpho.transact("createMarket", market.params)
        if spec.fee:
            await morpho.transact("setFee", market.params, spec.fee)
        deployment.markets.append(market)
    if liquidity:
        lp = dev.accounts[8]
        await deployment.open_positions(
            {
                lp: [
                    (m, ("supply", liquidity * 10**m.spec.loan_decimals))
                    for m in deployment.markets
                ]
            }
        )
    return deployment
