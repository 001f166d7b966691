"""Benchmark of the watcher's balance reads (DESIGN §8): balances/s against the node and peers.

    uv run python bench/watcher.py                      # 100,000 pairs, 7 rounds
    uv run python bench/watcher.py --pairs 20000 --repeats 3 --no-peer
    uv run python bench/watcher.py --profile            # cProfile of one warm watcher read
    uv run python bench/watcher.py --endpoints 2        # (b) through a pool of two endpoints

One local Anvil (chain id 31337), ``--tokens`` MintableERC20 tokens × (pairs / tokens) accounts,
``--seeded`` of the pairs given a non-zero balance (a zero balance costs the node the same cold
SLOAD). Every read is pinned to one block. Measured in the same run, because these machines
are noisy:

(a) the node's raw limit: every ``aggregate3`` JSON body (``DEFAULT_BATCH_SIZE`` calls each,
    the watcher's chunk) encoded to bytes before timing, POSTed over one keep-alive aiohttp
    session with the watcher's concurrency; response bytes are read, never parsed. Measured with
    the watcher's ``eth_call`` state override (the same work for the node as (b)) and, for
    reference, against Multicall3 code put at the canonical address with ``anvil_setCode``;
(b) the watcher's read path, ``RpcPool`` + ``BalanceReader.balances``: cold (a fresh reader,
    calldata cache empty) and warm (the same reader again), encode → RPC → decode → list;
(c) naive web3.py 8, ``AsyncWeb3(AsyncHTTPProvider(url))`` ``balanceOf(account).call()`` one
    by one on a sample of pairs, rate extrapolated;
(d) the PyPI ``multicall`` package (pins ``web3 < 8``) in its own venv ``bench/.venv-multicall``,
    as a subprocess (``bench/peers/multicall_peer.py``), its batch step forced to 1,000; the
    venv is created with ``uv`` when missing, and an impossible install is reported, not faked.

Each figure is the median of ``--repeats``; (a), (b) and (c) run in every round, (a) and (b) in
alternating order, and the (b)/(a) targets use the median of the per-round ratios.
Every result of (b), (c) and (d) is compared with the balances minted, and a sample of (b) with
direct ``eth_call`` reads: a wrong value exits with status 1. A missed target is reported, not
an error.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/watcher.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from chains import multicall as mc  # noqa: E402
from chains.blocks import BlockRef  # noqa: E402
from chains.reads import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, BalanceReader, Pair  # noqa: E402
from chains.rpc import RpcPool  # noqa: E402
from devnet import AnvilNode, DevChain  # noqa: E402
from devnet.contracts import load_artifact  # noqa: E402

DEFAULT_PAIRS = 100_000
DEFAULT_TOKENS = 10
DEFAULT_REPEATS = 7
DEFAULT_SEEDED = 3_000  # non-zero balances minted (spread over the tokens)
DEFAULT_NAIVE_SAMPLE = 300  # pairs read one by one by the naive web3.py peer
VERIFY_SAMPLE = 200  # pairs of (b) checked against direct eth_call reads
CHAIN_ID = 31337  # Anvil's default
CANONICAL_MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
TOKEN_DECIMALS = 18
MAX_SEED_AMOUNT = 10**24
RNG_SEED = 20_251_121
ACCOUNT_TAG = "crossmargin-bench-account"

TARGET_VS_RAW = 0.7  # (b) ≥ 0.7 × (a)
TARGET_VS_NAIVE = 10.0  # (b) ≥ 10 × (c)

PEER_SCRIPT = ROOT / "bench" / "peers" / "multicall_peer.py"
PEER_VENV = ROOT / "bench" / ".venv-multicall"
PEER_PACKAGE = "multicall"
PEER_VERSION = "0.15.2"  # latest 0.x on PyPI; pins web3 < 8
PEER_STEP = 1_000  # its batch step; untuned (10,000) it fails on Anvil (2 MB body, 30M gas)
PEER_REQUIRE_SUCCESS = False  # tryBlockAndAggregate: a failing call does not sink the batch,
# as with the watcher's aggregate3(allowFailure=true)
PEER_INSTALL_TIMEOUT_S = 300.0
PEER_RUN_TIMEOUT_S = 600.0

PROFILE_TOP = 25


# -- fixture ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Fixture:
    """What every measurement reads: the node, the pairs, the pinned block, the truth."""

    url: str
    tokens: list[str]  # checksummed
    accounts: list[str]  # lower-case
    pairs: list[Pair]  # (account, token), lower-case
    expected: list[int]  # the balance of each pair, as minted
    block: BlockRef


def _accounts(count: int) -> list[str]:
    """Deterministic pseudo-random holder addresses (no code, no keys needed)."""
    return [
        "0x" + hashlib.sha256(f"{ACCOUNT_TAG}-{i}".encode()).hexdigest()[:40] for i in range(count)
    ]


async def build_fixture(
    dev: DevChain, url: str, *, pairs: int, tokens: int, seeded: int
) -> Fixture:
    """Deploy the tokens, put Multicall3 at its canonical address, mint ``seeded`` balances."""
    per_token = pairs // tokens
    if per_token < 1 or per_token * tokens != pairs:
        raise SystemExit(f"--pairs ({pairs}) must be a positive multiple of --tokens ({tokens})")
    await dev.set_code(CANONICAL_MULTICALL3, load_artifact("Multicall3").deployed_bytecode)
    token_addresses = [
        await dev.deploy("MintableERC20", f"Bench Token {i}", f"BT{i}", TOKEN_DECIMALS)
        for i in range(tokens)
    ]
    accounts = _accounts(per_token)
    pair_list = [(a, t.lower()) for t in token_addresses for a in accounts]
    rng = random.Random(RNG_SEED)
    chosen = rng.sample(range(len(pair_list)), min(seeded, len(pair_list)))
    expected = [0] * len(pair_list)
    by_token: dict[str, list[tuple[str, int]]] = {}
    for index in chosen:
        amount = rng.randint(1, MAX_SEED_AMOUNT)
        expected[index] = amount
        account, token = pair_list[index]
        by_token.setdefault(token, []).append((account, amount))
    for token, mints in by_token.items():
        await dev.mint_many(token, mints)
    await dev.mine()
    block = BlockRef.from_rpc(await dev.rpc("eth_getBlockByNumber", ["latest", False]))
    return Fixture(url, token_addresses, accounts, pair_list, expected, block)


# -- (a) the node's raw limit -------------------------------------------------------------------


def raw_bodies(fixture: Fixture, *, override: bool) -> list[bytes]:
    """Every aggregate3 ``eth_call`` body as bytes, chunked like the watcher's reads.

    With ``override`` the call goes to the canonical address with the watcher's state override
    (the node deploys the code per call, as for (b)); without it, to the code put there with
    ``anvil_setCode``.
    """
    code = load_artifact("Multicall3").deployed_bytecode
    state = {CANONICAL_MULTICALL3: {"code": "0x" + code.hex()}}
    tuples = [mc.balance_of_call(token, account) for account, token in fixture.pairs]
    bodies = []
    for rid, start in enumerate(range(0, len(tuples), DEFAULT_BATCH_SIZE), start=1):
        chunk = tuples[start : start + DEFAULT_BATCH_SIZE]
        call = {"to": CANONICAL_MULTICALL3, "data": mc.encode_aggregate3(chunk)}
        params: list[Any] = [call, {"blockHash": fixture.block.hash}]
        if override:
            params.append(state)
        envelope = {"jsonrpc": "2.0", "id": rid, "method": "eth_call", "params": params}
        bodies.append(json.dumps(envelope, separators=(",", ":")).encode())
    return bodies


async def measure_raw(session: aiohttp.ClientSession, url: str, bodies: list[bytes]) -> float:
    """POST every body with ``DEFAULT_CONCURRENCY`` in flight; seconds taken.

    The replies are only checked after the clock stops (a JSON-RPC error would make the figure
    meaningless, so it raises).
    """
    replies: list[bytes] = [b""] * len(bodies)
    order = iter(range(len(bodies)))

    async def worker() -> None:
        for index in order:
            async with session.post(url, data=bodies[index]) as resp:
                replies[index] = await resp.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(DEFAULT_CONCURRENCY)))
    elapsed = time.perf_counter() - started
    for reply in replies:
        if b'"result":"0x' not in reply[:64]:
            raise RuntimeError(f"raw read failed: {reply[:200]!r}")
    return elapsed


# -- (b) the watcher ----------------------------------------------------------------------------


def new_reader(pool: RpcPool) -> BalanceReader:
    """A reader configured as production does: deploy-less, state override at the canonical
    address, default chunk and concurrency."""
    return BalanceReader(
        chain="bench",
        requester=pool,
        multicall_address=CANONICAL_MULTICALL3,
        override_code=load_artifact("Multicall3").deployed_bytecode,
    )


async def measure_watcher(
    reader: BalanceReader, fixture: Fixture
) -> tuple[float, list[int | None]]:
    """One full ``balances`` read of every pair; (seconds, values)."""
    started = time.perf_counter()
    values = await reader.balances(fixture.pairs, fixture.block)
    return time.perf_counter() - started, values


async def watcher_round(
    pool: RpcPool, fixture: Fixture, name: str, failures: list[str]
) -> tuple[float, float, list[int | None]]:
    """A fresh reader read twice: (cold seconds, warm seconds, warm values); every value
    is checked against the minted balances (mismatches appended to ``failures``)."""
    reader = new_reader(pool)
    cold, values = await measure_watcher(reader, fixture)
    failures += [f"{name} cold: {m}" for m in mismatches(fixture, values)]
    warm, values = await measure_watcher(reader, fixture)
    failures += [f"{name} warm: {m}" for m in mismatches(fixture, values)]
    return cold, warm, values


# -- (c) naive web3.py --------------------------------------------------------------------------


def naive_sample(fixture: Fixture, size: int) -> list[int]:
    """Indices of the pairs the naive peer reads: a fixed random sample over every token
    (mostly zero balances, like the whole set)."""
    rng = random.Random(RNG_SEED + 1)
    return sorted(rng.sample(range(len(fixture.pairs)), min(size, len(fixture.pairs))))


async def measure_naive(
    w3: AsyncWeb3[Any], fixture: Fixture, sample: list[int]
) -> tuple[float, list[int]]:
    """``balanceOf(account).call()`` one by one, as a web3.py user writes it; (s, values)."""
    abi = load_artifact("MintableERC20").abi
    contracts = {
        token.lower(): w3.eth.contract(address=w3.to_checksum_address(token), abi=abi)
        for token in fixture.tokens
    }
    started = time.perf_counter()
    values = []
    for index in sample:
        account, token = fixture.pairs[index]
        function = contracts[token].functions.balanceOf(w3.to_checksum_address(account))
        values.append(await function.call(block_identifier=fixture.block.number))
    return time.perf_counter() - started, values


# -- (d) the multicall package ------------------------------------------------------------------


@dataclass(slots=True)
class PeerOutcome:
    """The ``multicall`` peer's report, or why it could not run."""

    report: dict[str, Any] | None = None
    values: list[int | None] = field(default_factory=list)
    problem: str | None = None


