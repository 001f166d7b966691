"""A running keeper API over a real PostgreSQL store filled through the real margin engine.

``running_api()`` creates a fresh database (``tests.storekit``), migrates it, writes one
engine cycle of a small lending book with breakdowns, its balances and an oracle round, then
serves the API on a free loopback port with a ``StaticView`` standing in for the daemon.

The book (40 accounts, ETH 2,000 with 100 % volatility, the arb sequencer down):
- every account: 1 ETH (eth) + 100 USDC (arb) as collateral, USDC debt on eth;
- under water, by shortfall: #30 (230.00) and #10 (210.00) hold nothing on arb, so they are
  actionable; #20 (130.00) and #0 (110.00) hold arb USDC, whose sequencer is down: listed but
  held (``SEQUENCER_DOWN``);
- #5 owes 1,680: solvent now (health 1.006) but not over eth's liquidation latency
  (``LATENCY_RISK``);
- #40 holds 1 ETH and owes nothing: infinite health.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from chains.blocks import BlockRef
from chains.rpc_endpoint import EndpointState, EndpointStatus
from chains.watcher import BalanceUpdate, ChainStatus, Reading
from core.redaction import redact_url
from daemon.api.app import ApiServer
from daemon.api.positions import PositionMarkets
from daemon.api.stream import StreamHub
from daemon.config.model import ApiConfig
from daemon.documents import chain_document, price_document
from daemon.metrics import Metrics
from daemon.store.leases import LeaseStore
from daemon.store.migrate import migrate
from daemon.store.rows import CycleContext, HealthRows
from daemon.store.writer import HealthStore
from margin.engine import MarginEngine
from margin.model import ChainInput, PriceInput
from margin.scenario import ScenarioBook
from oracles.sequencer import SequencerStatus
from tests.storekit import (
    DUSDC,
    USDC_ARB,
    WETH,
    account_address,
    asset_price,
    book,
    fresh_database,
    postgres_database,
)

TOKEN = f"test-token-{secrets.token_hex(16)}"
ACCOUNTS = 40
UNDERWATER = (30, 10, 20, 0)
"""Liquidatable accounts, largest shortfall first."""
SHORTFALLS = ("230.00", "210.00", "130.00", "110.00")
NOTHING_ON_ARB = (10, 30)
LATENCY_RISK_ACCOUNT = 5
NO_DEBT_ACCOUNT = ACCOUNTS
ETH_BLOCK, ARB_BLOCK = 100, 200
CYCLE_AT = 1_700_000_000.0
RPC_KEY_URL = "https://eth.rpc.example/v2/0123456789abcdef0123456789abcdef"
MARKETS = PositionMarkets(
    assets=frozenset({"ETH", "USDC", "BTC"}), chains=frozenset({"eth", "arb"})
)
MAX_BODY_BYTES = 8192


@dataclass
class StaticView:
    """A ``DaemonView`` with fixed answers, recording ``position_changed`` calls."""

    chains: list[Mapping[str, object]] = field(default_factory=list)
    prices: list[Mapping[str, object]] | None = None
    not_ready: list[str] = field(default_factory=list)
    failing: list[dict[str, object]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    engine: MarginEngine | None = None

    def stress_book(self) -> ScenarioBook | None:
        return None if self.engine is None else self.engine.snapshot()

    def chain_statuses(self) -> list[Mapping[str, object]]:
        return self.chains

    def price_statuses(self) -> list[Mapping[str, object]] | None:
        return self.prices

    def readiness(self) -> list[str]:
        return list(self.not_ready)

    def read_failures(self) -> list[dict[str, object]]:
        return list(self.failing)

    async def position_changed(self, account: str) -> None:
        self.changed.append(account)


@dataclass
class RunningApi:
    """What a test gets: the server's URL and everything behind it."""

    url: str
    store: HealthStore
    view: StaticView
    metrics: Metrics
    engine: MarginEngine
    hub: StreamHub
    server: ApiServer


def block(number: int, chain: str) -> BlockRef:
    tag = "e" if chain == "eth" else "a"
    return BlockRef(
        number=number,
        hash=f"0x{tag * 2}{number:062x}",
        parent_hash=f"0x{tag * 2}{number - 1:062x}",
        timestamp=int(CYCLE_AT) + number,
    )


def lending_book() -> MarginEngine:
    """The book described in the module docstring, on the real engine."""
    engine = book(ACCOUNTS)
    engine.set_prices(
        [
            PriceInput(asset="ETH", price=2_000.0, volatility=1.0),
            PriceInput(asset="USDC", price=1.0),
        ]
    )
    engine.set_chain_status(
        [ChainInput(name="arb", liquidation_latency_s=3_600, sequencer_down=True)]
    )
    for i in UNDERWATER:
        engine.set_balance(account_address(i), "eth", DUSDC, (1_800 + i) * 10**6, ETH_BLOCK)
    for i in NOTHING_ON_ARB:
        engine.set_balance(account_address(i), "arb", USDC_ARB, 0, ARB_BLOCK)
    engine.set_balance(
        account_address(LATENCY_RISK_ACCOUNT), "eth", DUSDC, 1_680 * 10**6, ETH_BLOCK
    )
    engine.set_balance(account_address(NO_DEBT_ACCOUNT), "eth", WETH, 10**18, ETH_BLOCK)
    return engine


