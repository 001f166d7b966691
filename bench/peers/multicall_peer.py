"""Peer (d) of ``bench/watcher.py``: the PyPI ``multicall`` package reading the same balances.

Runs in its own virtualenv (``bench/.venv-multicall``: ``multicall`` 0.15.x pins
``web3 < 8``), started by ``bench/watcher.py`` as

    bench/.venv-multicall/bin/python bench/peers/multicall_peer.py INPUT.json OUTPUT.json

``INPUT.json`` holds ``url``, ``chain_id``, ``block_number``, ``pairs`` (``[account, token]``
lists), ``step``, ``repeats`` and ``require_success``. The package is used as documented, with
two settings only:

- its batch step is forced to ``step`` (1,000, the watcher's chunk): untuned it sends 10,000
  calls per ``eth_call``, which exceeds Anvil's 2 MB request cap and the 30M gas cap, and its
  rebatching then shrinks the step by 1% per failure;
- Anvil's chain id 31337 is absent from its address book (``KeyError`` in
  ``Multicall.__init__``), so it is registered at the canonical Multicall3 address. The package
  reads through its own ``eth_call`` state override with its own Multicall3 bytecode there.

Every repeat builds a fresh ``Multicall`` over the same ``Call`` objects (built once: the
equivalent of the watcher's calldata cache) and awaits it on one event loop. The first repeat
also pays for building the ``Call`` objects. Prints one JSON object on stdout (rates and
timings) and writes the balances of the last repeat, in pair order, to ``OUTPUT.json`` so the
caller can check them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from web3 import HTTPProvider, Web3

CANONICAL_MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
BALANCE_OF_SIGNATURE = "balanceOf(address)(uint256)"
PACKAGE = "multicall"


def _configure(chain_id: int, step: int) -> Any:
    """Register ``chain_id`` in the package's Multicall3 address book, force its batch step;
    return the ``multicall.multicall`` module (the one holding the shared ``batcher``)."""
    constants = importlib.import_module("multicall.constants")
    constants.MULTICALL3_ADDRESSES.setdefault(chain_id, CANONICAL_MULTICALL3)
    module = importlib.import_module("multicall.multicall")
    module.batcher.step = step
    return module


def _build_calls(pairs: list[list[str]]) -> list[Any]:
    """One ``Call`` per pair, its result keyed by the pair's index."""
    from multicall import Call

    return [
        Call(Web3.to_checksum_address(token), [BALANCE_OF_SIGNATURE, account], [(index, None)])
        for index, (account, token) in enumerate(pairs)
    ]


async def _run(spec: dict[str, Any]) -> tuple[dict[str, Any], list[int | None]]:
    """Measure ``spec["repeats"]`` full reads; return the report and the last values."""
    from multicall import Multicall

    module = _configure(int(spec["chain_id"]), int(spec["step"]))
    w3 = Web3(HTTPProvider(spec["url"]))
    pairs: list[list[str]] = spec["pairs"]
    block = int(spec["block_number"])
    require_success = bool(spec["require_success"])
    durations: list[float] = []
    calls: list[Any] = []
    result: dict[Any, Any] = {}
    for repeat in range(int(spec["repeats"])):
        module.batcher.step = int(spec["step"])  # undo any rebatching of an earlier repeat
        started = time.perf_counter()
        if repeat == 0:
            calls = _build_calls(pairs)
        result = await Multicall(
            calls, block_id=block, require_success=require_success, _w3=w3
        ).coroutine()
        durations.append(time.perf_counter() - started)
    values = [result.get(index) for index in range(len(pairs))]
    warm = durations[1:] or durations
    report = {
        "package": PACKAGE,
        "version": version(PACKAGE),
        "web3": version("web3"),
        "step": module.batcher.step,
        "pairs": len(pairs),
        "first_s": durations[0],
        "median_s": statistics.median(warm),
        "durations_s": durations,
        "balances_per_s": len(pairs) / statistics.median(warm),
        "first_balances_per_s": len(pairs) / durations[0],
    }
    return report, values


def main() -> int:
    """Read the input spec, measure, print the JSON report, write the values."""
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(sys.argv[1]).read_text())
    report, values = asyncio.run(_run(spec))
    Path(sys.argv[2]).write_text(json.dumps(values))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
