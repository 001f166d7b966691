"""Benchmark of ``POST /v1/stress`` (DESIGN §9): a stress pass over a million accounts.

    uv run python bench/stress.py                      # 1,000,000 accounts, weighted and tiered
    uv run python bench/stress.py --accounts 100000 --models weighted
    uv run python bench/stress.py --models portfolio   # 1,000,000 accounts with 2 options each
    uv run python bench/stress.py --models portfolio --no-peer   # without the slow peer loop

The book is ``bench/engine.py``'s (16 tokens on 4 chains, 8 holdings per account, tiered USDC
and WBTC collateral) plus a BTC perp for every tenth account. The real keeper API serves it
on loopback (``daemon.api.app.ApiServer`` over a SQLite store the route never touches), with a
view handing out ``MarginEngine.snapshot()`` as the daemon does; the client times the whole
request (snapshot, two vectorised passes in a worker thread, JSON).

Peer in the same run: the pure-Python reference ``margin.health.evaluate_account`` valuing
each account before and after the shocks — the straightforward loop — on a sample of
accounts, extrapolated to all of them. On the sample, the API's engine and the reference must
agree bit for bit on health after the shocks.

``--models portfolio`` serves ``bench/portfolio.py``'s book instead (8 holdings of 16 tokens
and 2 listed ETH or BTC options per account, no perps) under ``margin.model: portfolio``; the
peer is the independent pure-Python implementation of the tests
(``tests/margin/portfolio_oracle.py``) valuing each sampled account before and after the
shocks (prices, EWMA volatilities and implied vols shocked), compared with the engine within
the cents of rounding (largest difference of M after the shocks).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# `python bench/stress.py` puts bench/ first on the path, where bench/venues.py would shadow
# the `venues` package: the repository root goes first, bench modules by their package name.
sys.path.insert(0, str(ROOT))

import bench.portfolio as book_with_options  # noqa: E402
from bench.engine import CHAINS, HOLDINGS_PER_ACCOUNT, PRICES, build, tokens  # noqa: E402
from core.domain import Role  # noqa: E402
from daemon.api.app import ApiServer  # noqa: E402
from daemon.api.positions import PositionMarkets  # noqa: E402
from daemon.config.model import ApiConfig  # noqa: E402
from daemon.metrics import Metrics  # noqa: E402
from daemon.store.migrate import migrate  # noqa: E402
from daemon.store.writer import HealthStore  # noqa: E402
from margin.engine import MarginEngine  # noqa: E402
from margin.health import evaluate_account  # noqa: E402
from margin.model import ChainInput, Holding, MarginModel, Position, Tier, TokenRisk  # noqa: E402
from margin.options import OptionPosition  # noqa: E402
from margin.scenario import ScenarioBook  # noqa: E402
from margin.stress import Shocks, shocked_prices  # noqa: E402
from tests.margin import portfolio_oracle as oracle  # noqa: E402

TARGET_S = 2.0
RUNS = 5
NAIVE_SAMPLE = 5_000
PERP_EVERY = 10
SHOCKS = {"price_shocks": {"BTC": -0.3, "USDC": -0.02}, "vol_shocks": {"BTC": 0.5}}
PERP_TIERS = (Tier(0.01, 1_000_000), Tier(0.025))
PORTFOLIO_SAMPLE = 1_000


class BenchView:
    """The daemon's view as far as the stress routes go."""

    def __init__(self, engine: MarginEngine) -> None:
        self.engine = engine

    def stress_book(self) -> ScenarioBook | None:
        return self.engine.snapshot()

    def chain_statuses(self) -> list[Mapping[str, object]]:
        return []

    def price_statuses(self) -> list[Mapping[str, object]] | None:
        return []

    def readiness(self) -> list[str]:
        return []

    def read_failures(self) -> list[dict[str, object]]:
        return []

    async def position_changed(self, account: str) -> None:
        return None


def add_perps(engine: MarginEngine, accounts: list[str]) -> dict[int, Position]:
    """A BTC perp (long or short, 0.1–2 BTC) for every ``PERP_EVERY``-th account."""
    rng = np.random.default_rng(7)
    perps = {}
    for i in range(0, len(accounts), PERP_EVERY):
        size = float(rng.uniform(0.1, 2.0)) * (1 if i % 20 else -1)
        position = Position(
            account=accounts[i],
            asset="BTC",
            chain=CHAINS[i % len(CHAINS)][0],
            size=size,
            entry_price=float(rng.uniform(50_000, 70_000)),
            mmr_tiers=PERP_TIERS,
        )
        engine.set_position(position)
        perps[i] = position
    return perps


