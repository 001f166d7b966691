"""The chaos storm's world: the real daemon, supervised, with its database and broker behind
TCP proxies, and the bench's own direct lines to the chains and the database.

Built on ``tests.daemonkit.world`` (two Anvil chains with 1 s blocks, loopback price sources,
a fresh PostgreSQL database, a private Mosquitto). The daemon reaches PostgreSQL and the
broker only through ``tests.tcpproxy.TcpProxy``; the bench reads the database and subscribes
to the broker directly, so its view never depends on the faults it injects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
import yaml

from bench.chaos_book import ERC20, Planner, State, Tx
from bench.chaos_daemon import FaultLine, Supervisor
from devnet import DevChain
from devnet.driver import encode_call
from tests.daemonkit import World, world
from tests.mqttkit import Subscriber
from tests.storekit import postgres_database
from tests.tcpproxy import TcpProxy

GAS_ETH_WEI = 100 * 10**18  # native balance of every account (it sends its own transfers)
SETUP_BLOCKS = 10  # mined after set-up, so no reorg reaches back into it


def account_addresses(count: int, seed: int) -> list[str]:
    """``count`` fresh lower-case addresses, the same for one ``seed``."""
    return [
        "0x" + hashlib.sha256(f"chaos-{seed}-{i}".encode()).hexdigest()[:40] for i in range(count)
    ]


class Store:
    """The bench's own connection to the daemon's database (never through the proxy)."""

    def __init__(self, database_url: str) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        """Connect."""
        self._conn = await asyncpg.connect(self.dsn)

    async def close(self) -> None:
        """Disconnect."""
        if self._conn is not None:
            await self._conn.close()

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None
        return self._conn

    async def scalar(self, sql: str) -> int:
        """An integer query result (0 when NULL or the table does not exist yet)."""
        try:
            return int(await self.conn.fetchval(sql) or 0)
        except asyncpg.UndefinedTableError:
            return 0

    async def last_transition(self) -> int:
        """The highest ``health_transitions`` id."""
        return await self.scalar("SELECT max(id) FROM health_transitions")

    async def account_flags(self) -> dict[str, int]:
        """``account_health.flags`` per account."""
        try:
            rows = await self.conn.fetch("SELECT account, flags FROM account_health")
        except asyncpg.UndefinedTableError:
            return {}
        return {r["account"].lower(): int(r["flags"]) for r in rows}

    async def transitions(self, after_id: int = 0) -> list[asyncpg.Record]:
        """Stored transitions above ``after_id``, in id order."""
        try:
            return list(
                await self.conn.fetch(
                    "SELECT id, account, from_flags, to_flags, cycle_id, published_at"
                    " FROM health_transitions WHERE id > $1 ORDER BY id",
                    after_id,
                )
            )
        except asyncpg.UndefinedTableError:
            return []


class Chains:
    """The bench's own reads and writes on the two chains."""

    def __init__(self, w: World) -> None:
        self.devs: dict[str, DevChain] = {"l1": w.l1, "l2": w.l2}
        self.tokens = {"l1": w.weth, "l2": w.debt}

    async def head(self, chain: str) -> tuple[int, str]:
        """(number, hash) of the chain's head."""
        return await self.devs[chain].head()

    async def canonical(self, chain: str, number: int, block_hash: str) -> bool:
        """Whether ``block_hash`` is the chain's block at ``number`` right now."""
        block = await self.devs[chain].rpc("eth_getBlockByNumber", [hex(number), False])
        return block is not None and block["hash"] == block_hash

    async def resync_clock(self, chain: str) -> None:
        """Put the chain's clock back on the wall clock after ``anvil_reorg``/``anvil_rollback``.

        Anvil 1.7.1 mines the blocks after a reorg or rollback of depth d with timestamps d
        seconds behind, for good: after a few dozen reorgs the newest block looks minutes old
        and the daemon rightly flags the chain ``STALE_CHAIN`` (its lag is the age of the last
        block read). A real chain's clock does not go back; the storm's must not either."""
        dev = self.devs[chain]
        latest = await dev.block_timestamp()
        await dev.set_next_block_timestamp(max(int(time.time()) + 1, latest + 1))

    async def balances(
        self, chain: str, accounts: Sequence[str], block_hash: str
    ) -> dict[str, int]:
        """The chain's token balance of every account at ``block_hash``."""
        token = self.tokens[chain]
        calls: list[tuple[str, Sequence[Any]]] = [
            (
                "eth_call",
                [
                    {"to": token, "data": "0x" + encode_call(ERC20, "balanceOf", a).hex()},
                    {"blockHash": block_hash},
                ],
            )
            for a in accounts
        ]
        results = await self.devs[chain].rpc_batch(calls)
        return {a: int(r, 16) for a, r in zip(accounts, results, strict=True)}

    async def state_at_heads(self, accounts: Sequence[str], eth: Decimal) -> State:
        """Every balance at each chain's current head, with the given ETH price."""
        (_, h1), (_, h2) = await self.head("l1"), await self.head("l2")
        return State(
            await self.balances("l1", accounts, h1), await self.balances("l2", accounts, h2), eth
        )

    async def send(self, txs: Sequence[Tx]) -> int:
        """Send ``txs`` (each from its own sender) and wait until all are mined; the highest
        block number they landed in (0 for none). A reverted one is reported, not raised:
        the bench reads the chain for the truth anyway."""
        if not txs:
            return 0
        sent: dict[str, list[str]] = {}
        for tx in txs:
            tx_hash = await self.devs[tx.chain].rpc("eth_sendTransaction", [tx.request()])
            sent.setdefault(tx.chain, []).append(tx_hash)
        highest = 0
        for chain, hashes in sent.items():
            receipts = await self._receipts(self.devs[chain], hashes)
            highest = max(highest, *(int(r["blockNumber"], 16) for r in receipts))
        return highest

    @staticmethod
    async def _receipts(dev: DevChain, hashes: list[str]) -> list[Any]:
        while True:
            found = await dev.rpc_batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            if all(found):
                return found
            await asyncio.sleep(0.05)


