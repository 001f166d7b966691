"""Market-crash bench: one price move flips half of 100,000 accounts (issue 14).

    uv run python bench/crash.py                       # PostgreSQL, 100,000 accounts, 3 rounds
    uv run python bench/crash.py --db sqlite
    uv run python bench/crash.py --accounts 20000 --rounds 1 --singles 3

The world: one Anvil chain (instant mining) with WETH collateral (weight 0.8) and USDC debt on
it; every account holds 1 WETH and owes USDC. Balances are written straight into the tokens'
``balanceOf`` storage with ``anvil_setStorageAt`` (200,000 mints would take ~2 minutes; the
daemon reads balances the same way either way). Account 0, the sentinel, is at health 1.004;
odd accounts at 1.05; even ones at 1.5. Prices come from loopback sources (three for ETH, one
for USDC) polled every 0.1 s, with oracle rounds every 0.1 s. The real daemon
(``python -m daemon.cli run``) runs against a fresh PostgreSQL database (or SQLite) and a
private Mosquitto (``tests.mqttkit``: subscriber queue unlimited, TCP_NODELAY).

Measured, from the moment the bench changes the price sources (t0):
- single account: ETH 2,000 → 1,990 flips the sentinel alone (``liquidatable``), and back
  (``recovered``), ``--singles`` times each: t0 → its event at a ``mosquitto_sub`` subscriber,
  t0 → the first ``GET /v1/liquidatable`` answer that shows the change;
- the crash: ETH 2,000 → 1,800 flips every odd account and the sentinel (50,001 of 100,000),
  and the rebound back to 2,000 recovers them, ``--rounds`` times: t0 → the last of the
  events at the subscriber, t0 → the first listing whose ``total`` is complete, and the later
  of the two ("complete"), as a multiple of the single-account latency of the same run;
- start-up to ready (``/readyz`` 200) on the fresh database and again after a restart on the
  filled one, split by the daemon's log lines (imports and config, store, set-up, initial
  sync until the engine is warm, the first cycle write, the rest);
- where a crash's time goes, from the daemon's log (``cycle_stored``, ``events_relayed``).

Correctness (exit 1 otherwise): each move yields exactly one event per flipped account and
kind, none for anyone else, no duplicate; the final listing holds exactly the flipped accounts.
A missed target (≤ 3 s on PostgreSQL, ≤ 5 s on SQLite) is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from eth_utils.crypto import keccak

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/crash.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from bench.e2e import account_address, database, fmt_ms, percentile  # noqa: E402
from devnet import AnvilNode, DevChain  # noqa: E402
from tests.daemonkit import DaemonProcess  # noqa: E402
from tests.mqttkit import Mosquitto  # noqa: E402
from tests.pricekit import PriceServer, free_port, generic  # noqa: E402

DEFAULT_ACCOUNTS = 100_000
DEFAULT_ROUNDS = 3
DEFAULT_SINGLES = 5
CHAIN_ID = 3101
BALANCE_SLOT = 3  # MintableERC20: name, symbol, totalSupply, then balanceOf
STORAGE_BATCH = 500  # anvil_setStorageAt calls per JSON-RPC batch
WETH_DECIMALS, USDC_DECIMALS = 18, 6
WETH_WEIGHT = Fraction(8, 10)
CALM, SINGLE, CRASH = 2_000, 1_990, 1_800  # ETH prices
SENTINEL_HEALTH = Fraction(1004, 1000)  # liquidatable at SINGLE, the only one
FLIPPING_HEALTH = Fraction(105, 100)  # odd accounts: healthy at SINGLE, liquidatable at CRASH
STEADY_HEALTH = Fraction(15, 10)  # even accounts: healthy throughout
ETH_SOURCES = ("ETH-a", "ETH-b", "ETH-c")
SOURCE_POLL_S = 0.1
ROUND_INTERVAL_S = 0.1
MAX_LAG_S = 3_600.0  # instant mining mines nothing while idle: not stale for the whole run
API_TOKEN = "crash-bench-token-0123456789abcdef"

DEFAULT_API_POLL_MS = 20.0
READ_CHUNK = 1 << 20  # bytes of the subscriber's output read at once
EVENT_TIMEOUT_S = 120.0
STARTUP_TIMEOUT_S = 600.0
SETTLE_S = 1.0  # after a move completes: late duplicates or strays would arrive here
QUIET_S = 3.0  # start-up is over when no cycle was written nor event relayed for this long
WARMUP_SINGLES = 1  # sentinel pairs run first and not counted (caches, connections)
STOP_TIMEOUT_S = 60.0
TARGETS_S = {"postgres": 3.0, "sqlite": 5.0}
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+ (\S+)(.*)$")


def now() -> float:
    """Wall clock: comparable with the daemon's log timestamps (same machine)."""
    return time.time()


