"""Where a market-wide move's time goes, stage by stage, inside one process (issue 14).

    uv run python bench/burst.py                          # PostgreSQL, 100,000 accounts, 3 rounds
    uv run python bench/burst.py --db sqlite
    uv run python bench/burst.py --profile /tmp/burst.prof   # + cProfile of the measured rounds

``bench/crash.py`` measures the real daemon end to end; on a shared 2-core machine its wall
times move with everyone else's load. This bench runs the same two stages a crash goes through
in one process, without oracle, watcher or API, and reports each stage's wall time **and this
process's CPU time** (what the code costs, whatever the neighbours do):

1. the rows: ``HealthRows.from_table`` of every account after the price move (what the engine
   loop hands the writer);
2. the write: ``HealthStore.write_engine_cycle`` — one transaction: COPY of the staged rows,
   transitions appended, health rows updated;
3. the relay: ``EventRelay.drain`` through ``MqttPublisher`` to a private Mosquitto — outbox
   reads, encoding, QoS 1 publishing until every PUBACK, marking published — while a
   ``mosquitto_sub`` keeper receives them (checked: every event arrives, once).

The book: ``--accounts`` accounts with 1 ETH collateral (weight 0.8) and 100 USDC (0.9); even
accounts owe 1,000 USDC, odd ones 1,300. ETH 2,000 → 1,500 makes every odd account
liquidatable (half the book), 1,500 → 2,000 recovers them. Each round is a crash and a
rebound; the first write (every account new) is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] != str(ROOT):  # first: bench/venues.py must not shadow the venues package
    sys.path.insert(0, str(ROOT))

from daemon.config.model import MqttConfig  # noqa: E402
from daemon.mqtt.publisher import MqttPublisher  # noqa: E402
from daemon.mqtt.relay import EventRelay  # noqa: E402
from daemon.store.migrate import migrate  # noqa: E402
from daemon.store.rows import CycleContext, HealthRows  # noqa: E402
from daemon.store.writer import HealthStore  # noqa: E402
from margin.engine import MarginEngine  # noqa: E402
from margin.model import PriceInput  # noqa: E402
from tests.mqttkit import Mosquitto  # noqa: E402
from tests.storekit import (  # noqa: E402
    BOOK_CHAINS,
    BOOK_TOKENS,
    DUSDC,
    USDC_ARB,
    WETH,
    account_address,
    postgres_database,
)

CALM, CRASH = 2_000.0, 1_500.0
RELAY_BATCH = 10_000  # mqtt.max_pending's default
KEEPER_WAIT_S = 120.0


def crash_book(n: int) -> MarginEngine:
    """The book of the module docstring, priced at ``CALM``."""
    engine = MarginEngine(tokens=BOOK_TOKENS, chains=BOOK_CHAINS)
    engine.set_prices([PriceInput(asset="ETH", price=CALM), PriceInput(asset="USDC", price=1.0)])
    accounts = [account_address(i) for i in range(n)]
    debts = [(1_300 if i % 2 else 1_000) * 10**6 for i in range(n)]
    engine.load_balances("eth", WETH, accounts, [10**18] * n, 100)
    engine.load_balances("arb", USDC_ARB, accounts, [100 * 10**6] * n, 200)
    engine.load_balances("eth", DUSDC, accounts, debts, 100)
    return engine


@dataclass(slots=True)
class Stage:
    """Wall and CPU seconds of one stage over the measured moves."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    db_cpu: list[float] = field(default_factory=list)

    def add(self, lap: tuple[float, float, float]) -> None:
        self.wall.append(lap[0])
        self.cpu.append(lap[1])
        self.db_cpu.append(lap[2])


