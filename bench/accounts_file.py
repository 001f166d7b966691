"""Loading a config whose accounts come from ``accounts_file:`` (one address per line).

    uv run python bench/accounts_file.py              # 1,000,000 accounts, 5 rounds

Measures ``load_config`` of a small config pointing at a file of ``--accounts`` addresses (mixed
case, every 1,000th line a comment, a blank line, or an address with a trailing comment),
against, in the same run: the floor (read the bytes and split them into lines, nothing checked)
and the same addresses listed under ``accounts:`` in the YAML (``--yaml-accounts`` of them,
default 100,000, extrapolated per account: YAML at a million takes ~10 s). Median of
``--rounds``; the target is ≤ 3 s for a million lines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.config.load import load_config

TARGET_S = 3.0
"""Issue 12: a million lines load in ≤ 3 s."""
HEAD = """\
chains:
  - {name: eth, chain_id: 1, rpc_urls: ["http://127.0.0.1:8545"]}
tokens:
  - {chain: eth, address: "0x00000000000000000000000000000000000000aa", asset: ETH,
     role: collateral, weight: 0.8}
"""


def address(i: int) -> str:
    text = f"{i * 2654435761 % 2**160:040x}"
    return "0x" + (text.upper() if i % 2 else text)


def listing(count: int) -> str:
    lines = []
    for i in range(count):
        if i % 1000 == 0:
            lines.append(f"# batch {i // 1000}")
        elif i % 1000 == 500:
            lines.append("")
        if i % 1000 == 250:
            lines.append(f"{address(i)}  # noted")
        else:
            lines.append(address(i))
    return "\n".join(lines) + "\n"


def median_s(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--yaml-accounts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        accounts = folder / "accounts.txt"
        accounts.write_text(listing(args.accounts))
        with_file = folder / "file.yaml"
        with_file.write_text(HEAD + "accounts_file: accounts.txt\n")
        in_yaml = folder / "yaml.yaml"
        in_yaml.write_text(
            HEAD
            + "accounts:\n"
            + "".join(f'  - "{address(i)}"\n' for i in range(args.yaml_accounts))
        )
        loaded = load_config(with_file).accounts
        assert len(loaded) == args.accounts, len(loaded)
        assert loaded[1] == address(1).lower()
        ours = median_s(lambda: load_config(with_file), args.rounds)
        floor = median_s(lambda: accounts.read_bytes().split(b"\n"), args.rounds)
        yaml_s = median_s(lambda: load_config(in_yaml), args.rounds)
        size_mb = accounts.stat().st_size / 1e6
    per_yaml = yaml_s / args.yaml_accounts * args.accounts
    print(f"accounts_file of {args.accounts:,} lines ({size_mb:.1f} MB), median of {args.rounds}:")
    print("| path | seconds | ÷ floor |")
    print("|---|---:|---:|")
    print(f"| load_config with accounts_file | {ours:.3f} | {ours / floor:.1f} |")
    print(f"| floor: read the bytes, split the lines | {floor:.3f} | 1.0 |")
    print(
        f"| the same count under `accounts:` in YAML ({args.yaml_accounts:,} measured, "
        f"scaled) | {per_yaml:.3f} | {per_yaml / floor:.1f} |"
    )
    verdict = "met" if ours <= TARGET_S else "missed"
    print(f"target ≤ {TARGET_S:g} s for {args.accounts:,} lines: {ours:.2f} s, {verdict}")


if __name__ == "__main__":
    main()
