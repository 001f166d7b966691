"""Several real ``crossmargin run`` replicas in cluster mode on one PostgreSQL database and one
Mosquitto, watching the world of ``tests.daemonkit`` (two Anvil chains, loopback prices) with a
book of ``BOOK`` accounts shaped like Bob (1 WETH on l1 against 1,500 of debt on l2: healthy
at ETH 2,000, liquidatable at 1,800), spread over ``SHARDS`` shards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from daemon.documents import HealthBucket
from daemon.mqtt.topics import AccountSignal, transition_events
from margin.model import Flag
from tests.daemonkit import API_TOKEN, BOB, DaemonProcess, World, world
from tests.mqttkit import Subscriber
from tests.pricekit import free_port
from tests.storekit import postgres_database
from tests.waitkit import eventually

BOOK = 24
SHARDS = 6
TTL_S = 2.0  # short leases keep the failover tests quick
CRASH, CALM = "1800", "2000"
DEBT = 1500 * 10**6
STARTUP_S = 90.0


def book_account(i: int) -> str:
    return BOB if i == 0 else f"0x{0xC105:04x}{i:036x}"


BOOK_ACCOUNTS = [book_account(i) for i in range(BOOK)]


@contextlib.asynccontextmanager
async def cluster_world(workdir: Path) -> AsyncIterator[World]:
    """The daemonkit world on a fresh PostgreSQL database, with the whole book minted."""
    async with postgres_database() as url, world(workdir, url) as w:
        extra = BOOK_ACCOUNTS[1:]
        await w.l1.mint_many(w.weth, [(a, 10**18) for a in extra])
        await w.l2.mint_many(w.debt, [(a, DEBT) for a in extra])
        yield w


class Replica:
    """One replica: its config (own API port and replica id) and its process."""

    def __init__(
        self, w: World, name: str, *, ttl_s: float, database_url: str | None = None
    ) -> None:
        self.name = name
        self.port = free_port()
        config = w.config()
        if database_url is not None:  # e.g. through a fault-injecting proxy
            config["database_url"] = database_url
        config["accounts"] = BOOK_ACCOUNTS
        config["api"]["listen"] = f"127.0.0.1:{self.port}"
        config["cluster"] = {
            "enabled": True,
            "shards": SHARDS,
            "lease_ttl_s": ttl_s,
            "replica_id": name,
        }
        self.config_path = w.workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.workdir = w.workdir
        self.runs = 0
        self.process: DaemonProcess | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runs += 1
        log = self.workdir / f"{self.name}-{self.runs}.log"
        self.process = DaemonProcess(self.config_path, log)
        await self.process.start()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        assert self.process.proc is not None
        self.process.proc.send_signal(signum)

    async def kill(self) -> None:
        """SIGKILL: no flush, no hand-over; its leases simply expire."""
        if self.process is not None and self.process.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.proc.send_signal(signal.SIGCONT)
            self.process.kill()
            await self.process.proc.wait()
        self.process = None

    async def stop(self) -> int:
        """SIGTERM: flush, publish, hand the leases back; the exit code."""
        assert self.process is not None
        code = await self.process.stop(timeout_s=60.0)
        self.process = None
        return code

    def log(self) -> str:
        return "" if self.process is None else self.process.log()

    async def get(self, path: str) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.api + path) as response,
        ):
            return response.status, json.loads(await response.text())

    async def put_positions(self, account: str, positions: list[dict[str, Any]]) -> int:
        """``PUT /v1/positions/{account}`` on this replica; the status."""
        timeout = aiohttp.ClientTimeout(total=10)
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.put(
                f"{self.api}/v1/positions/{account}",
                json={"positions": positions},
                headers=headers,
            ) as response,
        ):
            return response.status

    async def ready(self) -> bool:
        if self.process is not None and self.process.proc is not None:
            code = self.process.proc.returncode
            assert code is None, f"{self.name} exited {code}:\n{self.log()}"
        with contextlib.suppress(aiohttp.ClientError, json.JSONDecodeError, TimeoutError):
            status, _ = await self.get("/readyz")
            return status == 200
        return False

    async def metric(self, name: str) -> float:
        """The sum of every sample of ``name`` on this replica's ``/metrics``."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.api + "/metrics") as response,
        ):
            text = await response.text()
        pattern = rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$"
        return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


class Cluster:
    """``n`` replicas ``r0 … r{n-1}`` of one world."""

    def __init__(
        self, w: World, n: int, *, ttl_s: float = TTL_S, urls: dict[int, str] | None = None
    ) -> None:
        self.w = w
        urls = urls or {}
        self.replicas = [
            Replica(w, f"r{i}", ttl_s=ttl_s, database_url=urls.get(i)) for i in range(n)
        ]

    async def start_all(self) -> dict[str, list[int]]:
        """Start every replica; wait until the shards are balanced over them."""
        for replica in self.replicas:
            await replica.start()
        return await self.wait_balanced(self.replicas)

    async def wait_balanced(self, alive: list[Replica]) -> dict[str, list[int]]:
        """Until every shard is leased to one of ``alive``, each holding its fair share at
        most and at least one shard, and every one of them is ready; shard lists by owner."""
        names = {r.name for r in alive}
        share = math.ceil(SHARDS / len(alive))
        seen: dict[str, Any] = {}

        async def balanced() -> dict[str, list[int]] | None:
            for replica in alive:
                if not await replica.ready():
                    return None
            status, view = await alive[0].get("/v1/cluster")
            seen["view"] = view
            if status != 200:
                return None
            owners: dict[str, list[int]] = {}
            for lease in view["shards"]:
                if lease["owner"] not in names:
                    return None
                owners.setdefault(lease["owner"], []).append(lease["shard"])
            if set(owners) != names or max(len(s) for s in owners.values()) > share:
                return None
            return owners

        return await eventually(
            balanced,
            what="shards balanced over " + ",".join(sorted(names)),
            timeout_s=STARTUP_S,
            seen=lambda: seen.get("view"),
        )

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.kill()