# -- the world ---------------------------------------------------------------------------------


def health_of(i: int) -> Fraction:
    """Account ``i``'s health at ETH ``CALM``."""
    if i == 0:
        return SENTINEL_HEALTH
    return FLIPPING_HEALTH if i % 2 else STEADY_HEALTH


def flips_at_crash(i: int) -> bool:
    """Liquidatable at ``CRASH``: the sentinel and every odd account."""
    return i == 0 or i % 2 == 1


def debt_units(health: Fraction) -> int:
    """USDC (raw) owed by an account with 1 WETH at ``CALM`` and this health (rounded up)."""
    weighted = Fraction(CALM) * WETH_WEIGHT
    return math.ceil(weighted / health * 10**USDC_DECIMALS)


def balance_slot(account: str) -> str:
    """The storage slot of ``balanceOf[account]`` (Solidity mapping layout)."""
    key = bytes.fromhex(account[2:].rjust(64, "0")) + BALANCE_SLOT.to_bytes(32, "big")
    return "0x" + keccak(key).hex()


async def write_balances(dev: DevChain, token: str, amounts: Sequence[tuple[str, int]]) -> None:
    """Set ``balanceOf`` of every (account, amount) directly in the token's storage."""
    calls = [
        ("anvil_setStorageAt", [token, balance_slot(a), "0x" + v.to_bytes(32, "big").hex()])
        for a, v in amounts
    ]
    for start in range(0, len(calls), STORAGE_BATCH):
        await dev.rpc_batch(calls[start : start + STORAGE_BATCH])
    await dev.mine()


@dataclass(slots=True)
class World:
    """The chain, its two tokens, the book and the price sources."""

    node: AnvilNode
    weth: str
    usdc: str
    accounts: list[str]
    prices: PriceServer

    def set_eth(self, price: int) -> float:
        """Move all three ETH sources at once; the moment (t0)."""
        for key in ETH_SOURCES:
            self.prices.set(key, str(price))
        return now()


@contextlib.asynccontextmanager
async def world(accounts: int) -> AsyncIterator[World]:
    """Start Anvil and the price server, deploy the tokens, write every balance."""
    async with (
        AnvilNode(chain_id=CHAIN_ID) as node,
        DevChain(node.url) as dev,
        PriceServer() as prices,
    ):
        weth = await dev.deploy("MintableERC20", "Wrapped Ether", "WETH", WETH_DECIMALS)
        usdc = await dev.deploy("MintableERC20", "debt USDC", "dUSDC", USDC_DECIMALS)
        book = [account_address(i) for i in range(accounts)]
        started = now()
        await write_balances(dev, weth, [(a, 10**WETH_DECIMALS) for a in book])
        await write_balances(dev, usdc, [(a, debt_units(health_of(i))) for i, a in enumerate(book)])
        print(f"  wrote {2 * accounts:,} balances in {now() - started:.1f}s")
        for key in ETH_SOURCES:
            prices.set(key, str(CALM))
        prices.set("USDC", "1")
        yield World(node, weth.lower(), usdc.lower(), book, prices)


