"""Chaos storm: the real daemon under reorgs, SIGKILLs, database and broker cuts (issue 8).

    uv run python bench/chaos.py --quick                 # a few of each, ~2 minutes
    uv run python bench/chaos.py                         # 100 reorgs, 50 kills, 20 + 20 cuts
    uv run python bench/chaos.py --reorgs 100 --kills 50 --db-cuts 20 --broker-cuts 20 --seed 8

The world (``tests.daemonkit``): two Anvil chains with 1 s blocks, loopback ETH and USDC price
sources, a fresh PostgreSQL database and a private Mosquitto; the daemon (``crossmargin run``
in a subprocess, restarted like an init system would) reaches the database and the broker
through TCP proxies (``tests.tcpproxy``) that the storm cuts. A few dozen accounts hold WETH on
l1 and owe dUSDC on l2; price moves, WETH transfers and debt changes push them across the
liquidation threshold during the storm (``bench/chaos_book.py``).

After every fault the storm waits for a settled point and checks the daemon against a ground
truth computed outside it: the exact oracle of ``tests/margin_oracle.py`` on balances the
bench reads itself at the daemon's blocks (``bench/chaos_settle.py``). At the end every stored
transition and every event a subscriber received is judged (``bench/chaos_ledger.py``): per
storm type and in total, faults injected, transitions expected, stored, published, lost,
duplicated, false events, at-least-once re-sends and seconds of unavailability.

Exit code 0 when nothing was lost, duplicated or false, every episode settled, no daemon
exited on its own while its database was up, and the final SIGTERM stop was clean; 1
otherwise (the report says which). Not part of ``make test``: it is a bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/chaos.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from bench.chaos_daemon import Exit  # noqa: E402
from bench.chaos_ledger import KINDS, Judgement, Tally, deliveries, judge  # noqa: E402
from bench.chaos_probe import Prober  # noqa: E402
from bench.chaos_storm import Storm, StormParams  # noqa: E402
from bench.chaos_world import storm_world  # noqa: E402

QUICK = {
    "reorgs": 6,
    "kills": 5,
    "db_cuts": 2,
    "broker_cuts": 2,
    "overlap_kills": 1,
    "accounts": 12,
    "cut_max_s": 6.0,
    "settle_timeout_s": 60.0,
}
START_ETH = Decimal(2000)
REASONS_SHOWN = 4  # per storm type, the reasons for unavailability that cost the most


def parse_args(argv: list[str] | None = None) -> tuple[StormParams, argparse.Namespace]:
    """Storm parameters from the command line (``--quick`` presets a short storm)."""
    default = StormParams()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short storm (a few of each)")
    parser.add_argument("--reorgs", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--db-cuts", type=int)
    parser.add_argument("--broker-cuts", type=int)
    parser.add_argument("--overlap-kills", type=int, help="kills made inside outages")
    parser.add_argument("--accounts", type=int)
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--cut-min-s", type=float)
    parser.add_argument("--cut-max-s", type=float)
    parser.add_argument("--settle-timeout-s", type=float)
    parser.add_argument("--max-unsettled", type=int)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args(argv)
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in StormParams.__dataclass_fields__:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    params = StormParams(**{**asdict(default), **values})
    if min(params.reorgs, params.kills, params.db_cuts, params.broker_cuts) < 0:
        parser.error("fault counts must be ≥ 0")
    if params.accounts < 4:
        parser.error("--accounts must be ≥ 4")
    return params, args


def _faults(counter: dict[str, int]) -> str:
    return ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(counter.items())) or "-"


def _row(name: str, t: Tally) -> str:
    return (
        f"| {name} | {sum(t.faults.values())} ({_faults(t.faults)}) | {t.expected} | {t.stored} "
        f"| {t.published} | {t.lost} | {t.duplicated} | {t.false_events} | {t.resends} "
        f"| {t.unavailable_s:.1f} | {t.not_ready_s:.1f} |"
    )


def report(
    judgement: Judgement,
    storm: Storm,
    exits: list[Exit],
    meta: dict[str, Any],
) -> str:
    """The figures as markdown."""
    lines = [
        "| storm | faults injected | transitions expected | stored | published | lost "
        "| duplicated | false events | re-sends | unavailable s | not ready s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        tally = judgement.tallies[kind]
        if tally.episodes:
            lines.append(_row(f"{kind} ({tally.episodes} episodes)", tally))
    lines.append(_row(f"**total** ({judgement.total.episodes} episodes)", judgement.total))
    total = judgement.total
    settles = total.settle_s
    lines += [
        "",
        f"- lost = {total.lost_stored} never stored + {total.lost_published} never published; "
        f"duplicated = {total.duplicated_stored} stored twice + {total.duplicated_payload} "
        f"ids with two payloads; inconsistent transitions: {total.inconsistent}; false "
        f"transitions (to flags the account never had): {total.false_transitions}; stored "
        f"beyond the net change (states true only for a while, e.g. on orphaned blocks): "
        f"{total.transient}",
        f"- settled points: {len(settles)} of {total.episodes} (unsettled: {total.unsettled}); "
        f"time to settle median {statistics.median(settles) if settles else 0:.1f} s, "
        f"max {max(settles, default=0):.1f} s",
        f"- daemon runs: {meta['runs']}; exits on its own: {len(exits)} "
        f"({sum(e.store_down for e in exits)} while its database was cut or stalled); "
        f"final SIGTERM exit code: {storm.stop_code}",
        f"- balances shown with an orphaned block reference at settled points: "
        f"{sum(e.orphan_refs for e in storm.episodes)}",
        f"- seed {meta['seed']}, {meta['accounts']} accounts, {meta['duration_s']:.0f} s, "
        f"nproc {meta['nproc']}, load average (1 min) min {meta['load_min']:.2f} "
        f"mean {meta['load_mean']:.2f} max {meta['load_max']:.2f}",
    ]
    injected = ", ".join(
        f"{kind} {judgement.tallies[kind].fault_s:.0f} s"
        for kind in KINDS
        if judgement.tallies[kind].fault_s
    )
    lines.append(f"- outage time injected (cut or stalled, or daemon dead): {injected or '-'}")
    for kind in KINDS:
        reasons = judgement.tallies[kind].reasons_s
        if reasons:
            top = sorted(reasons.items(), key=lambda item: -item[1])[:REASONS_SHOWN]
            shown = "; ".join(f"{reason} ({seconds:.1f} s)" for reason, seconds in top)
            lines.append(f"- unavailable or not ready during {kind}: {shown}")
    if storm.aborted:
        lines.append(f"- **storm aborted**: {storm.aborted}")
    for kind, examples in sorted(judgement.problems.items()):
        lines.append(f"- {kind}:")
        lines += [f"  - {example}" for example in examples]
    for e in exits:
        lines.append(
            f"- run {e.run} exited {e.code} after {e.life_s:.1f} s"
            f"{' (database down)' if e.store_down else ''}: "
            + e.log_tail.replace("\n", " / ")[-300:]
        )
    return "\n".join(lines)


def failed(judgement: Judgement, storm: Storm, exits: list[Exit]) -> bool:
    """Whether the storm found a defect (or could not judge)."""
    t = judgement.total
    crashed = [e for e in exits if not e.store_down]
    return bool(
        t.lost
        or t.duplicated
        or t.false_events
        or t.false_transitions
        or t.inconsistent
        or t.unsettled
        or crashed
        or storm.aborted
        or storm.stop_code != 0
    )


async def main(argv: list[str] | None = None) -> int:
    """Run the storm, print the report; the exit code says whether it found a defect."""
    params, args = parse_args(argv)
    rng = random.Random(params.seed)
    workdir = Path(tempfile.mkdtemp(prefix="crossmargin-chaos-"))
    began = time.monotonic()
    print(f"chaos storm: {params} work dir {workdir}", flush=True)
    async with storm_world(workdir, params.accounts, params.seed, rng) as sw:
        storm = Storm(sw, params, rng)
        await storm.settler.prepare(START_ETH)
        async with Prober(sw.api, lambda: storm.current) as prober:
            try:
                await storm.run()
            except Exception as exc:  # report what was seen instead of a bare traceback
                storm.aborted = f"storm failed: {exc!r}"
            finally:
                loads = storm.loads
        prober.dump(workdir / "availability.jsonl")
        rows = [dict(r) for r in await sw.store.transitions(0)]
        delivered = deliveries(sw.events.messages, sw.w.prefix)
        judgement = judge(storm.episodes, rows, delivered, storm.truth, prober.availability())
        exits = list(sw.daemon.exits)
        meta = {
            "seed": params.seed,
            "accounts": params.accounts,
            "runs": sw.daemon.runs,
            "duration_s": time.monotonic() - began,
            "nproc": os.cpu_count(),
            "load_min": min(loads),
            "load_mean": statistics.fmean(loads),
            "load_max": max(loads),
            "at": datetime.now(UTC).isoformat(timespec="minutes"),
            "argv": sys.argv[1:] if argv is None else argv,
        }
        await storm.settler.close()
    text = report(judgement, storm, exits, meta)
    print("\n" + text, flush=True)
    if args.json is not None:
        figures = {kind: _figures(judgement.tallies[kind]) for kind in KINDS}
        figures["total"] = _figures(judgement.total)
        args.json.write_text(json.dumps({"meta": meta, "figures": figures}, indent=2))
    bad = failed(judgement, storm, exits)
    if args.keep or bad:
        print(f"work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if bad else 0


def _figures(t: Tally) -> dict[str, Any]:
    return {
        "episodes": t.episodes,
        "faults": dict(t.faults),
        "expected": t.expected,
        "stored": t.stored,
        "published": t.published,
        "lost": t.lost,
        "lost_stored": t.lost_stored,
        "lost_published": t.lost_published,
        "duplicated": t.duplicated,
        "false_events": t.false_events,
        "false_transitions": t.false_transitions,
        "inconsistent": t.inconsistent,
        "transient": t.transient,
        "resends": t.resends,
        "unavailable_s": round(t.unavailable_s, 1),
        "not_ready_s": round(t.not_ready_s, 1),
        "reasons_s": {k: round(v, 1) for k, v in t.reasons_s.items()},
        "fault_s": round(t.fault_s, 1),
        "unsettled": t.unsettled,
    }


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
