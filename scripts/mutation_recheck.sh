#!/usr/bin/env bash
# Re-judge mutants with tests written after a `make mutate` run, the way mutmut runs them:
#
#     bash scripts/mutation_recheck.sh LIST_FILE tests/margin/test_option_lines.py [...]
#
# LIST_FILE holds one mutant name a line (`uv run mutmut results`). Works for methods too
# (unlike scripts/mutant_check.sh, which patches the source): the given test files are copied
# into mutants/, a control run without a mutant must pass, then each mutant is switched on
# through MUTANT_UNDER_TEST (mutmut's own trampolines) and the tests run on it. Prints KILLED
# or SURVIVED per mutant. Code that runs at import (module-level tables) is not reached this
# way, as in mutmut's own run: use scripts/mutant_check.sh for it.
set -uo pipefail
cd "$(dirname "$0")/.."
list=$1
shift
[ -d mutants ] || { echo "no mutants/: run make mutate first" >&2; exit 2; }
for t in "$@"; do cp "$t" "mutants/$t"; done
cd mutants
run() {
    MUTANT_UNDER_TEST="$1" CROSSMARGIN_MUTATION=1 nice -n 19 ../.venv/bin/python -m pytest \
        -q -x -p no:cacheprovider "${@:2}" >/dev/null 2>&1
}
if ! run "" "$@"; then
    echo "the tests fail without any mutant: fix them first" >&2
    exit 2
fi
while read -r name; do
    [ -z "$name" ] && continue
    if run "$name" "$@"; then echo "SURVIVED $name"; else echo "KILLED $name"; fi
done <"$list"