def daemon_config(w: World, *, database_url: str, broker: Mosquitto, prefix: str, port: int) -> Any:
    """The daemon's config for one session."""
    sources = {"max_age_s": 60, "poll_interval_s": SOURCE_POLL_S}
    return {
        "chains": [
            {
                "name": "l1",
                "chain_id": CHAIN_ID,
                "rpc_urls": [w.node.url],
                "poll_interval_s": 0.05,
                "max_lag_s": MAX_LAG_S,
                "liquidation_latency_s": 1,
                "request_timeout_s": 10,
            }
        ],
        "tokens": [
            {
                "chain": "l1",
                "address": w.weth,
                "asset": "ETH",
                "role": "collateral",
                "weight": float(WETH_WEIGHT),
            },
            {"chain": "l1", "address": w.usdc, "asset": "USDC", "role": "liability", "weight": 1.0},
        ],
        "accounts": w.accounts,
        "database_url": database_url,
        "oracle_polling": {"round_interval_s": ROUND_INTERVAL_S},
        "assets": [
            {
                "symbol": "ETH",
                "volatility_floor": 0.1,
                "oracle": {"min_sources": 2, "max_deviation": 0.02, "max_jump": 0.5},
                "sources": [generic(w.prices, key, **sources) for key in ETH_SOURCES],
            },
            {
                "symbol": "USDC",
                "volatility_floor": 0.01,
                "oracle": {"min_sources": 1},
                "sources": [generic(w.prices, "USDC", **sources)],
            },
        ],
        "mqtt": {"url": broker.url, "topic_prefix": prefix},
        "api": {"listen": f"127.0.0.1:{port}", "token": API_TOKEN},
    }


# -- observers -----------------------------------------------------------------------------------


class Keeper:
    """``mosquitto_sub`` on ``{prefix}/events/+`` (QoS 1; C, so it keeps up with a burst):
    every line with its arrival time, parsed only after a move.

    Read in chunks, each line stamped with its chunk's arrival: a ``readline`` per event cost
    this process ~0.3 s of CPU per burst of 50,000, on the two cores the daemon, PostgreSQL
    and the broker share, and a (time, line) tuple per event made its garbage collector hold
    the loop (and the stamps) 0.15-0.3 s at a time (bench/RESULTS.md, issue 14)."""

    def __init__(self, port: int, prefix: str) -> None:
        self.argv = [
            "mosquitto_sub",
            *("-h", "127.0.0.1", "-p", str(port), "-q", "1", "-v", "--nodelay"),
            *("-i", f"crash-bench-{os.getpid()}", "-t", f"{prefix}/events/+"),
        ]
        self.lines: list[bytes] = []
        self.arrivals: list[float] = []  # of each line, by index
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Keeper:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, limit=1 << 20
        )
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        partial = b""
        while chunk := await self.proc.stdout.read(READ_CHUNK):
            at = now()
            *complete, partial = (partial + chunk).split(b"\n")
            self.lines += complete
            self.arrivals += [at] * len(complete)

    def events_since(self, start: int) -> list[tuple[float, str, dict[str, Any]]]:
        """(arrival, kind, payload) of the lines from index ``start`` on."""
        out = []
        for at, line in zip(self.arrivals[start:], self.lines[start:], strict=True):
            topic, _, payload = line.decode().partition(" ")
            out.append((at, topic.rsplit("/", 1)[-1], json.loads(payload)))
        return out


async def listing(session: aiohttp.ClientSession, api: str, limit: int) -> dict[str, Any]:
    """One ``GET /v1/liquidatable`` answer."""
    async with session.get(f"{api}/v1/liquidatable?limit={limit}") as response:
        body: dict[str, Any] = await response.json()
        return body


LISTING_RETRY_S = 0.2  # after an error answer to a listing page


async def full_listing(session: aiohttp.ClientSession, api: str) -> set[str]:
    """Every listed account, page by page (1,000 per page, the API's maximum)."""
    seen: set[str] = set()
    offset = 0
    while True:
        url = f"{api}/v1/liquidatable?limit=1000&offset={offset}"
        async with session.get(url) as response:
            body = await response.json()
        if "accounts" not in body:  # an error answer (503 under load): ask again
            await asyncio.sleep(LISTING_RETRY_S)
            continue
        page = body["accounts"]
        seen.update(a["account"] for a in page)
        if len(page) < 1000:
            return seen
        offset += 1000


# -- one move --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Move:
    """One price move and what was seen of it (seconds from t0)."""

    name: str
    price: int
    expected: set[str]  # accounts that must raise an event
    kind: str  # liquidatable | recovered
    listed: int  # the listing's total once complete
    t_event: float = math.nan  # the last expected event arrived
    t_api: float = math.nan  # the listing's total first complete
    t0_wall: float = math.nan
    api_errors: int = 0  # listing answers without a listing (an error status) while polled
    failures: list[str] = field(default_factory=list)

    @property
    def complete(self) -> float:
        return max(self.t_event, self.t_api)


