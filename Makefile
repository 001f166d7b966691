# crossmargin — the two commands a fresh machine needs: `make demo` and `make test`.
# Both install what they need: uv (bootstrapped with pip), the Python env from uv.lock,
# and the pinned npm tooling (Anvil, solcjs) from package-lock.json.

SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=
# Two pytest workers by default (pytest-xdist), a test file per worker at a time: most of the
# suite waits on Anvil, PostgreSQL, Mosquitto and daemon processes, and every test isolates
# itself (own database, topic prefix, ports), so two files run side by side on two cores.
# `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2

.PHONY: demo test check lint typecheck install bytecode python-env node-env services test-tools contracts bench mutate clean

demo: install bytecode
	$(UV) run crossmargin demo

test: install services test-tools check bytecode
	$(UV) run pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

check: lint typecheck

lint: python-env
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: python-env
	$(UV) run mypy

install: python-env node-env

# Bytecode of the project's own packages, as the image has it (Dockerfile): every daemon,
# replica and command the suite starts would otherwise compile them again from source where
# PYTHONDONTWRITEBYTECODE is set (~3 s of CPU per process start; bench/RESULTS.md).
# The environment's packages are compiled by `uv sync --compile-bytecode` (python-env).
bytecode: python-env
	$(UV) run python -m compileall -q -j 0 core chains oracles margin venues daemon migrations devnet demo

python-env:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
	$(UV) sync --frozen --compile-bytecode

node-env: node_modules/.package-lock.json

# `npm install --no-save` against the committed lockfile rather than `npm ci`: the registry
# mirror here serves only this platform's Anvil binary, so npm 11 cannot lock the other
# platforms' optional packages and `npm ci` refuses the (correct for us) partial lockfile.
node_modules/.package-lock.json: package.json package-lock.json
	npm install --no-save --no-audit --no-fund --loglevel=error

services:
	bash scripts/ensure-services.sh

# Debian's chromium (the dashboard's browser tests, through Playwright) and promtool (the alert
# rules); installed with apt-get when missing and possible, else those tests skip.
test-tools:
	bash scripts/ensure-test-tools.sh

contracts: node-env
	node scripts/build-contracts.mjs
	node scripts/build-vendor-contracts.mjs

bench: install
	$(UV) run python bench/watcher.py

# Mutation testing of margin/ and the pure half of oracles/ against their fast tests
# ([tool.mutmut] in pyproject.toml); not part of `make test`. Niced: other work shares the
# cores. Starts fresh each time; results in mutants/ (summary: scripts/mutation_summary.py).
MUTATE_CHILDREN ?= 2
mutate: python-env
	rm -rf mutants
	CROSSMARGIN_MUTATION=1 nice -n 19 $(UV) run mutmut run --max-children $(MUTATE_CHILDREN)
	$(UV) run python scripts/mutation_summary.py

clean:
	rm -rf .venv node_modules .pytest_cache .mypy_cache .ruff_cache mutants