def _balances(
    engine: MarginEngine, chain: str, tokens: tuple[str, ...], number: int
) -> BalanceUpdate:
    at = block(number, chain)
    readings = {}
    for account in engine.accounts:
        for holding in engine.account_health(account).holdings:
            if holding.chain == chain and holding.token in tokens:
                readings[(account, holding.token)] = Reading(holding.raw, at.number, at.hash)
    if chain == "arb":
        for i in NOTHING_ON_ARB:
            readings[(account_address(i), USDC_ARB)] = Reading(0, at.number, at.hash)
    return BalanceUpdate(chain=chain, block=at, readings=readings)


async def fill(store: HealthStore, engine: MarginEngine) -> None:
    """One engine cycle with breakdowns, the balances behind it, one oracle round."""
    healths = [engine.account_health(a) for a in engine.accounts]
    rows = HealthRows.from_accounts(healths, value_decimals=2)
    context = CycleContext(
        at=CYCLE_AT,
        blocks={"eth": ETH_BLOCK, "arb": ARB_BLOCK},
        prices={"ETH": "2000", "USDC": "1"},
    )
    await store.write_cycle(rows, context)
    await store.apply_balance_update(_balances(engine, "eth", (WETH, DUSDC), ETH_BLOCK))
    await store.apply_balance_update(_balances(engine, "arb", (USDC_ARB,), ARB_BLOCK))
    await store.record_prices(
        [asset_price("ETH", "2000", CYCLE_AT), asset_price("USDC", "1.0001", CYCLE_AT)]
    )


def chain_statuses() -> list[Mapping[str, object]]:
    """Two chains as the watchers would report them (the RPC key redacted)."""
    endpoint = EndpointStatus(
        url=redact_url(RPC_KEY_URL),
        state=EndpointState.HEALTHY,
        consecutive_failures=0,
        parked_remaining_s=0.0,
        last_error=None,
        latency_ewma_ms=12.5,
        requests=10,
        errors=1,
        chain_id_verified=True,
    )
    statuses: list[Mapping[str, object]] = []
    for name, chain_id, number in (("eth", 1, ETH_BLOCK), ("arb", 42161, ARB_BLOCK)):
        at = block(number, name)
        status = ChainStatus(
            chain=name,
            chain_id=chain_id,
            head_number=number + 2,
            head_hash=at.hash,
            last_read_number=number,
            last_read_hash=at.hash,
            last_read_age_s=3.5,
            since_head_s=0.5,
            stale=False,
            reorgs=1,
            accounts=ACCOUNTS,
            holdings=ACCOUNTS * 2,
            failed_reads=0,
            batch_size=1000,
            last_error=None,
            endpoints=(endpoint,),
        )
        sequencer = SequencerStatus.DOWN if name == "arb" else None
        statuses.append(chain_document(status, sequencer=sequencer))
    return statuses


@asynccontextmanager
async def _database(dialect: str) -> AsyncIterator[str]:
    if dialect == "postgresql":
        async with postgres_database("crossmargin_api") as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="crossmargin_api_") as directory:
        async with fresh_database(dialect, Path(directory)) as url:
            yield url


@asynccontextmanager
async def running_api(
    *,
    token: str | None = TOKEN,
    live_prices: bool = False,
    dialect: str = "postgresql",
    cluster_ttl_s: float | None = None,
    **limits: Any,
) -> AsyncIterator[RunningApi]:
    """A fresh database (``dialect``) with the book, served on 127.0.0.1 (a free port).

    ``cluster_ttl_s``: serve ``/v1/cluster`` in cluster mode, with a lease table of four
    shards, two of them held by replica ``api-test`` (PostgreSQL only).
    ``limits`` are further ``ApiConfig`` keys (timeouts, connection cap).
    """
    async with _database(dialect) as url:
        await migrate(url)
        async with await HealthStore.open(url) as store:
            engine = lending_book()
            await fill(store, engine)
            if cluster_ttl_s is not None:
                leases = LeaseStore(store.engine, replica_id="api-test", ttl_s=cluster_ttl_s)
                await leases.ensure_shards(4)
                await leases.heartbeat()
                await leases.acquire(2)
            prices: list[Mapping[str, object]] = [
                price_document(asset_price("ETH", "2001.5", CYCLE_AT + 10))
            ]
            view = StaticView(
                chains=chain_statuses(),
                prices=prices if live_prices else None,
                engine=engine,
            )
            settings = ApiConfig(
                listen="127.0.0.1:0",
                token=None if token is None else SecretStr(token),
                max_body_bytes=MAX_BODY_BYTES,
                **limits,
            )
            metrics = Metrics()
            server = ApiServer(
                queries=store.queries,
                store=store,
                view=view,
                settings=settings,
                metrics=metrics,
                markets=MARKETS,
                cluster_ttl_s=cluster_ttl_s,
            )
            async with server:
                yield RunningApi(
                    url=server.url,
                    store=store,
                    view=view,
                    metrics=metrics,
                    engine=engine,
                    hub=server.hub,
                    server=server,
                )