async def run_move(
    w: World, keeper: Keeper, api: str, move: Move, poll_s: float, *, sentinel_only: bool
) -> None:
    """Change the price, wait for every expected event and the complete listing."""
    start = len(keeper.lines)
    async with aiohttp.ClientSession() as session:
        t0 = move.t0_wall = w.set_eth(move.price)
        deadline = t0 + EVENT_TIMEOUT_S
        want = len(move.expected)
        while math.isnan(move.t_event) or math.isnan(move.t_api):
            if now() > deadline:
                move.failures.append(f"{move.name}: not complete within {EVENT_TIMEOUT_S}s")
                return
            if math.isnan(move.t_event) and len(keeper.lines) - start >= want:
                move.t_event = keeper.arrivals[start + want - 1] - t0
            if math.isnan(move.t_api):
                limit = 10 if sentinel_only else 1
                body = await listing(session, api, limit)
                if "accounts" not in body:  # an error answer (e.g. 503 under load): poll again
                    move.api_errors += 1
                    done = False
                elif sentinel_only:
                    done = (w.accounts[0] in {a["account"] for a in body["accounts"]}) == (
                        move.kind == "liquidatable"
                    )
                else:
                    done = int(body["total"]) == move.listed
                if done:
                    move.t_api = now() - t0
            await asyncio.sleep(poll_s)
        await asyncio.sleep(SETTLE_S)
        seen = keeper.events_since(start)
        got = [(kind, p["account"]) for _, kind, p in seen]
        if len(got) != len(set(got)):
            move.failures.append(f"{move.name}: {len(got) - len(set(got))} duplicate events")
        wrong = {(k, a) for k, a in got if k != move.kind or a not in move.expected}
        if wrong:
            move.failures.append(f"{move.name}: unexpected events {sorted(wrong)[:3]}")
        missing = move.expected - {a for k, a in got if k == move.kind}
        if missing:
            move.failures.append(f"{move.name}: {len(missing)} events missing")
        if not sentinel_only:
            listed = await full_listing(session, api)
            should = move.expected if move.kind == "liquidatable" else set()
            if listed != should:
                move.failures.append(
                    f"{move.name}: listing has {len(listed)} accounts, expected {len(should)}"
                )


# -- start-up --------------------------------------------------------------------------------------

STARTUP_MARKS = (
    ("imports, config parse (to the first log line)", ""),
    ("migrations, store open", "store_open"),
    ("stored state loaded", "store_state_loaded"),
    ("chains, oracle, MQTT, API set up", "daemon_started"),
    ("initial sync: every chain read, every asset priced", "engine_warm"),
    ("first cycle written (all accounts)", "cycle_stored"),
)
READY = "/readyz answers 200"


def log_times(path: Path, since: float) -> list[tuple[float, str, str]]:
    """(wall time, event name, rest) of every daemon log line at or after ``since``."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = LOG_LINE.match(line)
        if m is None:
            continue
        at = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        if at >= since - 1:
            out.append((at, m[2], m[3]))
    return out


async def start_daemon(
    daemon: DaemonProcess, api: str, poll_s: float = 0.05
) -> tuple[float, float]:
    """Start it and wait for /readyz 200, asked every ``poll_s``: (start wall time, seconds
    to ready)."""
    started = now()
    await daemon.start()
    async with aiohttp.ClientSession() as session:
        while now() < started + STARTUP_TIMEOUT_S:
            if daemon.proc is not None and daemon.proc.returncode is not None:
                raise RuntimeError(f"daemon exited {daemon.proc.returncode}:\n{daemon.log()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{api}/readyz") as response:
                    if response.status == 200:
                        return started, now() - started
            await asyncio.sleep(poll_s)
    raise RuntimeError(f"daemon not ready within {STARTUP_TIMEOUT_S}s:\n{daemon.log()}")


async def settle(log: Path, since: float) -> None:
    """Until the daemon wrote its first full cycle after ``since`` and then relayed nothing
    and wrote no cycle for ``QUIET_S`` (start-up work is over)."""
    deadline = now() + STARTUP_TIMEOUT_S
    while now() < deadline:
        lines = log_times(log, since)
        written = any(n == "cycle_stored" and t >= since for t, n, _ in lines)
        last = max((t for t, n, _ in lines if n in ("cycle_stored", "events_relayed")), default=0)
        if written and now() - last >= QUIET_S:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"daemon did not settle within {STARTUP_TIMEOUT_S}s")


def startup_split(log: Path, started: float, ready_s: float) -> list[tuple[str, float]]:
    """Each start-up mark in the order reached, with the seconds since the previous one
    (the first full cycle may be written after the daemon reports ready)."""
    lines = [(t, n) for t, n, _ in log_times(log, started) if t >= started - 0.001]
    marks = [(started + ready_s, READY)]
    for label, name in STARTUP_MARKS:
        at = next((t for t, n in lines if not name or n == name), math.nan)
        if not math.isnan(at):
            marks.append((at, label))
    marks.sort()
    previous, out = started, []
    for at, label in marks:
        out.append((label, at - previous))
        previous = at
    return out


def crash_split(log: Path, move: Move) -> list[str]:
    """The daemon's own account of a move, from its log: cycle writes and relay batches."""
    out = []
    for at, name, rest in log_times(log, move.t0_wall):
        if at > move.t0_wall + move.complete + 0.5:
            break
        if name in ("cycle_stored", "events_relayed"):
            out.append(f"{at - move.t0_wall:6.2f}s {name}{rest}")
    return out


