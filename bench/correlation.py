"""What ``correlation_source: ewma`` adds to every oracle round, by number of risk groups.

    uv run python bench/correlation.py                     # 10, 30 and 60 groups
    uv run python bench/correlation.py --groups 10 30 60 --seconds 1.0

Per round, with G groups (one asset each, G·(G−1)/2 pairs):
- **estimator**: ``CorrelationEstimator.update`` over the round's prices, then ``estimates``
  and ``correlations`` (what the service, the metrics and the engine loop read);
- **engine, ρ changed**: ``MarginEngine.set_correlations`` with every pair moved (a pair takes a
  return once per ``correlation_sample_s``, so at most once a minute by default): the new
  portfolio parameters and the market vectors rebuilt, no accounts;
- **engine, ρ unchanged**: the same call when nothing moved (every other round);
- **correlation matrix**: ``margin.scenarios.correlation_matrix`` (run on every market rebuild,
  i.e. every price change) against the per-entry ``PortfolioParams.correlation`` lookup it
  replaced, measured in the same run, alternating: with every pair listed that lookup made each
  rebuild O(G⁴).

Medians of alternating timed batches; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.domain import Role
from margin.engine import MarginEngine
from margin.model import ChainInput, EngineParams, MarginModel, PriceInput, TokenRisk
from margin.normal import FloatArray
from margin.scenarios import PortfolioParams, correlation_matrix
from oracles.correlation import CorrelationEstimator, PairSpec

T0 = 1_800_000_000.0
BATCHES = 7


def per_entry_matrix(params: PortfolioParams, groups: list[str]) -> FloatArray:
    """The matrix as it was built before: one ``PortfolioParams.correlation`` per entry."""
    n = len(groups)
    out = np.ones((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = params.correlation(groups[i], groups[j])
    return out


def timed(run: Callable[[], object], seconds: float) -> float:
    """Seconds per call over a batch of about ``seconds``."""
    start, calls = time.perf_counter(), 0
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def measure(g: int, seconds: float) -> dict[str, float]:
    groups = [f"A{i:02d}" for i in range(g)]
    pairs = [
        PairSpec(groups=(a, b), assets=(a, b), static=0.5)
        for a, b in itertools.combinations(groups, 2)
    ]
    estimator = CorrelationEstimator(pairs=pairs, warmup_returns=5, sample_s=0)
    rng = np.random.default_rng(1)
    walk = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, (10_000, g)), axis=0))
    step = itertools.count()

    def round_() -> None:
        i = next(step)
        estimator.update(
            {a: float(p) for a, p in zip(groups, walk[i % len(walk)], strict=True)}, T0 + 5 * i
        )
        estimator.estimates()
        estimator.correlations()

    engine = MarginEngine(
        tokens=[
            TokenRisk(chain="c", token=a, asset=a, role=Role.COLLATERAL, weight=0.8, decimals=6)
            for a in groups
        ],
        chains=[ChainInput(name="c", liquidation_latency_s=60.0)],
        params=EngineParams(model=MarginModel.PORTFOLIO),
        portfolio=PortfolioParams(),
    )
    engine.set_prices(PriceInput(asset=a, price=100.0) for a in groups)
    flip = itertools.cycle([0.3, 0.7])

    def changed() -> None:
        rho = next(flip)
        engine.set_correlations({spec.groups: rho for spec in pairs})

    same = {spec.groups: 0.3 for spec in pairs}
    engine.set_correlations(same)
    listed = engine.portfolio
    out: dict[str, list[float]] = {k: [] for k in ("estimator", "changed", "same", "new", "old")}
    for _ in range(BATCHES):  # alternating, so a burst of load hits every figure alike
        out["estimator"].append(timed(round_, seconds))
        out["changed"].append(timed(changed, seconds))
        engine.set_correlations(same)
        out["same"].append(timed(lambda: engine.set_correlations(same), seconds))
        out["new"].append(timed(lambda: correlation_matrix(listed, groups), seconds))
        out["old"].append(timed(lambda: per_entry_matrix(listed, groups), seconds))
    assert np.array_equal(correlation_matrix(listed, groups), per_entry_matrix(listed, groups))
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[10, 30, 60])
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one timed batch")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'groups':>6} {'pairs':>6} {'estimator/round':>16} {'set ρ changed':>14} "
        f"{'set ρ same':>11} {'matrix':>10} {'per-entry matrix':>17}"
    )
    for g in args.groups:
        m = measure(g, args.seconds)

        def ms(x: float) -> str:
            return f"{x * 1e3:.3f} ms" if x >= 1e-4 else f"{x * 1e6:.1f} µs"

        print(
            f"{g:>6} {math.comb(g, 2):>6} {ms(m['estimator']):>16} {ms(m['changed']):>14} "
            f"{ms(m['same']):>11} {ms(m['new']):>10} {ms(m['old']):>17}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
