"""Change-to-visible latency with a flaky first RPC URL, beside the same run with a healthy one.

    uv run python bench/flaky_rpc.py                          # 50 changes, seeds 1 2 3
    uv run python bench/flaky_rpc.py --changes 30 --seeds 7 --fault-rate 0.5

One local Anvil; per seed, a healthy run (the floor: the same proxy, passing everything) and a
faulty run (``--fault-rate`` of the first URL's requests reset, answered 500, 429 with
``Retry-After: 1``, garbage, or held ``--hang`` seconds), each a real ``ChainWatcher`` +
``RpcPool`` with the daemon's default settings (``tests/chaos/flakykit.py``). A change is one
mint to a fresh account; its latency runs from the block's existence to the watcher's reading of
the new balance. Prints p50/p99/max and missed changes per run and over all seeds; exits 1 when
a change was missed or the faulty p99 is above ``--target``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/flaky_rpc.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from daemon.config.model import ChainConfig  # noqa: E402
from devnet import AnvilNode, DevChain  # noqa: E402
from tests.chaos.flakykit import Faults, Visibility, measure_visibility  # noqa: E402

CHAIN_ID = 1802
DEFAULT_CHANGES = 50
DEFAULT_INTERVAL_S = 0.4
DEFAULT_SEEDS = (1, 2, 3)
DEFAULT_FAULT_RATE = 0.3
DEFAULT_HANG_S = 5.0
DEFAULT_BOUND_S = 30.0  # a change unseen this long after the last one is missed
TARGET_P99_S = 3.0


def _row(label: str, run: Visibility) -> str:
    return (
        f"| {label} | {len(run.latencies_s) + len(run.missed)} | {len(run.missed)} | "
        f"{run.percentile(50):.2f} | {run.percentile(99):.2f} | "
        f"{max(run.latencies_s, default=math.nan):.2f} |"
    )


def _merged(runs: list[Visibility]) -> Visibility:
    merged = Visibility(latencies_s=[], missed=[])
    for run in runs:
        merged.latencies_s += run.latencies_s
        merged.missed += run.missed
        merged.faults.update(run.faults)
    return merged


def _endpoints(run: Visibility) -> str:
    parts = []
    for e in run.endpoints:
        rate = "-" if e.error_rate is None else f"{e.error_rate:.2f}"
        parts.append(
            f"{e.state.value} requests={e.requests} errors={e.errors} hedges={e.hedges} "
            f"error_rate={rate}"
        )
    return "; ".join(parts)


async def main(args: argparse.Namespace) -> int:
    timeout = ChainConfig.model_fields["request_timeout_s"].default
    print(
        f"# flaky_rpc {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.changes} changes "
        f"{args.interval}s apart per run, fault rate {args.fault_rate}, hang {args.hang}s, "
        f"request_timeout_s default {timeout}s, seeds {' '.join(map(str, args.seeds))}"
    )
    healthy: list[Visibility] = []
    faulty: list[Visibility] = []
    async with AnvilNode(chain_id=CHAIN_ID) as node, DevChain(node.url) as dev:
        for seed in args.seeds:
            for label, faults in (
                ("healthy", None),
                ("faulty", Faults(rate=args.fault_rate, seed=seed, hang_s=args.hang)),
            ):
                run = await measure_visibility(
                    dev,
                    changes=args.changes,
                    interval_s=args.interval,
                    bound_s=args.bound,
                    faults=faults,
                    salt=f"{label}-{seed}",
                )
                (healthy if faults is None else faulty).append(run)
                print(f"seed {seed} {label}: {run.summary()}")
                print(f"  endpoints: {_endpoints(run)}")
    print()
    print("| run | changes | missed | p50 s | p99 s | max s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(_row("healthy proxy (floor)", _merged(healthy)))
    total = _merged(faulty)
    print(_row(f"{args.fault_rate:.0%} random faults on the first URL", total))
    met = not total.missed and total.percentile(99) <= args.target
    verdict = "met" if met else "MISSED"
    print(f"\ntarget: faulty p99 <= {args.target}s and 0 missed: {verdict}")
    return 0 if met else 1


def parse_args() -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--changes", type=int, default=DEFAULT_CHANGES)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--fault-rate", type=float, default=DEFAULT_FAULT_RATE)
    parser.add_argument("--hang", type=float, default=DEFAULT_HANG_S)
    parser.add_argument("--bound", type=float, default=DEFAULT_BOUND_S)
    parser.add_argument("--target", type=float, default=TARGET_P99_S)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
