"""Benchmark of the portfolio margin model (issue 11): full and incremental recompute.

    uv run python bench/portfolio.py                    # 100,000 accounts
    uv run python bench/portfolio.py --accounts 20000   # a quicker look
    git show 44fbde3:margin/portfolio.py > /tmp/portfolio_before.py
    uv run python bench/portfolio.py --baseline /tmp/portfolio_before.py   # paired old/new

Synthetic book: 16 tokens (per chain: ETH, USDC and BTC collateral, USDC debt) on 4 chains with
different liquidation latencies; every account holds 8 of them and 2 options (ETH or BTC,
calls and puts, held or written). Options are listed contracts, as on an exchange: 8 expiries
(1–90 days) × 13 strikes (±30 % in 5 % steps) × call/put × 2 underlyings = 416 contracts, each
with its implied vol from a smile; ``--unique-options`` gives every line its own strike,
expiry and vol instead (the worst case: one Black–Scholes grid per line). Groups: ETH, USD, BTC
alone; ρ(ETH, BTC) = 0.8.

Peers measured in the same run, because these machines are noisy:
- the same book under ``margin.model: weighted`` (options at market value): what the grid costs
  over the first generation;
- the independent pure-Python implementation (``tests/margin/portfolio_oracle.py``: loops and
  ``math``) on a sample of accounts, extrapolated to all of them: the naive loop the engine
  replaces. Its answers are compared with the engine's on the sample (largest difference of M);
- with ``--baseline FILE``, another version of ``margin/portfolio.py`` (its
  ``evaluate_portfolio`` plugged into the same engine): full recomputes alternate between the
  two after the same moves, then 100-changed batches run with each; the results of both are
  checked equal bit for bit. The file must know this tree's ``GroupMarket`` (from commit
  744a133 on the market's unit cache is a ``UnitCache``, no longer a dict): older kernels
  are compared by running their whole tree, alternating (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

import margin.portfolio_kernel as kernel
from core.domain import Role
from margin.engine import MarginEngine
from margin.model import ChainInput, EngineParams, MarginModel, PriceInput, TokenRisk
from margin.options import OptionPosition, Right
from margin.scenarios import PortfolioParams, RiskGroup
from tests.margin import portfolio_oracle as oracle

HOLDINGS_PER_ACCOUNT = 8
OPTIONS_PER_ACCOUNT = 2
FULL_RUNS = 5
INCREMENTAL_BATCHES = 50
BATCH_ACCOUNTS = 100
NAIVE_SAMPLE = 1_000
TARGET_FULL_S = 0.250
TARGET_BATCH_S = 0.002
CHAINS = [("eth", 900.0), ("arb", 3_600.0), ("base", 60.0), ("gnosis", 12.0)]
PRICES = {"ETH": 3000.0, "USDC": 1.0, "BTC": 60000.0}
VOLATILITY = {"ETH": 0.8, "USDC": 0.02, "BTC": 0.6}
FLOORS = (("ETH", 0.6), ("BTC", 0.5), ("USDC", 0.02))
NOW = 1_750_000_000
SEED = 20_261_205
TOKEN_KINDS = [  # per chain: (token, asset, role, decimals)
    ("eth", "ETH", Role.COLLATERAL, 18),
    ("usdc", "USDC", Role.COLLATERAL, 6),
    ("btc", "BTC", Role.COLLATERAL, 8),
    ("dusdc", "USDC", Role.LIABILITY, 6),
]
PARAMS = PortfolioParams(
    groups=(
        RiskGroup(name="ETH", assets=("ETH",), scan_range=0.15),
        RiskGroup(name="USD", assets=("USDC",), scan_range=0.03),
    ),
    default_scan_range=0.12,
    correlations=(("ETH", "BTC", 0.8),),
    volatility_floors=FLOORS,
)


def tokens() -> list[TokenRisk]:
    """The 16 tokens of the synthetic book."""
    return [
        TokenRisk(
            chain=c,
            token=f"{t}-{c}",
            asset=a,
            role=r,
            weight=0.8 if r is Role.COLLATERAL else 1.0,
            decimals=d,
        )
        for c, _ in CHAINS
        for t, a, r, d in TOKEN_KINDS
    ]


EXPIRY_DAYS = (1, 2, 7, 14, 21, 30, 60, 90)
STRIKE_STEPS = tuple(range(-6, 7))  # × 5 %


def listed(asset: str, rng: random.Random) -> tuple[float, int, float]:
    """(strike, expiry, implied vol) of a listed contract: a smile around the money."""
    moneyness = 1 + 0.05 * rng.choice(STRIKE_STEPS)
    days = rng.choice(EXPIRY_DAYS)
    base = 0.7 if asset == "ETH" else 0.55
    strike = round(PRICES[asset] * moneyness, 2)
    return strike, NOW + days * 86_400, base + 0.8 * (moneyness - 1) ** 2


def unique(asset: str, rng: random.Random) -> tuple[float, int, float]:
    """(strike, expiry, implied vol) of a line of its own."""
    strike = round(PRICES[asset] * rng.uniform(0.7, 1.3), 2)
    return strike, NOW + rng.randrange(86_400, 90 * 86_400), rng.uniform(0.4, 1.2)


def book(
    n: int, rng: random.Random, *, unique_options: bool = False
) -> tuple[list[list[tuple[TokenRisk, int]]], list[list[OptionPosition]]]:
    """Per account its 8 (token, raw) holdings and 2 options."""
    contract = unique if unique_options else listed
    toks = tokens()
    holdings, options = [], []
    for i in range(n):
        account = f"0x{i:040x}"
        picked = rng.sample(toks, HOLDINGS_PER_ACCOUNT)
        rows = []
        for tok in picked:
            usd = rng.uniform(100, 20_000) if tok.role is Role.COLLATERAL else rng.uniform(0, 9_000)
            rows.append((tok, int(usd / PRICES[tok.asset] * 10 ** (tok.decimals or 0))))
        holdings.append(rows)
        lines = []
        for _ in range(OPTIONS_PER_ACCOUNT):
            asset = rng.choice(["ETH", "BTC"])
            strike, expiry, vol = contract(asset, rng)
            line = OptionPosition(
                account=account,
                asset=asset,
                chain=rng.choice(CHAINS)[0],
                size=rng.choice([-1, 1]) * rng.uniform(0.1, 3) * (3000 / PRICES[asset]),
                right=rng.choice(list(Right)),
                strike=strike,
                expiry=expiry,
                implied_vol=vol,
            )
            if any(o.key == line.key for o in lines):
                continue  # one line per contract and chain
            lines.append(line)
        options.append(lines)
    return holdings, options


def build(
    model: MarginModel,
    holdings: list[list[tuple[TokenRisk, int]]],
    options: list[list[OptionPosition]],
) -> MarginEngine:
    engine = MarginEngine(
        tokens=tokens(),
        chains=[ChainInput(name=c, liquidation_latency_s=s) for c, s in CHAINS],
        params=EngineParams(model=model),
        portfolio=PARAMS,
        now=NOW,
    )
    engine.set_prices(
        PriceInput(asset=a, price=p, volatility=VOLATILITY[a]) for a, p in PRICES.items()
    )
    by_token: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
    for i, rows in enumerate(holdings):
        for tok, raw in rows:
            accounts, raws = by_token.setdefault(tok.key, ([], []))
            accounts.append(f"0x{i:040x}")
            raws.append(raw)
    for (chain, token), (accounts, raws) in by_token.items():
        engine.load_balances(chain, token, accounts, raws, 1)
    for i, lines in enumerate(options):
        engine.set_options(f"0x{i:040x}", lines)
    return engine


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def incremental(
    engine: MarginEngine,
    holdings: list[list[tuple[TokenRisk, int]]],
    rng: random.Random,
    bump: int = 0,
) -> list[float]:
    """Seconds of ``INCREMENTAL_BATCHES`` recomputes of 100 changed accounts (balances set to
    ``raw + bump + batch + 1``: a different ``bump`` per call keeps every change a change)."""
    out = []
    n = len(holdings)
    for batch in range(INCREMENTAL_BATCHES):
        for i in rng.sample(range(n), BATCH_ACCOUNTS):
            tok, raw = rng.choice(holdings[i])
            engine.set_balance(f"0x{i:040x}", tok.chain, tok.token, raw + bump + batch + 1, 2)
        started = time.perf_counter()
        done = engine.recompute_dirty()
        out.append(time.perf_counter() - started)
        assert len(done) == BATCH_ACCOUNTS
    return out


def naive(
    holdings: list[list[tuple[TokenRisk, int]]],
    options: list[list[OptionPosition]],
    sample: list[int],
) -> tuple[float, list[float]]:
    """Seconds per account of the pure-Python implementation, and its M for ``sample``."""
    setup = oracle.Setup(
        groups={g.name: (list(g.assets), g.scan_range) for g in PARAMS.groups},
        default_scan_range=PARAMS.default_scan_range,
        correlations={(a, b): rho for a, b, rho in PARAMS.correlations},
        prices=dict(PRICES),
        volatility=dict(VOLATILITY),
        floors=dict(FLOORS),
        latency=dict(CHAINS),
        now=NOW,
    )
    answers = []
    started = time.perf_counter()
    for i in sample:
        account = oracle.Book(
            holdings=[
                (
                    tok.asset,
                    tok.chain,
                    (1 if tok.role is Role.COLLATERAL else -1)
                    * raw
                    / 10 ** (tok.decimals or 0)
                    * PRICES[tok.asset],
                )
                for tok, raw in holdings[i]
            ],
            options=[
                (o.asset, o.chain, o.size, o.right.value, o.strike, float(o.expiry), o.implied_vol)
                for o in options[i]
            ],
        )
        answers.append(oracle.evaluate(setup, account).maintenance)
    return (time.perf_counter() - started) / len(sample), answers


def load_baseline(path: str) -> Callable[..., object]:
    """``evaluate_portfolio`` of the ``margin/portfolio.py`` at ``path``."""
    name = "baseline_portfolio"
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module.evaluate_portfolio  # type: ignore[no-any-return]


def use_kernel(engine: MarginEngine, evaluate: Callable[..., object]) -> None:
    """Plug ``evaluate`` into the engine's portfolio kernel; its market's unit cache is
    emptied (versions may cache different columns)."""
    kernel.evaluate_portfolio = evaluate  # type: ignore[assignment]
    engine._vectors.market.units.clear()  # a bench swapping kernels


def paired(
    engine: MarginEngine,
    holdings: list[list[tuple[TokenRisk, int]]],
    baseline: Callable[..., object],
) -> None:
    """Full recomputes alternating new/baseline after the same moves, then 100-changed
    batches with each; both kernels' results compared bit for bit."""
    current = kernel.evaluate_portfolio
    runs: dict[str, list[float]] = {"new": [], "baseline": []}
    tables = {}
    for k in range(FULL_RUNS):
        factor = 1 + 0.002 * (k + 1)
        for label, fn in (("new", current), ("baseline", baseline)):
            use_kernel(engine, fn)
            engine.set_prices(
                PriceInput(asset=a, price=p * factor, volatility=VOLATILITY[a])
                for a, p in PRICES.items()
            )
            started = time.perf_counter()
            table = engine.recompute_all()
            runs[label].append(time.perf_counter() - started)
            tables[label] = table.select(slice(None))
        for name, column in tables["new"].columns().items():
            assert np.array_equal(column, tables["baseline"].columns()[name], equal_nan=True), name
    batches = {}
    for bump, (label, fn) in enumerate((("baseline", baseline), ("new", current)), start=1):
        use_kernel(engine, fn)
        engine.recompute_all()
        batches[label] = incremental(engine, holdings, random.Random(SEED + 3), 1_000 * bump)
    use_kernel(engine, current)
    engine.set_prices(
        PriceInput(asset=a, price=p, volatility=VOLATILITY[a]) for a, p in PRICES.items()
    )
    new_ms, old_ms = (statistics.median(runs[k]) * 1e3 for k in ("new", "baseline"))
    print(
        f"paired full recompute after a move (median of {FULL_RUNS} each, alternating): "
        f"new {new_ms:.1f} ms, baseline {old_ms:.1f} ms, baseline ÷ new {old_ms / new_ms:.2f}×"
    )
    print(f"   new      {[round(x * 1e3, 1) for x in runs['new']]}")
    print(f"   baseline {[round(x * 1e3, 1) for x in runs['baseline']]}")
    for label in ("new", "baseline"):
        b = batches[label]
        print(
            f"paired 100 changed accounts, {label:8s}: median {statistics.median(b) * 1e3:.3f} "
            f"ms, p90 {np.percentile(b, 90) * 1e3:.3f} ms"
        )
    print("results of both kernels equal bit for bit after every move")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--unique-options", action="store_true")
    parser.add_argument(
        "--baseline", metavar="FILE", help="another margin/portfolio.py to time against, paired"
    )
    args = parser.parse_args()
    n = args.accounts
    rng = random.Random(SEED)
    holdings, options = book(n, rng, unique_options=args.unique_options)
    lines = sum(len(o) for o in options)
    print(f"{n:,} accounts × {HOLDINGS_PER_ACCOUNT} holdings, {lines:,} option lines")
    results = {}
    for model in (MarginModel.PORTFOLIO, MarginModel.WEIGHTED):
        started = time.perf_counter()
        engine = build(model, holdings, options)
        load_s = time.perf_counter() - started
        engine.recompute_all()
        moves = iter([1 + 0.001 * k for k in range(1, 2 * FULL_RUNS + 2)])

        def after_a_move(engine: MarginEngine = engine, moves: Iterator[float] = moves) -> None:
            # every ETH and BTC option is revalued: a full pass after a market-wide move
            factor = next(moves)
            engine.set_prices(
                PriceInput(asset=a, price=p * factor, volatility=VOLATILITY[a])
                for a, p in PRICES.items()
            )
            engine.recompute_all()

        full = timed(after_a_move, FULL_RUNS)
        engine.set_prices(
            PriceInput(asset=a, price=p, volatility=VOLATILITY[a]) for a, p in PRICES.items()
        )
        engine.recompute_all()
        batches = incremental(engine, holdings, random.Random(SEED + 1))
        results[model] = (engine, statistics.median(full), batches)
        full_ms, min_ms = statistics.median(full) * 1e3, min(full) * 1e3
        batch_ms, p90_ms = statistics.median(batches) * 1e3, np.percentile(batches, 90) * 1e3
        print(
            f"{model.value:9s} load {load_s:6.2f} s  full recompute after a move: median "
            f"{full_ms:8.1f} ms (min {min_ms:.1f})  100 changed accounts: median "
            f"{batch_ms:.3f} ms, p90 {p90_ms:.3f} ms"
        )
    engine, full_s, batches = results[MarginModel.PORTFOLIO]
    sample = random.Random(SEED + 2).sample(range(n), min(NAIVE_SAMPLE, n))
    per_account, answers = naive(holdings, options, sample)
    engine.recompute_all()
    table = engine.results
    got = [table.maintenance[engine.account_index(f"0x{i:040x}")] / 100 for i in sample]
    worst = max(abs(a - b) for a, b in zip(got, answers, strict=True))
    naive_s = per_account * n
    weighted_s = results[MarginModel.WEIGHTED][1]
    print(
        f"pure-Python loop: {per_account * 1e6:.0f} µs/account → {naive_s:.1f} s for {n:,} "
        f"(sample of {len(sample):,})"
    )
    print(
        f"engine ÷ loop: {naive_s / full_s:.0f}×   portfolio ÷ weighted: {full_s / weighted_s:.1f}×"
    )
    print(f"largest |M_engine − M_loop| on the sample: {worst:.4f} USD")
    full_ok = "met" if full_s <= TARGET_FULL_S else "MISSED"
    batch_ok = "met" if statistics.median(batches) <= TARGET_BATCH_S else "MISSED"
    print(
        f"targets: full ≤ {TARGET_FULL_S * 1e3:.0f} ms {full_ok}; "
        f"100 changed ≤ {TARGET_BATCH_S * 1e3:.0f} ms {batch_ok}"
    )
    if args.baseline:  # last: its batches move balances further from the loop's sample
        paired(engine, holdings, load_baseline(args.baseline))


if __name__ == "__main__":
    main()
