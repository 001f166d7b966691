"""Isolated databases for store tests: a fresh PostgreSQL database or a SQLite file each.

PostgreSQL runs on 127.0.0.1:5432 with trust auth (DESIGN §7); the admin role is ``postgres``
or, failing that, ``root``. Each database is ``crossmargin_test_<random>`` and is dropped
afterwards (connections still open are terminated first).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import asyncpg

from chains.blocks import BlockRef
from chains.readings import ReadColumns, TokenReads
from chains.watcher import BalanceUpdate
from core.domain import PriceStatus, Role
from daemon.store.rows import HealthRows
from margin.engine import MarginEngine
from margin.model import ChainInput, PriceInput, TokenRisk
from oracles.model import AssetPrice, DropReason

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DATABASE = "test"
PG_ROLES = ("postgres", "root")
DIALECTS = ("postgresql", "sqlite")


async def _admin() -> tuple[asyncpg.Connection, str]:
    problem: Exception | None = None
    for role in PG_ROLES:
        try:
            conn = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=role, database=PG_ADMIN_DATABASE
            )
        except (OSError, asyncpg.PostgresError) as exc:
            problem = exc
            continue
        return conn, role
    raise RuntimeError(f"no PostgreSQL at {PG_HOST}:{PG_PORT}: {problem}")


@asynccontextmanager
async def postgres_database(prefix: str = "crossmargin_test") -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database ``<prefix>_<random>``; yields its asyncpg URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin, role = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{role}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


@asynccontextmanager
async def fresh_database(dialect: str, directory: Path) -> AsyncIterator[str]:
    """An empty database of ``dialect`` (``postgresql`` or ``sqlite`` in ``directory``)."""
    if dialect == "postgresql":
        async with postgres_database() as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{(directory / 'store.sqlite3').as_posix()}"


# ---- blocks and balance updates as a watcher makes them ---------------------------------


def block(number: int, tag: str = "a") -> BlockRef:
    """Block ``number`` of a made-up chain; ``tag`` tells forks apart (their hashes differ)."""
    return BlockRef(
        number=number,
        hash=f"0x{tag * 2}{number:062x}",
        parent_hash=f"0x{tag * 2}{number - 1:062x}",
        timestamp=1_700_000_000 + number,
    )


def update(
    chain: str, at: BlockRef, values: dict[tuple[str, str], int | None], dropped: int | None = None
) -> BalanceUpdate:
    """A watcher's update: ``values`` by (account, token), read at ``at`` (``None``: failed),
    in the watcher's columns (``tests/store/test_bulk.py`` stores plain dicts)."""
    tokens: dict[str, TokenReads] = {}
    for (account, token), raw in values.items():
        column = tokens.setdefault(token, TokenReads())
        column.accounts.append(account)
        column.raws.append(raw)
        column.failed += raw is None
    readings = ReadColumns(at.number, at.hash, tokens)
    return BalanceUpdate(chain=chain, block=at, readings=readings, dropped_above=dropped)


# ---- a small lending book on the real margin engine ------------------------------------

WETH = "0x00000000000000000000000000000000000e7e01"
USDC_ARB = "0x00000000000000000000000000000000000a5dc1"
DUSDC = "0x00000000000000000000000000000000000d5dc1"
BOOK_TOKENS = (
    TokenRisk(chain="eth", token=WETH, asset="ETH", role=Role.COLLATERAL, weight=0.8, decimals=18),
    TokenRisk(
        chain="arb", token=USDC_ARB, asset="USDC", role=Role.COLLATERAL, weight=0.9, decimals=6
    ),
    TokenRisk(chain="eth", token=DUSDC, asset="USDC", role=Role.LIABILITY, weight=1.0, decimals=6),
)
BOOK_CHAINS = (
    ChainInput(name="eth", liquidation_latency_s=900),
    ChainInput(name="arb", liquidation_latency_s=3_600),
)


def account_address(i: int) -> str:
    """The ``i``-th test account (lower-case hex)."""
    return f"0x{0xACC0:04x}{i:036x}"


def book(n: int, *, eth_price: float = 2_000.0, underwater_every: int = 10) -> MarginEngine:
    """``n`` accounts: 1 ETH on eth and 100 USDC on arb as collateral, USDC debt on eth.
    Every ``underwater_every``-th account owes 1,800 USDC (liquidatable at ETH 2,000: its
    weighted collateral is 1,690), the others 1,000."""
    engine = MarginEngine(tokens=BOOK_TOKENS, chains=BOOK_CHAINS)
    engine.set_prices(
        [PriceInput(asset="ETH", price=eth_price), PriceInput(asset="USDC", price=1.0)]
    )
    accounts = [account_address(i) for i in range(n)]
    debts = [(1_800 if i % underwater_every == 0 else 1_000) * 10**6 for i in range(n)]
    engine.load_balances("eth", WETH, accounts, [10**18] * n, 100)
    engine.load_balances("arb", USDC_ARB, accounts, [100 * 10**6] * n, 200)
    engine.load_balances("eth", DUSDC, accounts, debts, 100)
    return engine


def book_rows(engine: MarginEngine) -> HealthRows:
    """All of the engine's accounts as ``HealthRows`` (full recompute, no breakdowns)."""
    table = engine.recompute_all()
    return HealthRows.from_table(
        list(engine.accounts), table, value_decimals=engine.params.value_decimals
    )


def asset_price(symbol: str, price: str, round_at: float, *, volatility: float = 0.6) -> AssetPrice:
    """An accepted (OK) oracle round of ``symbol`` at ``price``, as the store and API see it."""
    value = Decimal(price)
    return AssetPrice(
        symbol=symbol,
        status=PriceStatus.OK,
        price=value,
        price_low=value,
        price_high=value,
        observed_at=round_at - 1,
        held=False,
        hold_reason=None,
        used=("cl", "http"),
        anchors=(),
        dropped={"twap": DropReason.STALE},
        round_price=value,
        spread=0.001,
        volatility=volatility,
        pending=None,
        round_at=round_at,
    )
