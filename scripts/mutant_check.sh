#!/usr/bin/env bash
# Check one mutmut mutant against chosen tests, without a whole `make mutate` run:
#
#     bash scripts/mutant_check.sh margin.health.x__settle_bucket__mutmut_20 tests/margin/test_oracle_edges.py
#
# Module-level functions only (a method's diff is shown unindented and does not apply).
# Applies the mutant's diff (`mutmut show`, needs a mutants/ from an earlier run) to the source,
# runs pytest on the given arguments, and restores the file however pytest ends. Prints
# KILLED or SURVIVED; exit 0 when killed, 1 when it survived, 3 when the diff does not apply.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
diff=$(mktemp)
backup=$(mktemp)
uv run mutmut show "$name" 2>/dev/null | sed 1d >"$diff"
file=$(awk '/^--- /{print $2; exit}' "$diff")
cp "$file" "$backup"
trap 'cp "$backup" "$file"; rm -f "$diff" "$backup"' EXIT
if ! patch -s -p0 -F3 --no-backup-if-mismatch -r - <"$diff" >/dev/null; then
    echo "NOT APPLIED $name"
    exit 3
fi
if nice -n 19 uv run pytest -q -x -p no:cacheprovider "$@" >/dev/null 2>&1; then
    echo "SURVIVED $name"
    exit 1
fi
echo "KILLED $name"
