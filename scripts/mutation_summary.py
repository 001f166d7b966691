"""Summarize a mutmut run (``make mutate``): killed / survived per module, and the survivors.

    uv run python scripts/mutation_summary.py            # table per module, then survivors
    uv run python scripts/mutation_summary.py --survivors-only

Reads the ``mutants/**/*.py.meta`` files mutmut writes (exit code per mutant). "killed"
counts mutants the tests failed on (including timeouts: a mutant that hangs is caught);
"no tests" are mutants in functions no selected test calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
TIMEOUTS = {36, 24, -24, 152, 255}


def status(code: int | None) -> str:
    """mutmut's verdict for an exit code (a timeout is a kill: the tests noticed)."""
    if code is None:
        return "not checked"
    if code in TIMEOUTS:
        return "killed"
    return STATUS.get(code, "suspicious")


def main() -> int:
    """Print the table (and the survivors); exit 1 when no results are found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survivors-only", action="store_true")
    args = parser.parse_args()
    metas = sorted((ROOT / "mutants").glob("**/*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    rows: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for meta in metas:
        module = str(meta.relative_to(ROOT / "mutants")).removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = rows.setdefault(module, Counter())
        for name, code in sorted(codes.items()):
            verdict = status(code)
            counts[verdict] += 1
            if verdict == "survived":
                survivors.append(name)
    if not args.survivors_only:
        print("| module | mutants | killed | survived | no tests | killed % |")
        print("|---|---:|---:|---:|---:|---:|")
        totals: dict[str, Counter[str]] = {}
        for module, counts in rows.items():
            if not sum(counts.values()):
                continue
            _row(module, counts)
            top = module.split("/", 1)[0] + "/"
            totals.setdefault(top, Counter()).update(counts)
        for top, counts in totals.items():
            _row(f"**{top} total**", counts)
        print()
    for name in survivors:
        print(name)
    return 0


def _row(name: str, counts: Counter[str]) -> None:
    total = sum(counts.values())
    judged = counts["killed"] + counts["survived"]
    share = f"{100 * counts['killed'] / judged:.1f}" if judged else "-"
    print(
        f"| {name} | {total} | {counts['killed']} | {counts['survived']} | "
        f"{counts['no tests']} | {share} |"
    )


if __name__ == "__main__":
    sys.exit(main())
