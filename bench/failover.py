"""Failover bench: how long after a replica dies is a price move seen for every account?

    uv run python bench/failover.py                  # 3 replicas, lease_ttl_s 2, 3 trials
    uv run python bench/failover.py --ttl 5 --trials 5

The world of ``tests.cluster.clusterkit``: two Anvil chains (1 s blocks), loopback price
sources, one PostgreSQL database, one Mosquitto, 24 accounts over 6 shards, three real
``crossmargin run`` replicas in cluster mode. Each trial moves ETH so that every account flips
(2,000 → 1,800 on the healthy cluster, then back to 2,000 after the kill) and measures, from
the price change (t0), until every account's stored flags show the move and every resulting
event reached a subscriber:

- (a) healthy cluster: the move alone — the peer figure, measured in the same run;
- (b) failover: SIGKILL of a replica holding shards, then the move at once; its shards are
  taken over when their leases expire (at most ``lease_ttl_s``) and the survivors warm up.

Printed: medians of (a) and (b), (b) − (a) against the TTL (the issue's bound is
``lease_ttl_s`` + one cycle), and takeovers. Correctness (exit 1 otherwise): every event
exactly once over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/failover.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from tests.cluster.clusterkit import (  # noqa: E402 - after the path fix above
    BOOK_ACCOUNTS,
    CALM,
    CRASH,
    Cluster,
    Ledger,
    assert_exactly_once,
    cluster,
    cluster_world,
    deliveries,
)
from tests.daemonkit import World  # noqa: E402
from tests.mqttkit import Subscriber  # noqa: E402

POLL_S = 0.05
TIMEOUT_S = 120.0


async def settled(ledger: Ledger, keeper: Subscriber, prefix: str, crashed: bool) -> bool:
    """Every book account stored in the moved state, and every stored event delivered."""
    liquidatable = await ledger.liquidatable_accounts()
    book = set(BOOK_ACCOUNTS)
    stored = book <= liquidatable if crashed else not (book & liquidatable)
    if not stored:
        return False
    expected = await ledger.expected()
    return set(expected) <= set(deliveries(keeper, prefix))


async def time_move(
    w: World, ledger: Ledger, keeper: Subscriber, crashed: bool, before: float | None = None
) -> float:
    """Move ETH and return seconds until ``settled`` (from ``before`` when given)."""
    started = time.perf_counter() if before is None else before
    w.set_eth(CRASH if crashed else CALM)
    while not await settled(ledger, keeper, w.prefix, crashed):
        if time.perf_counter() - started > TIMEOUT_S:
            raise AssertionError(f"move not settled within {TIMEOUT_S} s")
        await asyncio.sleep(POLL_S)
    return time.perf_counter() - started


async def trial(
    c: Cluster, w: World, ledger: Ledger, keeper: Subscriber, n: int
) -> tuple[float, float]:
    """One healthy move (the crash) and one move right after a SIGKILL (the rebound); both in
    seconds."""
    del n
    healthy = await time_move(w, ledger, keeper, crashed=True)
    owners = await c.wait_balanced(c.replicas)
    victim = next(r for r in c.replicas if owners.get(r.name))
    t0 = time.perf_counter()
    await victim.kill()
    failover = await time_move(w, ledger, keeper, crashed=False, before=t0)
    await victim.start()
    await c.wait_balanced(c.replicas)
    return healthy, failover


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="crossmargin-failover-") as directory:
        async with (
            cluster_world(Path(directory)) as w,
            Subscriber(w.broker.port, f"{w.prefix}/events/#") as keeper,
            Ledger(w.database_url) as ledger,
            cluster(w, 3, ttl_s=args.ttl) as c,
        ):
            await c.start_all()
            results = [await trial(c, w, ledger, keeper, n) for n in range(args.trials)]
            takeovers = sum(
                [await r.metric("crossmargin_cluster_takeovers_total") for r in c.replicas]
            )
            events = await assert_exactly_once(ledger, keeper, w.prefix)
    healthy = statistics.median(h for h, _ in results)
    failover = statistics.median(f for _, f in results)
    print(f"replicas 3, shards 6, accounts {len(BOOK_ACCOUNTS)}, lease_ttl_s {args.ttl}")
    print(f"trials (healthy s, failover s): {[(round(h, 2), round(f, 2)) for h, f in results]}")
    print(f"(a) healthy cluster, move → stored and published: median {healthy:.2f} s")
    print(f"(b) SIGKILL + move → stored and published:       median {failover:.2f} s")
    print(
        f"(b) − (a) = {failover - healthy:.2f} s = {(failover - healthy) / args.ttl:.2f} × "
        f"lease_ttl_s (bound: 1 × TTL + one cycle); (b) ÷ (a) = {failover / healthy:.1f}×"
    )
    print(
        f"takeovers counted (survivors, current runs) {takeovers:.0f}; events {events}, each once"
    )
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttl", type=float, default=2.0, help="cluster.lease_ttl_s")
    parser.add_argument("--trials", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
