"""Judge mutants mutmut has not reached yet with a chosen, fast subset of the tests.

    uv run python scripts/mutation_focus.py "margin.normal.x_cdf*" -- tests/margin/test_x.py

Runs inside ``mutants/`` (after a ``make mutate`` that generated them, finished or stopped):
imports the code once, then per mutant forks, switches the mutant on (``MUTANT_UNDER_TEST``,
mutmut's own trampolines) and runs pytest on the given tests. A kill by a subset is a kill by
the whole selection; a survivor of the subset is only a candidate (judge it with the whole
selection or by reading it). Prints KILLED / SURVIVED per mutant; only mutants whose status is
"not checked" are run unless ``--all`` is given. Mutants of code that runs at import (module
tables) are not reached this way: use scripts/mutant_check.sh for them.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Fork one pytest run per matching mutant; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="+", help="mutant name globs (then -- and the tests)")
    parser.add_argument("--all", action="store_true", help="also mutants mutmut already judged")
    parser.add_argument(
        "--timeout", type=int, default=120, help="seconds a run may take (then: a kill)"
    )
    argv = sys.argv[1:]
    if "--" not in argv:
        parser.error("give the tests after --")
    cut = argv.index("--")
    args, tests = parser.parse_args(argv[:cut]), argv[cut + 1 :]
    names: list[str] = []
    for meta in sorted((ROOT / "mutants").glob("**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        names += [
            n
            for n, code in codes.items()
            if (args.all or code is None) and any(fnmatch.fnmatch(n, p) for p in args.patterns)
        ]
    os.chdir(ROOT / "mutants")
    sys.path.insert(0, str(ROOT / "mutants"))
    os.environ["CROSSMARGIN_MUTATION"] = "1"
    import pytest  # after sys.path points at the mutated tree

    # --tb=no: a killed mutant's run otherwise spends most of its time formatting the
    # failure's traceback (numpy arrays in the locals): ~3 CPU-s a kill instead of ~0.3 s
    pytest_args = ["-q", "-x", "--tb=no", "-p", "no:cacheprovider", *tests]

    def verdict(mutant: str) -> str:
        """PASSED, KILLED, or TIMEOUT (a mutant that hangs, e.g. a linked list made a cycle:
        a kill too, as in mutmut's own run)."""
        pid = os.fork()
        if pid == 0:
            os.environ["MUTANT_UNDER_TEST"] = mutant
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child exits
            os._exit(int(pytest.main(pytest_args)))
        # Polled from here: pytest cancels an alarm set in the child (signal.alarm(0)).
        deadline = time.monotonic() + args.timeout
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "TIMEOUT"
            time.sleep(0.05)
        return "PASSED" if os.waitstatus_to_exitcode(done[1]) == 0 else "KILLED"

    # Collect once here, so that every forked run finds pytest's plugins, the conftests, the
    # test modules and the code already imported (~15 s of imports a run otherwise).
    saved = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - restored right below
    try:
        pytest.main(["--collect-only", *pytest_args])
    finally:
        sys.stdout.close()
        sys.stdout = saved
    if verdict("") != "PASSED":
        print("the tests fail without any mutant: fix them first", file=sys.stderr)
        return 2
    for name in names:
        found = verdict(name)
        print(f"{'SURVIVED' if found == 'PASSED' else found} {name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
