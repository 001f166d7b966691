"""Benchmark of the margin engine (DESIGN §8): full and incremental recompute, memory.

    uv run python bench/engine.py                       # 100k and 1M accounts, both models
    uv run python bench/engine.py --accounts 100000 --models tiered

Synthetic book: 16 tokens (per chain: tiered USDC and WBTC collateral, USDC and WBTC debt) on
4 chains with different liquidation latencies; every account holds 8 of them (4 collateral,
4 debt). Each size runs in its own process, so its RSS delta is its own.

Peers measured in the same run, because these machines are noisy:
- one ``np.bincount`` pass over the holdings: the floor (memory bandwidth) for any
  per-account aggregation of that many rows;
- the pure-Python reference ``margin.health.evaluate_account`` on a sample of accounts,
  extrapolated to all of them: the naive loop the engine replaces.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from core.domain import Role
from margin.engine import MarginEngine
from margin.health import evaluate_account
from margin.model import ChainInput, EngineParams, Holding, MarginModel, PriceInput, Tier, TokenRisk

HOLDINGS_PER_ACCOUNT = 8
FULL_RUNS = 7
INCREMENTAL_BATCHES = 50
BATCH_ACCOUNTS = 100
NAIVE_SAMPLE = 10_000
TARGET_FULL_S = {100_000: 0.100, 1_000_000: 1.0}
TARGET_BATCH_S = 0.001
CHAINS = [("eth", 900.0), ("arb", 3_600.0), ("base", 60.0), ("gnosis", 12.0)]
TIERS = (Tier(0.9, 100_000), Tier(0.7, 1_000_000), Tier(0.5))
SEED = 20_240_601


TOKEN_KINDS = [  # per chain: (token, asset, role, weight, decimals, tiers)
    ("usdc", "USDC", Role.COLLATERAL, 0.9, 6, TIERS),
    ("wbtc", "BTC", Role.COLLATERAL, 0.75, 8, TIERS),
    ("dusdc", "USDC", Role.LIABILITY, 1.0, 6, ()),
    ("dwbtc", "BTC", Role.LIABILITY, 1.05, 8, ()),
]


def tokens() -> list[TokenRisk]:
    """The 16 tokens of the synthetic book."""
    return [
        TokenRisk(chain=c, token=t, asset=a, role=r, weight=w, decimals=d, tiers=tiers)
        for c, _ in CHAINS
        for t, a, r, w, d, tiers in TOKEN_KINDS
    ]


PRICES = [
    PriceInput(asset="USDC", price=1.0, volatility=0.05),
    PriceInput(
        asset="BTC", price=60_000.0, volatility=0.6, price_low=59_950.0, price_high=60_050.0
    ),
]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic_raws(token: TokenRisk, n: int, rng: np.random.Generator) -> np.ndarray:
    """Raw balances below 2**53 (the exact bulk path): up to 1M USDC / 20 BTC of collateral,
    debts sized so that health spreads around 1."""
    usd = rng.uniform(0, 1_000_000 if token.role is Role.COLLATERAL else 380_000, n)
    price = 1.0 if token.asset == "USDC" else 60_000.0
    raws: np.ndarray = (usd / price * 10**token.decimals).astype(np.uint64)
    return raws


def build(
    n: int, model: MarginModel
) -> tuple[MarginEngine, list[str], dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]]:
    """An engine loaded with ``n`` accounts × 8 holdings; also returns, per token, the holders
    and their raws (for the naive peer)."""
    book = tokens()
    engine = MarginEngine(
        tokens=book,
        chains=[ChainInput(name=c, liquidation_latency_s=t) for c, t in CHAINS],
        params=EngineParams(model=model),
    )
    engine.set_prices(PRICES)
    accounts = [f"0x{i:040x}" for i in range(n)]
    rng = np.random.default_rng(SEED)
    index = np.arange(n)
    loaded = {}
    for t, token in enumerate(book):  # account i holds tokens i, i+1, …, i+7 (mod 16)
        holders = index[(t - index) % len(book) < HOLDINGS_PER_ACCOUNT]
        raws = synthetic_raws(token, len(holders), rng)
        engine.load_balances(
            token.chain, token.token, [accounts[i] for i in holders], raws, block=1
        )
        loaded[token.key] = (holders, raws)
    return engine, accounts, loaded


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` calls."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def naive_peer(
    engine: MarginEngine,
    accounts: list[str],
    loaded: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
) -> tuple[float, int, int]:
    """Seconds per account of the reference on a sample, and how many of the sample's health
    values differ from the engine's (expected: none)."""
    book = tokens()
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
        inputs.append(holdings)
    token_map = {t.key: t for t in book}
    price_map = {p.asset: p for p in PRICES}
    chain_map = {c: ChainInput(name=c, liquidation_latency_s=t) for c, t in CHAINS}
    start = time.perf_counter()
    naive = [
        evaluate_account(
            accounts[i],
            h,
            [],
            tokens=token_map,
            prices=price_map,
            chains=chain_map,
            params=engine.params,
        )
        for i, h in zip(sample, inputs, strict=True)
    ]
    per_account = (time.perf_counter() - start) / len(sample)
    health = engine.results.health
    mismatches = sum(
        health[engine.account_index(accounts[i])] != r.health
        for i, r in zip(sample, naive, strict=True)
    )
    return per_account, len(sample), mismatches