def process_cpu_s(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of ``pids`` that still runs (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


class ServerCpu:
    """CPU time of the database's backends (PostgreSQL: the server processes serving this
    database, found in ``pg_stat_activity``; same machine) — the write's real cost, which the
    wall time hides under other processes' load. SQLite runs in this process: nothing here."""

    def __init__(self, store: HealthStore) -> None:
        self.store = store
        self.enabled = store.engine.dialect.name == "postgresql"
        self.seen: dict[int, float] = {}

    async def sample(self) -> float:
        """Seconds used since the previous sample by every backend of the database."""
        if not self.enabled:
            return 0.0
        async with self.store.engine.connect() as conn:
            query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            pids = [int(pid) for (pid,) in await conn.exec_driver_sql(query)]
        now = process_cpu_s(pids)
        used = sum(cpu - self.seen.get(pid, 0.0) for pid, cpu in now.items())
        self.seen = now
        return used


class Clock:
    """Wall, process-CPU and database-CPU time since the last lap."""

    def __init__(self, server: ServerCpu) -> None:
        self.server = server
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    async def lap(self) -> tuple[float, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu, await self.server.sample())
        self.wall, self.cpu = time.perf_counter(), time.process_time()  # the sample not counted
        return out


class Keeper:
    """``mosquitto_sub`` on the event topics: counts the lines it received."""

    def __init__(self, port: int, prefix: str) -> None:
        self.argv = [
            "mosquitto_sub",
            *("-h", "127.0.0.1", "-p", str(port), "-q", "1", "--nodelay"),
            *("-i", f"burst-bench-{os.getpid()}", "-t", f"{prefix}/events/+"),
        ]
        self.lines = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, limit=1 << 20
        )
        self.task = asyncio.create_task(self._read())
        await asyncio.sleep(0.5)  # subscribed before anything is published

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while await self.proc.stdout.readline():
            self.lines += 1

    async def wait_for(self, lines: int) -> None:
        deadline = time.monotonic() + KEEPER_WAIT_S
        while self.lines < lines:
            if time.monotonic() > deadline:
                raise RuntimeError(f"keeper got {self.lines} of {lines} events")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@asynccontextmanager
async def database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh, migrated database."""
    if kind == "postgres":
        async with postgres_database(prefix="crossmargin_bench_burst") as url:
            await migrate(url)
            yield url
    else:
        url = f"sqlite+aiosqlite:///{(workdir / 'burst.sqlite3').as_posix()}"
        await migrate(url)
        yield url


STAGES = ("rows", "write", "relay", "keeper")


async def run(args: argparse.Namespace) -> None:
    engine = crash_book(args.accounts)
    accounts = list(engine.accounts)
    stages = {name: Stage() for name in STAGES}
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        workdir = Path(tmp)
        prefix = f"xm-bench-burst-{os.getpid()}"
        async with (
            database(args.db, workdir) as url,
            Mosquitto(workdir) as broker,
            await HealthStore.open(url) as store,
            MqttPublisher(MqttConfig(url=broker.url, topic_prefix=prefix)) as publisher,
        ):
            relay = EventRelay(store=store, publisher=publisher, batch=args.batch)
            server = ServerCpu(store)
            keeper = Keeper(broker.port, prefix)
            await keeper.start()
            try:
                table = engine.recompute_all()
                rows = HealthRows.from_table(accounts, table, value_decimals=2)
                await store.write_engine_cycle(
                    balances=(),
                    prices=(),
                    rows=rows,
                    context=CycleContext(at=time.time(), blocks={"eth": 100}),
                )
                await relay.drain()
                expected = 0
                for n in range(args.rounds * 2):
                    price = CRASH if n % 2 == 0 else CALM
                    engine.set_prices([PriceInput(asset="ETH", price=price)])
                    table = engine.recompute_all()
                    if profile is not None:
                        profile.enable()
                    await server.sample()
                    clock = Clock(server)
                    rows = HealthRows.from_table(accounts, table, value_decimals=2)
                    stages["rows"].add(await clock.lap())
                    count = await store.write_engine_cycle(
                        balances=(),
                        prices=(),
                        rows=rows,
                        context=CycleContext(at=time.time(), blocks={"eth": 100}),
                    )
                    stages["write"].add(await clock.lap())
                    await relay.drain()
                    stages["relay"].add(await clock.lap())
                    expected += count
                    await keeper.wait_for(expected)
                    stages["keeper"].add(await clock.lap())
                    if profile is not None:
                        profile.disable()
                    print(
                        f"  move {n + 1} (ETH {price:g}): {count:,} transitions, "
                        + ", ".join(f"{s} {stages[s].wall[-1]:.3f}s" for s in STAGES)
                    )
            finally:
                await keeper.stop()
    report(args, stages)
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"cProfile of the measured moves: {args.profile}")


def report(args: argparse.Namespace, stages: dict[str, Stage]) -> None:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    med: Callable[[list[float]], float] = statistics.median
    print()
    print(
        f"{args.accounts:,} accounts, half flipping per move, {args.db}, relay batch "
        f"{args.batch:,}; medians of {args.rounds * 2} moves; load {load}"
    )
    print("| stage | wall s | this process's CPU s | database server CPU s |")
    print("|---|---:|---:|---:|")
    for name in STAGES:
        stage = stages[name]
        print(
            f"| {name} | {med(stage.wall):.3f} | {med(stage.cpu):.3f} | {med(stage.db_cpu):.3f} |"
        )
    total = [sum(stages[s].wall[i] for s in STAGES) for i in range(len(stages["rows"].wall))]
    print(f"| total (move → last event at the keeper) | {med(total):.3f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--rounds", type=int, default=3, help="crash + rebound pairs")
    parser.add_argument("--batch", type=int, default=RELAY_BATCH, help="relay batch")
    parser.add_argument("--profile", type=Path, default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
