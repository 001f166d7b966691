"""Where a daemon's memory goes per (account, token) holding (issue 12).

    uv run python bench/memory.py                          # 50,000 and 100,000 accounts
    uv run python bench/memory.py --sizes 100000 200000 --trace
    uv run python bench/memory.py --tree /tmp/old          # the same, for another checkout

For each size, ``bench/crash.py``'s world (one Anvil, WETH and USDC balances for every account,
PostgreSQL, a private Mosquitto) and the real daemon (``crossmargin run``): once it is ready and
its start-up work is over, its resident memory (``VmRSS``, ``VmHWM``). The per-holding cost is
the slope between two sizes (what each extra holding costs, the fixed part of the process
apart). ``--trace`` runs the daemon under ``tracemalloc`` (much slower, and its RSS is not the
plain daemon's) and prints the allocation sites that grew most between the two sizes, per
holding. ``--tree`` runs another checkout's daemon (its ``daemon.cli``, with this environment)
for paired old/new figures in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.crash import API_TOKEN, daemon_config, settle, start_daemon, world  # noqa: E402
from bench.e2e import database  # noqa: E402
from bench.scale import rss_mb, write_config  # noqa: E402
from tests.daemonkit import DaemonProcess  # noqa: E402
from tests.mqttkit import Mosquitto  # noqa: E402
from tests.pricekit import free_port  # noqa: E402

TOKENS = 2
TRACE_FRAMES = 1
TOP_SITES = 25
DUMP_WAIT_S = 300.0
QUIET_S = 3.0  # retained state is all published when, over this long, ...
QUIET_MESSAGES = 200  # ... fewer messages than this were acknowledged (oracle, chain status)
PUBLISHED = "crossmargin_mqtt_published_total"

# The child mode: the daemon under tracemalloc, dumping a snapshot when a file appears.
CHILD = """
import sys, threading, time, tracemalloc
from pathlib import Path
trigger, out = Path(sys.argv[1]), Path(sys.argv[2])
def dump():
    while not trigger.exists():
        time.sleep(0.2)
    tracemalloc.take_snapshot().dump(str(out))
threading.Thread(target=dump, daemon=True).start()
from daemon.cli import main
sys.exit(main(sys.argv[3:]))
"""


class MeasuredDaemon(DaemonProcess):
    """``crossmargin run`` from ``tree``, optionally under tracemalloc (dump on ``trigger``)."""

    def __init__(
        self, config: Path, log: Path, tree: Path, trace: tuple[Path, Path] | None
    ) -> None:
        super().__init__(config, log)
        self.tree = tree
        self.trace = trace

    async def start(self) -> None:
        run = ("run", "-c", str(self.config_path), "--migrate")
        if self.trace is None:
            argv = (sys.executable, "-m", "daemon.cli", *run)
        else:
            trigger, out = self.trace
            argv = (sys.executable, f"-Xtracemalloc={TRACE_FRAMES}", "-c", CHILD,
                    str(trigger), str(out), *run)  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(self.tree)}
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.tree, stdout=log, stderr=log, env=env
            )


async def measure(
    accounts: int, tree: Path, trace: bool, workdir: Path
) -> tuple[float, float, float, Path | None]:
    """(seconds to ready, RSS after start-up MB, peak MB, tracemalloc dump or None)."""
    async with (
        world(accounts) as w,
        database("postgres", workdir) as url,
        Mosquitto(workdir) as broker,
    ):
        port = free_port()
        base = daemon_config(w, database_url=url, broker=broker, prefix="xm-mem", port=port)
        config = workdir / f"config-{accounts}.yaml"
        write_config(config, base, w.accounts, workdir / f"accounts-{accounts}.txt")
        log = workdir / f"daemon-{accounts}.log"
        dump = workdir / f"trace-{accounts}.bin" if trace else None
        trigger = workdir / f"trigger-{accounts}"
        daemon = MeasuredDaemon(config, log, tree, (trigger, dump) if dump else None)
        try:
            started, ready_s = await start_daemon(daemon, f"http://127.0.0.1:{port}")
            await settle(log, started)
            await retained_published(f"http://127.0.0.1:{port}", accounts)
            assert daemon.proc is not None
            rss, peak = rss_mb(daemon.proc.pid)
            if dump is not None:
                trigger.touch()
                await _written(dump)
        finally:
            if daemon.proc is not None and daemon.proc.returncode is None:
                await daemon.stop(120.0)
    return ready_s, rss, peak, dump


async def retained_published(api: str, accounts: int) -> None:
    """Until the broker acknowledged a retained state per account and then no more than the
    oracle's and chains' statuses for ``QUIET_S`` (the measure is then of the daemon at rest,
    not of state in flight)."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    counts: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(int(DUMP_WAIT_S / 0.5)):
            async with session.get(f"{api}/metrics") as response:
                text = await response.text()
            lines = [line for line in text.splitlines() if line.startswith(PUBLISHED)]
            counts.append(float(lines[0].split()[-1]) if lines else 0.0)
            window = counts[-int(QUIET_S / 0.5) - 1 :]
            full = len(window) > QUIET_S / 0.5 and window[0] >= accounts
            if full and window[-1] - window[0] < QUIET_MESSAGES:
                return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"retained state not published after {DUMP_WAIT_S:.0f}s ({counts[-1]:.0f})")