def incremental(
    engine: MarginEngine, accounts: list[str], rng: np.random.Generator
) -> tuple[list[float], list[float]]:
    """Per batch: seconds of ``BATCH_ACCOUNTS`` balance updates, and of recompute_dirty()."""
    book = tokens()
    recomputes, updates = [], []
    for _ in range(INCREMENTAL_BATCHES):
        picks = rng.integers(0, len(accounts), BATCH_ACCOUNTS).tolist()
        offsets = rng.integers(0, HOLDINGS_PER_ACCOUNT, BATCH_ACCOUNTS).tolist()
        new_raws = rng.integers(0, 2**40, BATCH_ACCOUNTS).tolist()
        start = time.perf_counter()
        for i, offset, raw in zip(picks, offsets, new_raws, strict=True):
            token = book[(i + offset) % len(book)]
            engine.set_balance(accounts[i], token.chain, token.token, raw, 2)
        updates.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.recompute_dirty()
        recomputes.append(time.perf_counter() - start)
    return recomputes, updates


def one_pass_times(n: int) -> list[float]:
    """Seconds of one np.bincount over ``n`` × 8 rows: the floor of any per-account sum."""
    key = np.repeat(np.arange(n, dtype=np.intp), HOLDINGS_PER_ACCOUNT)
    amount = np.random.default_rng(1).uniform(0, 1, len(key))
    return timed(lambda: np.bincount(key, weights=amount, minlength=n), FULL_RUNS)


def run_one(n: int, model: MarginModel) -> None:
    gc.collect()
    rss_before = rss_bytes()
    start = time.perf_counter()
    engine, accounts, loaded = build(n, model)
    bench_only = sum(h.nbytes + r.nbytes for h, r in loaded.values())  # the naive peer's copy
    rss_stored = rss_bytes() - rss_before - bench_only
    engine.recompute_all()
    load_s = time.perf_counter() - start
    rss_delta = rss_bytes() - rss_before - bench_only
    rows = n * HOLDINGS_PER_ACCOUNT

    full = timed(engine.recompute_all, FULL_RUNS)
    one_pass = one_pass_times(n)
    rng = np.random.default_rng(SEED + 1)
    naive_per_account, sampled, mismatches = naive_peer(engine, accounts, loaded, rng)
    recomputes, updates = incremental(engine, accounts, rng)

    full_s, pass_s = statistics.median(full), statistics.median(one_pass)
    batch_s, update_s = statistics.median(recomputes), statistics.median(updates)
    naive_total = naive_per_account * n
    target = TARGET_FULL_S.get(n)
    verdict = (
        ""
        if target is None
        else (f"   target ≤ {target * 1e3:.0f} ms: {'met' if full_s <= target else 'MISSED'}")
    )
    batch_verdict = "met" if batch_s <= TARGET_BATCH_S else "MISSED"
    print(
        f"\n== {model.value}: {n:,} accounts × {HOLDINGS_PER_ACCOUNT} holdings = {rows:,} rows =="
    )
    print(f"load (bulk) + first recompute    {load_s:9.2f} s")
    print(
        f"full recompute, median of {FULL_RUNS}     {full_s * 1e3:9.1f} ms{verdict}"
        f"   [min {min(full) * 1e3:.1f}, max {max(full) * 1e3:.1f}]"
    )
    print(
        f"  peer: one bincount pass         {pass_s * 1e3:9.1f} ms   "
        f"full recompute = {full_s / pass_s:.1f} passes"
    )
    print(
        f"  peer: pure-Python reference     {naive_per_account * 1e6:9.1f} µs/account "
        f"(sample {sampled:,}) → {naive_total:.1f} s for all: "
        f"engine {naive_total / full_s:,.0f}× faster"
    )
    print(
        f"incremental, {BATCH_ACCOUNTS} changed accounts  {batch_s * 1e3:9.3f} ms"
        f"   target ≤ {TARGET_BATCH_S * 1e3:.0f} ms: {batch_verdict}"
        f"   ({batch_s / BATCH_ACCOUNTS * 1e6:.1f} µs/account, "
        f"p90 {np.percentile(recomputes, 90) * 1e3:.3f} ms, "
        f"{full_s / batch_s:,.0f}× less than full)"
    )
    print(
        f"  set_balance × {BATCH_ACCOUNTS}               {update_s * 1e3:9.3f} ms"
        f"   ({update_s / BATCH_ACCOUNTS * 1e6:.1f} µs each)"
    )
    print(
        f"resident memory (RSS delta)      {rss_stored / 2**20:9.0f} MiB"
        f"   = {rss_stored / rows:.0f} bytes/holding stored (account ids, rows, buckets, results)"
    )
    print(
        f"  with a recompute's working set {rss_delta / 2**20:9.0f} MiB"
        f"   = {rss_delta / rows:.0f} bytes/holding (freed temporaries the allocator keeps)"
    )
    agreement = "yes" if not mismatches else f"NO, {mismatches} differ"
    print(f"engine = reference on the sample: {agreement}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--models", nargs="+", default=[m.value for m in MarginModel])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.accounts[0], MarginModel(args.models[0]))
        return
    python = sys.version.split()[0]
    print(f"margin engine bench — python {python}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    for n in args.accounts:
        for model in args.models:
            subprocess.run(
                [sys.executable, __file__, "--child", "--accounts", str(n), "--models", model],
                check=True,
            )


if __name__ == "__main__":
    main()