async def time_requests(
    engine: MarginEngine, assets: frozenset[str]
) -> tuple[list[float], list[float], dict[str, object], float]:
    """Seconds of ``RUNS`` POSTs to the real API, the process CPU seconds of each (server,
    its threads and the client together: all live in this process), the last answer, and
    the seconds of one ``GET /v1/stress/grid?asset=BTC`` (21 passes)."""
    with tempfile.TemporaryDirectory(prefix="crossmargin_bench_stress_") as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'store.sqlite3'}"
        await migrate(url)
        async with await HealthStore.open(url) as store:
            server = ApiServer(
                queries=store.queries,
                store=store,
                view=BenchView(engine),
                settings=ApiConfig(listen="127.0.0.1:0"),
                metrics=Metrics(),
                markets=PositionMarkets(assets=assets, chains=frozenset(c for c, _ in CHAINS)),
            )
            async with server, aiohttp.ClientSession() as session:
                seconds, cpu, answer = [], [], {}
                for _ in range(RUNS):
                    start, cpu_start = time.perf_counter(), time.process_time()
                    async with session.post(f"{server.url}/v1/stress", json=SHOCKS) as response:
                        answer = await response.json()
                        assert response.status == 200, answer
                    seconds.append(time.perf_counter() - start)
                    cpu.append(time.process_time() - cpu_start)
                start = time.perf_counter()
                grid_url = f"{server.url}/v1/stress/grid"
                async with session.get(grid_url, params={"asset": "BTC"}) as response:
                    assert response.status == 200, await response.text()
                    await response.read()
                return seconds, cpu, answer, time.perf_counter() - start


def naive_peer(
    engine: MarginEngine,
    accounts: list[str],
    loaded: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    perps: dict[int, Position],
) -> tuple[float, int, int]:
    """Seconds per account of the reference before and after the shocks on a sample, the
    sample's size, and how many of its healths after differ from the engine's (expect 0)."""
    book = tokens()
    rng = np.random.default_rng(11)
    sample = rng.choice(len(accounts), min(NAIVE_SAMPLE, len(accounts)), replace=False).tolist()
    inputs = []
    for i in sample:
        holdings = []
        for j in range(HOLDINGS_PER_ACCOUNT):
            token = book[(i + j) % len(book)]
            holders, raws = loaded[token.key]
            raw = int(raws[np.searchsorted(holders, i)])
            holdings.append(
                Holding(account=accounts[i], chain=token.chain, token=token.token, raw=raw, block=1)
            )
        inputs.append((holdings, [perps[i]] if i in perps else []))
    token_map = {t.key: t for t in book}
    chain_map = {c: ChainInput(name=c, liquidation_latency_s=t) for c, t in CHAINS}
    now = {p.asset: p for p in PRICES}
    shocks = Shocks(price=SHOCKS["price_shocks"], vol=SHOCKS["vol_shocks"])
    after = shocked_prices(now, shocks)
    start = time.perf_counter()
    results = []
    for i, (holdings, positions) in zip(sample, inputs, strict=True):
        for prices in (now, after):
            results.append(
                evaluate_account(
                    accounts[i],
                    holdings,
                    positions,
                    tokens=token_map,
                    prices=prices,
                    chains=chain_map,
                    params=engine.params,
                )
            )
    per_account = (time.perf_counter() - start) / len(sample)
    table = engine.snapshot().evaluate(after, shocks.vol).table
    mismatches = sum(
        table.health[engine.account_index(accounts[i])] != results[2 * k + 1].health
        for k, i in enumerate(sample)
    )
    return per_account, len(sample), mismatches


def portfolio_peer(
    engine: MarginEngine,
    holdings: list[list[tuple[TokenRisk, int]]],
    options: list[list[OptionPosition]],
) -> tuple[float, int, float]:
    """Seconds per account of the independent implementation before and after the shocks on
    a sample, the sample's size, and the largest |M_engine − M_loop| after the shocks (USD)."""
    bench = book_with_options
    shocks = Shocks(price=SHOCKS["price_shocks"], vol=SHOCKS["vol_shocks"])
    move = {a: 1.0 + shocks.price.get(a, 0.0) for a in bench.PRICES}
    vol = {a: 1.0 + shocks.vol.get(a, 0.0) for a in bench.PRICES}
    calm = oracle.Setup(
        groups={g.name: (list(g.assets), g.scan_range) for g in bench.PARAMS.groups},
        default_scan_range=bench.PARAMS.default_scan_range,
        correlations={(a, b): rho for a, b, rho in bench.PARAMS.correlations},
        prices=dict(bench.PRICES),
        volatility=dict(bench.VOLATILITY),
        floors=dict(bench.FLOORS),
        latency=dict(bench.CHAINS),
        now=bench.NOW,
    )
    stressed = oracle.Setup(
        **{
            **calm.__dict__,
            "prices": {a: p * move[a] for a, p in bench.PRICES.items()},
            "volatility": {a: v * vol[a] for a, v in bench.VOLATILITY.items()},
        }
    )

    def account(i: int, stressed_book: bool) -> oracle.Book:
        price = stressed.prices if stressed_book else calm.prices
        iv = vol if stressed_book else dict.fromkeys(vol, 1.0)
        return oracle.Book(
            holdings=[
                (
                    tok.asset,
                    tok.chain,
                    (1 if tok.role is Role.COLLATERAL else -1)
                    * raw
                    / 10 ** (tok.decimals or 0)
                    * price[tok.asset],
                )
                for tok, raw in holdings[i]
            ],
            options=[
                (
                    o.asset,
                    o.chain,
                    o.size,
                    o.right.value,
                    o.strike,
                    float(o.expiry),
                    o.implied_vol * iv[o.asset],
                )
                for o in options[i]
            ],
        )

    sample = random.Random(bench.SEED + 5).sample(range(len(holdings)), PORTFOLIO_SAMPLE)
    books = [(account(i, False), account(i, True)) for i in sample]
    start = time.perf_counter()
    answers = []
    for before, after in books:
        oracle.evaluate(calm, before)
        answers.append(oracle.evaluate(stressed, after).maintenance)
    per_account = (time.perf_counter() - start) / len(sample)
    snapshot = engine.snapshot()
    table = snapshot.evaluate(shocked_prices(snapshot.prices, shocks), shocks.vol).table
    got = [table.maintenance[engine.account_index(f"0x{i:040x}")] / 100 for i in sample]
    worst = max(abs(a - b) for a, b in zip(got, answers, strict=True))
    return per_account, len(sample), worst


