"""``crossmargin snapshot`` as a user runs it: a process of its own, its output, and what it
loads. The command reads balances (JSON-RPC, Multicall3): it must not pay for the engine's
numeric stack, the database, the HTTP server or the MQTT client at start-up."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import yaml

from daemon.commands.snapshot import json_lines, take_snapshot
from daemon.config.load import load_config
from devnet import DevChain
from tests.watchkit import chain_entry, token_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

HEAVY_MODULES = ("numpy", "sqlalchemy", "alembic", "aiomqtt", "paho", "aiohttp.web", "asyncpg")
# The command run in-process by a fresh interpreter, which then says what was imported.
PROBE = """
import json, sys
from daemon.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy} or m in {heavy})
print(json.dumps({{"exit": code, "heavy": heavy}}), file=sys.stderr)
"""
ACCOUNTS = [f"0x{i:040x}" for i in range(0x5A00, 0x5A00 + 40)]


async def _config(dev_a: DevChain, tmp_path: Path) -> Path:
    token = await dev_a.deploy("MintableERC20", "Snapshot", "SNP", 6)
    for n, account in enumerate(ACCOUNTS[:5], start=1):
        await dev_a.transact(token, "MintableERC20", "mint", account, n * 1_250_000)
    config = {
        "chains": [chain_entry("a", dev_a.chain_id, dev_a.url)],
        "tokens": [token_entry("a", token, decimals=6)],
        "accounts": ACCOUNTS,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_snapshot_prints_what_the_watchers_read_and_loads_no_heavy_stack(
    dev_a: DevChain, tmp_path: Path
) -> None:
    path = await _config(dev_a, tmp_path)
    probe = PROBE.format(heavy=repr(set(HEAVY_MODULES)))
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", probe, "snapshot", "-c", str(path), "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    report = json.loads(stderr.decode().strip().splitlines()[-1])
    assert report == {"exit": 0, "heavy": []}

    # The same bytes as the snapshot taken in this process (nothing moved in between).
    (snap,) = await take_snapshot(load_config(path))
    assert stdout.decode() == "".join(json_lines(snap))
    rows = [json.loads(line) for line in stdout.decode().splitlines()]
    assert len(rows) == len(ACCOUNTS)
    amounts = {r["account"]: r["amount"] for r in rows}
    assert [amounts[a] for a in ACCOUNTS[:5]] == ["1.25", "2.5", "3.75", "5", "6.25"]
    assert {amounts[a] for a in ACCOUNTS[5:]} == {"0"}