def _uv_command() -> list[str] | None:
    """How to run uv here: ``uv`` on PATH, else ``python3 -m uv`` (as the Makefile does)."""
    found = shutil.which("uv")
    if found is not None:
        return [found]
    python3 = shutil.which("python3")
    if python3 is not None:
        probe = subprocess.run([python3, "-m", "uv", "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [python3, "-m", "uv"]
    return None


def ensure_peer_venv() -> str | None:
    """Create ``bench/.venv-multicall`` with ``multicall==PEER_VERSION`` if needed.

    Returns a problem description when that is impossible here, else ``None``.
    """
    python = PEER_VENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        f"import importlib.metadata as m; print(m.version({PEER_PACKAGE!r}))",
    ]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip() == PEER_VERSION:
            return None
    uv = _uv_command()
    if uv is None:
        return "uv not found: cannot create the peer venv"
    requirement, venv = f"{PEER_PACKAGE}=={PEER_VERSION}", str(PEER_VENV)
    steps = {
        "uv venv": [*uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, venv],
        "uv pip install": [*uv, "pip", "install", "--quiet", "--python", str(python), requirement],
    }
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    for label, command in steps.items():
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=PEER_INSTALL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return f"`{label}` timed out after {PEER_INSTALL_TIMEOUT_S:g}s"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"`{label}` failed: {' / '.join(tail)}"
    return None


def run_peer(fixture: Fixture, repeats: int) -> PeerOutcome:
    """Run ``multicall_peer.py`` in the peer venv over every pair; its report and values."""
    problem = ensure_peer_venv()
    if problem is not None:
        return PeerOutcome(problem=problem)
    spec = {
        "url": fixture.url,
        "chain_id": CHAIN_ID,
        "block_number": fixture.block.number,
        "pairs": [list(pair) for pair in fixture.pairs],
        "step": PEER_STEP,
        "repeats": repeats + 1,  # its first run also builds its Call objects
        "require_success": PEER_REQUIRE_SUCCESS,
    }
    with tempfile.TemporaryDirectory(prefix="bench-watcher-") as tmp:
        spec_path, out_path = Path(tmp, "spec.json"), Path(tmp, "values.json")
        spec_path.write_text(json.dumps(spec))
        command = [
            str(PEER_VENV / "bin" / "python"),
            str(PEER_SCRIPT),
            str(spec_path),
            str(out_path),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=PEER_RUN_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return PeerOutcome(problem=f"peer did not finish within {PEER_RUN_TIMEOUT_S:g}s")
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-5:]
            return PeerOutcome(problem=f"peer exited {done.returncode}: {' / '.join(tail)}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        values = json.loads(out_path.read_text())
    return PeerOutcome(report=report, values=values)


# -- correctness --------------------------------------------------------------------------------


def mismatches(
    fixture: Fixture, values: Sequence[int | None], indices: Sequence[int] | None = None
) -> list[str]:
    """Descriptions of the values that differ from the minted balances (at most 5)."""
    indices = range(len(fixture.pairs)) if indices is None else indices
    if len(values) != len(indices):
        return [f"{len(values)} values for {len(indices)} pairs"]
    bad = [
        f"{fixture.pairs[i]}: got {v!r}, expected {fixture.expected[i]}"
        for i, v in zip(indices, values, strict=True)
        if v != fixture.expected[i]
    ]
    return bad[:5] + ([f"… {len(bad) - 5} more"] if len(bad) > 5 else [])


async def direct_check(dev: DevChain, fixture: Fixture, values: Sequence[int | None]) -> list[str]:
    """Compare a sample of ``values`` with one plain ``eth_call`` per pair (eth_abi decoding)."""
    rng = random.Random(RNG_SEED + 2)
    seeded = [i for i, amount in enumerate(fixture.expected) if amount]
    sample = rng.sample(seeded, min(VERIFY_SAMPLE // 2, len(seeded)))
    sample += rng.sample(range(len(fixture.pairs)), min(VERIFY_SAMPLE // 2, len(fixture.pairs)))
    bad = []
    for index in sample:
        account, token = fixture.pairs[index]
        direct = await dev.call(
            token, "MintableERC20", "balanceOf", account, block=fixture.block.number
        )
        if direct != values[index]:
            bad.append(f"{fixture.pairs[index]}: watcher {values[index]!r}, eth_call {direct}")
    return bad[:5]


# -- reporting ----------------------------------------------------------------------------------


def rate(pairs: int, seconds: Sequence[float]) -> float:
    """Balances per second from the median duration."""
    return pairs / statistics.median(seconds)


def paired(reference: Sequence[float], measured: Sequence[float]) -> float:
    """Median over rounds of (rate measured) / (rate reference), from durations taken in the
    same round: steadier than a ratio of medians when the machine's load drifts."""
    return statistics.median(r / m for r, m in zip(reference, measured, strict=True))


def fmt_rate(value: float | None) -> str:
    """Balances/s, thousands-separated, or n/a."""
    return "n/a" if value is None else f"{value:,.0f}"


def fmt_ratio(top: float | None, bottom: float | None) -> str:
    """``top / bottom`` as ``1.23×``, or n/a."""
    if top is None or bottom is None or bottom == 0:
        return "n/a"
    return f"{top / bottom:,.2f}×"


async def profile_read(reader: BalanceReader, fixture: Fixture) -> str:
    """cProfile of one warm watcher read (after a cold one); top functions by own time."""
    await reader.balances(fixture.pairs, fixture.block)
    profiler = cProfile.Profile()
    profiler.enable()
    await reader.balances(fixture.pairs, fixture.block)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(PROFILE_TOP)
    return out.getvalue()


def progress(pairs: int, naive_pairs: int, figures: Figures) -> str:
    """The rates of the last round, one line."""
    last = [
        ("(a)", pairs, figures.raw_override),
        ("(b) cold", pairs, figures.cold),
        ("(b) warm", pairs, figures.warm),
        ("(c)", naive_pairs, figures.naive),
    ]
    return "  ".join(f"{name} {fmt_rate(rate(n, d[-1:]))}" for name, n, d in last if d)


# -- main ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Figures:
    """Durations (seconds) collected per measurement."""

    raw_override: list[float] = field(default_factory=list)
    raw_setcode: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    naive: list[float] = field(default_factory=list)


async def run(args: argparse.Namespace) -> int:
    """Set up the chain, measure everything, print the table; the exit status."""
    failures: list[str] = []
    figures = Figures()
    started = time.perf_counter()
    async with AnvilNode(chain_id=CHAIN_ID) as node, DevChain(node.url) as dev:
        print(f"anvil {node.url} chain {node.chain_id}; setting up {args.pairs:,} pairs …")
        fixture = await build_fixture(
            dev, node.url, pairs=args.pairs, tokens=args.tokens, seeded=args.seeded
        )
        print(
            f"  {len(fixture.tokens)} tokens × {len(fixture.accounts):,} accounts, "
            f"{sum(1 for v in fixture.expected if v):,} non-zero; block {fixture.block.number} "
            f"({time.perf_counter() - started:.1f}s)"
        )
        bodies_override = raw_bodies(fixture, override=True)
        bodies_setcode = raw_bodies(fixture, override=False)
        sample = naive_sample(fixture, args.naive_sample)
        connector = aiohttp.TCPConnector(limit=DEFAULT_CONCURRENCY)
        w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
        async with (
            aiohttp.ClientSession(
                connector=connector, headers={"Content-Type": "application/json"}
            ) as session,
            RpcPool(chain="bench", chain_id=CHAIN_ID, urls=[node.url] * args.endpoints) as pool,
        ):
            await pool.request("eth_blockNumber")  # chain id check and connection, untimed
            await measure_raw(session, node.url, bodies_override[:DEFAULT_CONCURRENCY])
            last: list[int | None] = []

            async def raw_step() -> None:
                figures.raw_override.append(await measure_raw(session, node.url, bodies_override))
                figures.raw_setcode.append(await measure_raw(session, node.url, bodies_setcode))

            async def watcher_step() -> None:
                nonlocal last
                cold, warm, last = await watcher_round(pool, fixture, "(b)", failures)
                figures.cold.append(cold)
                figures.warm.append(warm)

            steps = [raw_step, watcher_step]
            for round_no in range(1, args.repeats + 1):
                # Alternate the order round by round so that neither side always runs first.
                for step in steps if round_no % 2 else reversed(steps):
                    await step()
                seconds, naive_values = await measure_naive(w3, fixture, sample)
                figures.naive.append(seconds)
                failures += [f"(c): {m}" for m in mismatches(fixture, naive_values, sample)]
                print(f"  round {round_no}: {progress(args.pairs, len(sample), figures)}")
            failures += [f"(b) vs eth_call: {m}" for m in await direct_check(dev, fixture, last)]
            if args.profile:
                print("cProfile, one warm read:")
                print(await profile_read(new_reader(pool), fixture))
        await w3.provider.disconnect()
        peer = PeerOutcome(problem="skipped (--no-peer)")
        if not args.no_peer:
            print(f"  running the {PEER_PACKAGE} {PEER_VERSION} peer in {PEER_VENV.name} …")
            peer = await asyncio.to_thread(run_peer, fixture, args.repeats)
            if peer.report is not None:
                failures += [f"(d): {m}" for m in mismatches(fixture, peer.values)]
    return report(
        args, fixture, figures, len(sample), peer, failures, time.perf_counter() - started
    )


def report(
    args: argparse.Namespace,
    fixture: Fixture,
    figures: Figures,
    naive_pairs: int,
    peer: PeerOutcome,
    failures: list[str],
    total_s: float,
) -> int:
    """Print the table (Markdown), the targets and the correctness verdict; exit status."""
    n = args.pairs
    raw = rate(n, figures.raw_override)
    raw_setcode = rate(n, figures.raw_setcode)
    cold = rate(n, figures.cold)
    warm = rate(n, figures.warm)
    naive = rate(naive_pairs, figures.naive)
    multicall = peer.report["balances_per_s"] if peer.report else None
    rows: list[tuple[str, float | None]] = [
        ("(a) raw limit: pre-encoded bodies, no decoding, same state override", raw),
        ("(a′) raw limit, Multicall3 at the canonical address via anvil_setCode", raw_setcode),
        ("(b) watcher, cold (calldata cache empty)", cold),
        ("(b) watcher, warm", warm),
    ]
    rows += [
        (f"(c) naive web3.py 8 balanceOf().call(), {naive_pairs} sampled", naive),
        (f"(d) PyPI multicall {PEER_VERSION}, step {PEER_STEP}, warm", multicall),
    ]
    print()
    print(
        f"{n:,} pairs ({args.tokens} tokens), chunk {DEFAULT_BATCH_SIZE}, concurrency "
        f"{DEFAULT_CONCURRENCY}, {args.endpoints} pool endpoint(s), median of {args.repeats}; "
        f"nproc {os.cpu_count()}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; total {total_s:.0f}s"
    )
    print()
    print("| path | balances/s | (b) warm ÷ this |")
    print("|---|---:|---:|")
    for label, value in rows:
        print(f"| {label} | {fmt_rate(value)} | {fmt_ratio(warm, value)} |")
    if peer.report is not None:
        print(
            f"| (d) PyPI multicall, first run (builds its Call objects) | "
            f"{fmt_rate(peer.report['first_balances_per_s'])} | "
            f"{fmt_ratio(warm, peer.report['first_balances_per_s'])} |"
        )
    else:
        print(f"\n(d) not measured: {peer.problem}")
    print()
    paired_warm = paired(figures.raw_override, figures.warm)
    paired_cold = paired(figures.raw_override, figures.cold)
    print(
        f"(b)/(a) per round, median: warm {paired_warm:.2f}×, cold {paired_cold:.2f}× "
        f"(ratio of medians: warm {warm / raw:.2f}×, cold {cold / raw:.2f}×)"
    )
    print(
        f"(b)/(c) {fmt_ratio(warm, naive)}   (b)/(d) {fmt_ratio(warm, multicall)}   "
        f"(a′)/(a) {fmt_ratio(raw_setcode, raw)}"
    )
    for name, ratio, factor in (
        ("(b) warm ≥ 0.7 × (a)", paired_warm, TARGET_VS_RAW),
        ("(b) cold ≥ 0.7 × (a)", paired_cold, TARGET_VS_RAW),
        ("(b) warm ≥ 10 × (c)", warm / naive, TARGET_VS_NAIVE),
    ):
        print(f"target {name}: {ratio:,.2f}× → {'met' if ratio >= factor else 'MISSED'}")
    if failures:
        print("\nCORRECTNESS FAILURES:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print(
        "correctness: every value of (b), (c) and (d) equals the minted balance; "
        f"{VERIFY_SAMPLE} of (b) match direct eth_call"
    )
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults per the issue)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="(account, token) pairs")
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="tokens deployed")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="rounds (median)")
    parser.add_argument("--seeded", type=int, default=DEFAULT_SEEDED, help="non-zero balances")
    parser.add_argument(
        "--naive-sample", type=int, default=DEFAULT_NAIVE_SAMPLE, help="pairs read by (c)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip (d), the multicall package")
    parser.add_argument("--profile", action="store_true", help="cProfile one warm watcher read")
    parser.add_argument(
        "--endpoints",
        type=int,
        default=1,
        help="the node's URL this many times in (b)'s pool: several take the hedged path",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``uv run python bench/watcher.py``."""
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