@contextlib.asynccontextmanager
async def cluster(
    w: World, n: int, *, ttl_s: float = TTL_S, urls: dict[int, str] | None = None
) -> AsyncIterator[Cluster]:
    """``n`` replicas (not started; ``urls``: a replica's own database URL), killed at the
    end whatever happened."""
    running = Cluster(w, n, ttl_s=ttl_s, urls=urls)
    try:
        yield running
    finally:
        await running.close()


# ---- judging events against the store -----------------------------------------------------


def kinds(from_flags: int, to_flags: int) -> tuple[str, ...]:
    before = AccountSignal(Flag(from_flags), HealthBucket.NO_DEBT)
    after = AccountSignal(Flag(to_flags), HealthBucket.NO_DEBT)
    return transition_events(before, after)


class Ledger:
    """The database as the judge: which transitions exist, their shards, what is published."""

    def __init__(self, database_url: str) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Ledger:
        self.conn = await asyncpg.connect(self.dsn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def expected(self) -> dict[tuple[str, int], str]:
        """(kind, id) → account, for every event a stored transition raises."""
        assert self.conn is not None
        rows = await self.conn.fetch(
            "SELECT id, account, from_flags, to_flags FROM health_transitions ORDER BY id"
        )
        return {
            (kind, row["id"]): row["account"]
            for row in rows
            for kind in kinds(row["from_flags"], row["to_flags"])
        }

    async def unpublished(self) -> int:
        assert self.conn is not None
        return int(
            await self.conn.fetchval(
                "SELECT count(*) FROM health_transitions WHERE published_at IS NULL"
            )
        )

    async def unsharded(self) -> int:
        assert self.conn is not None
        return int(
            await self.conn.fetchval("SELECT count(*) FROM health_transitions WHERE shard IS NULL")
        )

    async def liquidatable_accounts(self) -> set[str]:
        assert self.conn is not None
        rows = await self.conn.fetch("SELECT account FROM account_health WHERE flags & 1 <> 0")
        return {row["account"] for row in rows}


def deliveries(keeper: Subscriber, prefix: str) -> dict[tuple[str, int], list[bytes]]:
    """Every event the keeper received, by (kind, id), in arrival order."""
    out: dict[tuple[str, int], list[bytes]] = {}
    for message in keeper.messages:
        topic = message.topic.value
        if not topic.startswith(f"{prefix}/events/"):
            continue
        payload = message.payload
        assert isinstance(payload, bytes)
        out.setdefault((topic.rsplit("/", 1)[-1], json.loads(payload)["id"]), []).append(payload)
    return out


async def wait_all_liquidatable(ledger: Ledger, keeper: Subscriber, prefix: str) -> None:
    """Until every book account is liquidatable in the store, its ``liquidatable`` event
    reached the keeper, and nothing is left unpublished."""
    book = set(BOOK_ACCOUNTS)
    last: dict[str, object] = {}

    async def done() -> bool:
        stored = await ledger.liquidatable_accounts()
        announced = {
            account
            for (kind, _id), account in (await ledger.expected()).items()
            if kind == "liquidatable" and (kind, _id) in deliveries(keeper, prefix)
        }
        unpublished = await ledger.unpublished()
        last.update(
            missing_in_store=sorted(book - stored)[:5],
            not_announced=sorted(book - announced)[:5],
            unpublished=unpublished,
        )
        return stored >= book and announced >= book and unpublished == 0

    await eventually(done, what="every account liquidatable and announced", seen=lambda: last)


async def assert_exactly_once(ledger: Ledger, keeper: Subscriber, prefix: str) -> int:
    """Every stored transition's events reached the keeper exactly once, and the keeper got
    nothing else; how many events."""
    expected = await ledger.expected()
    got = deliveries(keeper, prefix)
    lost = sorted(set(expected) - set(got))
    assert not lost, f"{len(lost)} events never delivered: {lost[:10]}"
    extra = sorted(set(got) - set(expected))
    assert not extra, f"events matching no stored transition: {extra[:10]}"
    twice = {key: len(p) for key, p in got.items() if len(p) > 1}
    assert not twice, f"events delivered more than once: {twice}"
    return len(expected)


async def same_liquidatable(replicas: list[Replica]) -> list[dict[str, Any]]:
    """Until every replica's ``/v1/liquidatable`` lists the same accounts with the same
    values (read at once from each), all of the book; that list."""
    seen: dict[str, Any] = {}

    async def identical() -> list[dict[str, Any]] | None:
        answers = await asyncio.gather(
            *(r.get(f"/v1/liquidatable?limit={BOOK * 2}") for r in replicas)
        )
        lists = [doc["accounts"] for status, doc in answers if status == 200]
        seen["lists"] = [[a["account"] for a in accounts] for accounts in lists]
        if len(lists) != len(replicas) or any(x != lists[0] for x in lists):
            return None
        if {a["account"] for a in lists[0]} != set(BOOK_ACCOUNTS):
            return None
        return lists[0]

    return await eventually(identical, what="identical /v1/liquidatable", seen=lambda: seen)