@dataclass
class StormWorld:
    """Everything the storm touches."""

    w: World
    accounts: list[str]
    database: FaultLine
    broker: FaultLine
    daemon: Supervisor
    store: Store
    chains: Chains
    events: Subscriber
    planner: Planner
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """Base URL of the daemon's API."""
        return self.w.api


def storm_config(
    w: World, accounts: Sequence[str], database: TcpProxy, broker: TcpProxy
) -> dict[str, Any]:
    """``World.config()`` with the storm's accounts, no latency horizon (so no latency
    shock: ``LIQUIDATABLE`` is the only flag an account can truly carry), and the database
    and broker reached through the proxies."""
    config = w.config()
    config["accounts"] = list(accounts)
    for chain in config["chains"]:
        chain["liquidation_latency_s"] = 0
    direct = sa.make_url(w.database_url)
    config["database_url"] = direct.set(port=database.port).render_as_string(hide_password=False)
    config["mqtt"]["url"] = f"mqtt://127.0.0.1:{broker.port}"
    return config


async def _fund_and_seed(
    w: World, accounts: Sequence[str], book: Mapping[str, tuple[int, int]]
) -> None:
    for dev in (w.l1, w.l2):
        await dev.rpc("anvil_autoImpersonateAccount", [True])
        await dev.rpc_batch([("anvil_setBalance", [a, hex(GAS_ETH_WEI)]) for a in accounts])
    await w.l1.mint_many(w.weth, [(a, book[a][0]) for a in accounts])
    await w.l2.mint_many(w.debt, [(a, book[a][1]) for a in accounts])
    for dev in (w.l1, w.l2):
        await dev.mine(SETUP_BLOCKS)


@contextlib.asynccontextmanager
async def storm_world(
    workdir: Path, account_count: int, seed: int, planner_rng: random.Random
) -> AsyncIterator[StormWorld]:
    """Set everything up (accounts seeded at ETH 2,000), the daemon not started yet."""
    accounts = account_addresses(account_count, seed)
    async with postgres_database("crossmargin_chaos") as url, world(workdir, url) as w:
        planner = Planner(planner_rng, w.weth, w.debt)
        book = planner.initial(accounts, Decimal(2000))
        await _fund_and_seed(w, accounts, book)
        pg = sa.make_url(url)
        assert pg.host is not None
        assert pg.port is not None
        async with (
            TcpProxy(pg.host, pg.port) as db_proxy,
            TcpProxy("127.0.0.1", w.broker.port) as mqtt_proxy,
            Subscriber(w.broker.port, f"{w.prefix}/events/#") as events,
        ):
            config = storm_config(w, accounts, db_proxy, mqtt_proxy)
            path = workdir / "chaos.yaml"
            path.write_text(yaml.safe_dump(config))
            database = FaultLine("database", db_proxy)
            store = Store(url)
            await store.open()
            daemon = Supervisor(path, workdir, database)
            try:
                yield StormWorld(
                    w=w,
                    accounts=accounts,
                    database=database,
                    broker=FaultLine("broker", mqtt_proxy),
                    daemon=daemon,
                    store=store,
                    chains=Chains(w),
                    events=events,
                    planner=planner,
                    config=config,
                )
            finally:
                await daemon.close()
                await store.close()