def run_portfolio(n: int, *, peer: bool = True) -> None:
    """``run_one`` for ``bench/portfolio.py``'s book under ``margin.model: portfolio``."""
    bench = book_with_options
    start = time.perf_counter()
    holdings, options = bench.book(n, random.Random(bench.SEED))
    engine = bench.build(MarginModel.PORTFOLIO, holdings, options)
    engine.recompute_all()
    load_s = time.perf_counter() - start
    snap = [time.perf_counter()]
    engine.snapshot()
    snap.append(time.perf_counter())
    assets = frozenset(bench.PRICES)
    seconds, cpu, answer, grid_s = asyncio.run(time_requests(engine, assets))
    median = statistics.median(seconds)
    verdict = "met" if median <= TARGET_S else "MISSED"
    lines = sum(len(o) for o in options)
    peer_columns = "— | — | —"
    if peer:
        per_account, sampled, worst = portfolio_peer(engine, holdings, options)
        naive_total = per_account * n
        peer_columns = (
            f"{naive_total:,.1f} s | {naive_total / median:,.0f}× | "
            f"{sampled:,} / max |ΔM| {worst:.3f} USD"
        )
    print(
        f"| portfolio | {n:,} | {lines:,} options | {median * 1000:,.0f} ms "
        f"(min {min(seconds) * 1000:,.0f}) | ≤ {TARGET_S:g} s {verdict} | "
        f"{(snap[1] - snap[0]) * 1000:,.0f} ms | {peer_columns} | {grid_s:,.1f} s |"
    )
    print(
        f"    load {load_s:.1f} s; request CPU (all threads) median "
        f"{statistics.median(cpu) * 1000:,.0f} ms, min {min(cpu) * 1000:,.0f} ms; "
        f"liquidatable {answer['liquidatable_before']:,} → "
        f"{answer['liquidatable_after']:,}; shortfall after {answer['total_shortfall_after']}; "
        f"bad debt after {answer['bad_debt_after']}",
        file=sys.stderr,
    )


def run_one(n: int, model: MarginModel, *, peer: bool = True) -> None:
    if model is MarginModel.PORTFOLIO:
        run_portfolio(n, peer=peer)
        return
    start = time.perf_counter()
    engine, accounts, loaded = build(n, model)
    perps = add_perps(engine, accounts)
    engine.recompute_all()
    load_s = time.perf_counter() - start
    snap = [time.perf_counter()]
    engine.snapshot()
    snap.append(time.perf_counter())
    seconds, cpu, answer, grid_s = asyncio.run(time_requests(engine, frozenset({"USDC", "BTC"})))
    per_account, sampled, mismatches = naive_peer(engine, accounts, loaded, perps)
    median = statistics.median(seconds)
    naive_total = per_account * n
    verdict = "met" if median <= TARGET_S else "MISSED"
    print(
        f"| {model.value} | {n:,} | {len(perps):,} | {median * 1000:,.0f} ms "
        f"(min {min(seconds) * 1000:,.0f}) | ≤ {TARGET_S:g} s {verdict} | "
        f"{(snap[1] - snap[0]) * 1000:,.0f} ms | {naive_total:,.1f} s | "
        f"{naive_total / median:,.0f}× | {sampled:,} / {mismatches} | {grid_s:,.1f} s |"
    )
    print(
        f"    load {load_s:.1f} s; request CPU (all threads) median "
        f"{statistics.median(cpu) * 1000:,.0f} ms, min {min(cpu) * 1000:,.0f} ms; "
        f"liquidatable {answer['liquidatable_before']:,} → "
        f"{answer['liquidatable_after']:,}; shortfall after {answer['total_shortfall_after']}; "
        f"bad debt after {answer['bad_debt_after']}",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--models", nargs="+", default=["weighted", "tiered"])
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="skip the portfolio model's pure-Python peer (minutes at a million accounts)",
    )
    args = parser.parse_args()
    print(
        "| model | accounts | perps | POST /v1/stress (median of 5) | target | snapshot | "
        "pure-Python loop | API ÷ loop | sample / mismatches | grid (21 points) |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in args.accounts:
        for model in args.models:
            run_one(n, MarginModel(model), peer=not args.no_peer)


if __name__ == "__main__":
    main()
