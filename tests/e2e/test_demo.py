"""``crossmargin demo`` end to end: the real command in a subprocess, at double speed with 300
accounts. While it runs, its keeper API answers and lists liquidatable accounts after the
crash; its output shows accounts turning LIQUIDATABLE and LATENCY_RISK, the manipulated
exchange dropped as an outlier and the stalled chain going stale. SIGINT stops it with exit
code 0, and none of the Anvil nodes it started survives it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from devnet import REPO_ROOT
from tests.pricekit import free_port

DURATION_S = 900  # safety net only: longer than the test's own timeout, so only SIGINT stops it
SPEED = 2
ACCOUNTS = 300
OBSERVE_TIMEOUT_S = 150.0  # generous: every expected sign seen, or SIGINT anyway
EXIT_TIMEOUT_S = 20.0
POLL_S = 0.5

DROPPED = "ETH: source exchange-b dropped (outlier)"
STALE = "chain base STALE"
PEAKS = re.compile(r"peaks: LIQUIDATABLE=(\d+) LATENCY_RISK=(\d+)")


def _children(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` by pid, with their command name (Linux ``/proc``)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            if ppid == pid:
                found[int(stat.parent.name)] = name
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    with contextlib.suppress(aiohttp.ClientError, json.JSONDecodeError, TimeoutError):
        async with session.get(url) as response:
            return response.status, json.loads(await response.text())
    return 0, None


async def start_demo(port: int, *extra: str) -> asyncio.subprocess.Process:
    """``crossmargin demo`` without its view (a summary line every 2 s on stdout, stderr
    merged), 300 accounts at double speed, its API on ``port``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.cli",
        "demo",
        *extra,
        "--duration",
        str(DURATION_S),
        "--no-view",
        "--accounts",
        str(ACCOUNTS),
        "--speed",
        str(SPEED),
        "--api",
        f"127.0.0.1:{port}",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


@pytest.mark.timeout(300)
async def test_demo_plays_the_crash_and_stops_on_sigint() -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = await start_demo(port)
    assert proc.stdout is not None
    lines: list[str] = []

    async def read_output() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip("\n"))

    reader = asyncio.create_task(read_output())
    anvils: dict[int, str] = {}
    ready = False
    liquidatable: list[object] = []
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() - started < OBSERVE_TIMEOUT_S and proc.returncode is None:
                anvils |= {p: n for p, n in _children(proc.pid).items() if "anvil" in n}
                status, _ = await _get(session, f"{api}/readyz")
                ready = ready or status == 200
                if ready and not liquidatable:
                    status, body = await _get(session, f"{api}/v1/liquidatable")
                    if status == 200 and isinstance(body, dict) and body["accounts"]:
                        liquidatable = body["accounts"]
                text = "\n".join(lines)
                if liquidatable and DROPPED in text and STALE in text:
                    break
                await asyncio.sleep(POLL_S)
        assert proc.returncode is None, "the demo ended before it was interrupted"
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S)
        await asyncio.wait_for(reader, EXIT_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
    output = "\n".join(lines)
    assert code == 0, output[-3000:]
    assert ready, f"/readyz never answered 200:\n{output[-3000:]}"
    assert liquidatable, f"/v1/liquidatable stayed empty:\n{output[-3000:]}"
    assert "crash: ETH falls 30%" in output
    assert DROPPED in output, output[-3000:]
    assert STALE in output, output[-3000:]
    peaks = PEAKS.search(output)
    assert peaks is not None, output[-3000:]
    assert int(peaks.group(1)) > 0, "no account turned LIQUIDATABLE"
    assert int(peaks.group(2)) > 0, "no account turned LATENCY_RISK"
    assert re.search(r"LIQUIDATABLE=[1-9]", output), "summary lines never showed liquidations"
    assert len(anvils) == 3, f"expected the demo's 3 Anvil nodes, saw {anvils}"
    survivors = [pid for pid in anvils if _alive(pid)]
    assert not survivors, f"Anvil nodes still running after the demo stopped: {survivors}"


CRASH = "crash: ETH falls 30%"
SAVED = re.compile(r"LIQUIDATABLE=([1-9]\d*) .*saved_by_portfolio=([1-9]\d*)")


@pytest.mark.timeout(300)
async def test_the_portfolio_demo_shows_hedged_accounts_that_weights_would_liquidate() -> None:
    """``crossmargin demo --model portfolio``: after the crash some accounts are liquidatable,
    and some hedged ones are healthy under the portfolio model while flat weights would
    liquidate them (``saved_by_portfolio``, the view's comparison): a summary line after the
    crash shows both counts above zero."""
    proc = await start_demo(free_port(), "--model", "portfolio")
    assert proc.stdout is not None
    lines: list[str] = []
    crashed = False
    seen = None
    try:
        deadline = time.monotonic() + OBSERVE_TIMEOUT_S
        while seen is None and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                raw = await asyncio.wait_for(proc.stdout.readline(), POLL_S)
                if not raw:
                    break  # the demo ended on its own: asserted below
                lines.append(raw.decode(errors="replace").rstrip("\n"))
                crashed = crashed or CRASH in lines[-1]
                seen = SAVED.search(lines[-1]) if crashed else None
        assert proc.returncode is None, "the demo ended before it was interrupted"
        proc.send_signal(signal.SIGINT)
        async for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip("\n"))
        code = await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "\n".join(lines)
    assert crashed, f"the crash never came:\n{output[-3000:]}"
    assert seen is not None, f"no hedged account saved after the crash:\n{output[-3000:]}"
    assert code == 0, output[-3000:]
