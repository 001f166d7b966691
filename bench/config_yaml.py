"""Cost of the checked YAML loading (``daemon.config.yaml_reader``) against plain PyYAML.

    uv run python bench/config_yaml.py              # 100,000 accounts, 5 rounds

For each document and loader: ``parse_yaml`` (event-driven composer with the limits, then the
loader's constructor) against ``yaml.load`` with the same loader class (PyYAML's own composer,
no limits). Documents: the compose config of ``deploy/`` (small, realistic), a config listing
``--accounts`` accounts (the largest a deployment writes), and a 342-byte billion laughs (refused
by ``parse_yaml``; plain PyYAML is not run on it: it takes minutes and gigabytes). Median wall
time of ``--rounds`` rounds; peak Python memory (tracemalloc) of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.errors import ConfigError
from daemon.config.yaml_reader import LOADERS, parse_yaml

ROOT = Path(__file__).resolve().parent.parent


def accounts_document(count: int) -> str:
    """A config-shaped document listing ``count`` accounts."""
    head = (ROOT / "deploy" / "config.compose.yaml").read_text()
    return (
        head
        + "\n# listed accounts\nlisted:\n"
        + "".join(f'  - "0x{i:040x}"\n' for i in range(count))
    )


def billion_laughs() -> str:
    """9 levels of 9 aliases: 342 bytes expanding to 9⁹ (387 million) strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def measure(run: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """(median seconds, peak MiB of one traced run)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def refused(text: str, loader: Any) -> Callable[[], None]:
    def run() -> None:
        try:
            parse_yaml(text, loader)
        except ConfigError:
            return
        raise AssertionError("not refused")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    documents = {
        "deploy/config.compose.yaml": (ROOT / "deploy" / "config.compose.yaml").read_text(),
        f"{args.accounts:,} accounts": accounts_document(args.accounts),
    }
    print(
        "| document | bytes | loader | parse_yaml | yaml.load | ratio | peak MiB (ours / plain) |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, text in documents.items():
        for loader in LOADERS:
            ours, ours_mib = measure(lambda: parse_yaml(text, loader), args.rounds)  # noqa: B023
            plain, plain_mib = measure(lambda: yaml.load(text, loader), args.rounds)  # noqa: B023
            print(
                f"| {name} | {len(text.encode()):,} | {loader.__name__} | {ours * 1e3:,.1f} ms "
                f"| {plain * 1e3:,.1f} ms | {ours / plain:.2f} | {ours_mib:.1f} / {plain_mib:.1f} |"
            )
    laughs = billion_laughs()
    for loader in LOADERS:
        seconds, mib = measure(refused(laughs, loader), args.rounds)
        print(
            f"| billion laughs (refused) | {len(laughs):,} | {loader.__name__} "
            f"| {seconds * 1e3:.2f} ms | — | — | {mib:.2f} / — |"
        )


if __name__ == "__main__":
    main()
