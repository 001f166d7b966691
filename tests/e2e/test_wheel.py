"""The built wheel, installed into a fresh virtualenv outside the checkout, runs: migrations
and the Multicall3 runtime travel inside it, and nothing reads a path of the checkout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from devnet import REPO_ROOT, DevChain
from tests.pricekit import free_port

pytestmark = pytest.mark.usefixtures("isolated_chains")

STEP_TIMEOUT_S = 300.0  # a cold uv cache builds and installs in well under a minute
MINTED = 15 * 10**17
SERVE_TIMEOUT_S = 60.0  # the installed daemon answers /healthz


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    shown = " ".join(str(a) for a in args)
    assert proc.returncode == 0, f"{shown}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, f"{shown}:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``crossmargin`` of the wheel built from this checkout, in a virtualenv of its own."""
    root = tmp_path_factory.mktemp("wheel")
    # The checkout's own environment must not leak in (its venv, PYTHONPATH, an editable path).
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    _run([*_uv(), "build", "--wheel", "-q", "-o", root / "dist", REPO_ROOT], cwd=root, env=env)
    (wheel,) = (root / "dist").glob("crossmargin-*.whl")
    _run([*_uv(), "venv", "-q", root / "venv"], cwd=root, env=env)
    python = root / "venv" / "bin" / "python"
    _run([*_uv(), "pip", "install", "-q", "--python", python, wheel], cwd=root, env=env)
    return root / "venv" / "bin" / "crossmargin"


def _env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}


async def test_the_wheel_migrates_and_snapshots_outside_the_checkout(
    installed: Path, dev_a: DevChain, tmp_path: Path
) -> None:
    token = (await dev_a.deploy("MintableERC20", "Wrapped Ether", "WETH", 18)).lower()
    holder = "0x" + "91" * 4 + "00" * 15 + "01"  # an account nothing else uses
    await dev_a.transact(token, "MintableERC20", "mint", holder, MINTED)
    database = tmp_path / "store.sqlite3"
    config = tmp_path / "crossmargin.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "chains": [
                    {
                        "name": "a",
                        "chain_id": dev_a.chain_id,
                        "rpc_urls": [dev_a.url],
                        "confirmations": 0,
                        "use_state_override": True,  # the Multicall3 runtime from the wheel
                    }
                ],
                "tokens": [
                    {
                        "chain": "a",
                        "address": token,
                        "asset": "ETH",
                        "role": "collateral",
                        "weight": 0.8,
                    }
                ],
                "accounts": [holder],
                "database_url": f"sqlite+aiosqlite:///{database}",
            }
        )
    )
    version = _run([installed, "--version"], cwd=tmp_path, env=_env())
    assert version.startswith("crossmargin ")
    _run([installed, "migrate", "-c", config], cwd=tmp_path, env=_env())
    assert database.stat().st_size > 0
    out = _run([installed, "snapshot", "-c", config, "--json"], cwd=tmp_path, env=_env())
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["account"].lower(), row["raw"], row["amount"]) == (
        holder.lower(),
        str(MINTED),
        "1.5",
    )


async def test_the_installed_wheel_serves_the_dashboard(
    installed: Path, dev_a: DevChain, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "crossmargin.yaml"
    config.write_text(
        json.dumps(
            {
                "chains": [{"name": "a", "chain_id": dev_a.chain_id, "rpc_urls": [dev_a.url]}],
                "tokens": [
                    {
                        "chain": "a",
                        "address": "0x" + "11" * 20,
                        "asset": "ETH",
                        "role": "collateral",
                        "weight": 0.8,
                        "decimals": 18,
                    }
                ],
                "accounts": ["0x" + "92" * 20],
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}",
                "api": {"listen": f"127.0.0.1:{port}"},
            }
        )
    )
    log = (tmp_path / "daemon.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(installed), "run", "-c", str(config), "--migrate",
        cwd=tmp_path, env=_env(), stdout=log, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + SERVE_TIMEOUT_S
            while True:
                assert proc.returncode is None, (tmp_path / "daemon.log").read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/healthz") as health:
                        if health.status == 200:
                            break
                assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
                await asyncio.sleep(0.2)
            async with session.get(f"{base}/") as page:
                assert page.status == 200
                assert '<script type="module" src="/static/app.js">' in await page.text()
            for name in ("app.js", "charts.js", "style.css"):
                async with session.get(f"{base}/static/{name}") as asset:
                    assert asset.status == 200, name
                    assert len(await asset.read()) > 1000, name
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), STEP_TIMEOUT_S)
        log.close()