class ProfiledDaemon(DaemonProcess):
    """The daemon under cProfile (``--profile``): its stats are written to ``profile_path`` when
    it stops (SIGTERM ends it cleanly). Slower than the plain daemon: for finding where the
    time goes, never for the figures."""

    def __init__(self, config_path: Path, log_path: Path, profile_path: Path) -> None:
        super().__init__(config_path, log_path)
        self.profile_path = profile_path
        self.runs = 0

    async def start(self) -> None:
        self.runs += 1
        out = self.profile_path.with_suffix(f".{self.runs}.prof")
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "cProfile", "-o", str(out)),
            *("-m", "daemon.cli", "run", "-c", str(self.config_path), "--migrate"),
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        log.close()


# -- main ------------------------------------------------------------------------------------------


async def session(args: argparse.Namespace, w: World, workdir: Path) -> int:
    """Start-up, single-account moves, crashes and rebounds, restart; print; exit status."""
    async with database(args.db, workdir) as url, Mosquitto(workdir) as broker:
        prefix = f"xm-bench-crash-{os.getpid()}"
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        config = workdir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                daemon_config(w, database_url=url, broker=broker, prefix=prefix, port=port)
            )
        )
        log = workdir / "daemon.log"
        moves: list[Move] = []
        sentinel = {w.accounts[0]}
        crashed = {a for i, a in enumerate(w.accounts) if flips_at_crash(i)}
        async with Keeper(broker.port, prefix) as keeper:
            await asyncio.sleep(0.5)  # subscribed before the daemon publishes anything
            daemon = (
                DaemonProcess(config, log)
                if args.profile is None
                else ProfiledDaemon(config, log, args.profile)
            )
            try:
                cold_at, cold_s = await start_daemon(daemon, api)
                await settle(log, cold_at)
                # The world (100,000 accounts) lives until the end: out of this process's full
                # collections, which would otherwise hold the subscriber's reads mid-burst.
                gc.collect()
                gc.freeze()
                poll = args.api_poll_ms / 1000
                for n in range(-WARMUP_SINGLES, args.singles):
                    for price, kind, total in ((SINGLE, "liquidatable", 1), (CALM, "recovered", 0)):
                        move = Move(f"single {kind} #{n + 1}", price, sentinel, kind, total)
                        await run_move(w, keeper, api, move, poll, sentinel_only=True)
                        if n >= 0:
                            moves.append(move)
                for n in range(args.rounds):
                    for name, price, kind, total in (
                        ("crash", CRASH, "liquidatable", len(crashed)),
                        ("rebound", CALM, "recovered", 0),
                    ):
                        move = Move(f"{name} #{n + 1}", price, crashed, kind, total)
                        await run_move(w, keeper, api, move, poll, sentinel_only=False)
                        moves.append(move)
                        print(
                            f"  {move.name}: complete in {move.complete:.2f}s"
                            f" (listing error answers while polled: {move.api_errors})"
                        )
                await daemon.stop(STOP_TIMEOUT_S)
                warm_at, warm_s = await start_daemon(daemon, api)
                await settle(log, warm_at)
                cold = startup_split(log, cold_at, cold_s)
                warm = startup_split(log, warm_at, warm_s)
            finally:
                if daemon.proc is not None and daemon.proc.returncode is None:
                    await daemon.stop(STOP_TIMEOUT_S)
        return report(args, moves, cold_s, cold, warm_s, warm, log)