async def _written(path: Path) -> None:
    """Until the child's dump exists and stopped growing for a second."""
    size = -1
    for _ in range(int(DUMP_WAIT_S)):
        now = path.stat().st_size if path.exists() else -1  # noqa: ASYNC240 - a stat a second
        if now > 0 and now == size:
            return
        size = now
        await asyncio.sleep(1.0)
    raise RuntimeError(f"no tracemalloc dump at {path} after {DUMP_WAIT_S:.0f}s")


def sites(small: Path, large: Path, extra_holdings: int) -> None:
    """The allocation sites that grew most from ``small`` to ``large``, bytes per holding."""
    diff = tracemalloc.Snapshot.load(str(large)).compare_to(
        tracemalloc.Snapshot.load(str(small)), "lineno"
    )
    total = sum(d.size_diff for d in diff)
    print(f"\ntraced growth: {total / extra_holdings:,.0f} B per holding; top sites:")
    for d in diff[:TOP_SITES]:
        frame = d.traceback[0]
        name = frame.filename
        if name.startswith(str(ROOT)):
            name = os.path.relpath(name, ROOT)
        per = d.size_diff / extra_holdings
        print(f"  {per:8,.0f} B  {d.count_diff:+9,d}  {name}:{frame.lineno}")


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    tree: Path = args.tree
    figures = []
    for n in args.sizes:
        ready_s, rss, peak, dump = await measure(n, tree, args.trace, workdir)
        figures.append((n, rss, peak, dump))
        print(f"{n:>9,} accounts: ready {ready_s:6.1f} s, RSS {rss:7,.0f} MB, peak {peak:7,.0f} MB")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    (n0, rss0, peak0, dump0), (n1, rss1, peak1, dump1) = figures[0], figures[-1]
    extra = (n1 - n0) * TOKENS
    print(f"tree {tree}; load {load}")
    print(
        f"per holding ({n0:,} → {n1:,} accounts × {TOKENS} tokens): "
        f"RSS {(rss1 - rss0) * 2**20 / extra:,.0f} B, peak {(peak1 - peak0) * 2**20 / extra:,.0f} B"
    )
    if dump0 is not None and dump1 is not None:
        sites(dump0, dump1, extra)
    print(f"work dir {workdir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000])
    parser.add_argument("--trace", action="store_true", help="tracemalloc sites (slow)")
    parser.add_argument(
        "--tree", type=lambda p: Path(p).resolve(), default=ROOT, help="checkout whose daemon runs"
    )
    args = parser.parse_args(argv)
    if len(args.sizes) < 2:
        parser.error("--sizes needs two sizes at least")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