def report(
    args: argparse.Namespace,
    moves: list[Move],
    cold_s: float,
    cold: list[tuple[str, float]],
    warm_s: float,
    warm: list[tuple[str, float]],
    log: Path,
) -> int:
    """Print the Markdown tables and the verdict; the exit status."""
    singles = [m for m in moves if m.name.startswith("single")]
    bursts = [m for m in moves if not m.name.startswith("single")]
    single_event = statistics.median(m.t_event for m in singles)
    single_done = statistics.median(m.complete for m in singles)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(
        f"{args.accounts:,} accounts × 2 tokens on one Anvil chain, {args.db}, API poll "
        f"{args.api_poll_ms:g} ms; nproc {os.cpu_count()}; {datetime.now(UTC):%Y-%m-%d %H:%M} "
        f"UTC; load {load}"
    )
    print()
    print("| move | accounts flipped | t0 → last event s | t0 → listing complete s | complete s |")
    print("|---|---:|---:|---:|---:|")
    for m in moves:
        print(
            f"| {m.name} | {len(m.expected):,} | {m.t_event:.3f} | {m.t_api:.3f} | "
            f"{m.complete:.3f} |"
        )
    print()
    print(
        f"single account (median of {len(singles)}): event {fmt_ms(single_event)} ms, complete "
        f"{fmt_ms(single_done)} ms"
    )
    target = TARGETS_S[args.db]
    for kind in ("crash", "rebound"):
        of = [m.complete for m in bursts if m.name.startswith(kind)]
        if of:
            med = statistics.median(of)
            verdict = "met" if med <= target else "MISSED"
            print(
                f"{kind} (median of {len(of)}): complete {med:.2f} s = {med / single_done:.1f}× "
                f"the single-account latency; max {max(of):.2f} s; target ≤ {target:g} s → "
                f"{verdict}"
            )
    print()
    for title, total, split in (("cold", cold_s, cold), ("restart", warm_s, warm)):
        print(f"start-up to ready, {title}: {total:.1f} s (each step: seconds since the last)")
        for label, seconds in split:
            print(f"  {seconds:7.2f} s  {label}")
    print()
    print("where the first crash's time went (daemon log, seconds after t0):")
    first = next((m for m in bursts if m.name.startswith("crash")), None)
    for line in crash_split(log, first) if first else []:
        print(f"  {line}")
    print(f"  p50 of {len(bursts)} bursts: {percentile([m.complete for m in bursts], 50):.2f} s")
    failures = [f for m in moves for f in m.failures]
    if failures:
        print("CORRECTNESS FAILURES:", *failures[:20], sep="\n  ", file=sys.stderr)
        print(f"daemon log: {log}", file=sys.stderr)
        return 1
    print("correctness: every move gave exactly one event per flipped account, the listing exact")
    return 0


async def run(args: argparse.Namespace) -> int:
    """Build the world, run the session, clean up."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    print(f"setting up {args.accounts:,} accounts (work dir {workdir}) …")
    async with world(args.accounts) as w:
        status = await session(args, w, workdir)
    if status == 0 and not args.keep:
        await asyncio.to_thread(shutil.rmtree, workdir)
    return status


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="crash + rebound pairs")
    parser.add_argument("--singles", type=int, default=DEFAULT_SINGLES, help="sentinel pairs")
    parser.add_argument("--api-poll-ms", type=float, default=DEFAULT_API_POLL_MS)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (daemon log)")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the daemon under cProfile, stats to PATH.1.prof (cold) and PATH.2.prof",
    )
    args = parser.parse_args(argv)
    if args.accounts < 4 or args.rounds < 1 or args.singles < 1:
        parser.error("need at least 4 accounts, 1 round and 1 single")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``uv run python bench/crash.py``."""
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
