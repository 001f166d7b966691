"""The real daemon as a subprocess, with the world it watches: two Anvil chains with block
times, loopback price servers, a fresh PostgreSQL database and a private Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import yaml

from devnet import REPO_ROOT, AnvilNode, DevChain
from tests import waitkit
from tests.mqttkit import Mosquitto
from tests.pricekit import PriceServer, free_port, generic
from tests.waitkit import WAIT_S

API_TOKEN = "e2e-token-0123456789abcdef"
BOB = "0x" + "b0" * 20
STARTUP_TIMEOUT_S = 60.0


@dataclass
class World:
    """Everything a daemon under test talks to."""

    l1: DevChain
    l2: DevChain
    prices: PriceServer
    weth: str  # on l1
    debt: str  # on l2 (a cross-chain position: collateral on l1, debt on l2)
    database_url: str
    broker: Mosquitto
    prefix: str
    api_port: int
    workdir: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def set_eth(self, *prices: str) -> None:
        """Set the three ETH sources (one price for all, or one each)."""
        values = prices * 3 if len(prices) == 1 else prices
        for key, value in zip(("ETH-a", "ETH-b", "ETH-c"), values, strict=True):
            self.prices.set(key, value)

    def config(self) -> dict[str, Any]:
        chain = {
            "poll_interval_s": 0.1,
            "max_lag_s": 30,
            "liquidation_latency_s": 1,
            "request_timeout_s": 2,
        }
        return {
            "chains": [
                {"name": "l1", "chain_id": self.l1.chain_id, "rpc_urls": [self.l1.url], **chain},
                {"name": "l2", "chain_id": self.l2.chain_id, "rpc_urls": [self.l2.url], **chain},
            ],
            "tokens": [
                {
                    "chain": "l1",
                    "address": self.weth,
                    "asset": "ETH",
                    "role": "collateral",
                    "weight": 0.8,
                },
                {
                    "chain": "l2",
                    "address": self.debt,
                    "asset": "USDC",
                    "role": "liability",
                    "weight": 1.0,
                },
            ],
            "accounts": [BOB],
            "database_url": self.database_url,
            "oracle_polling": {"round_interval_s": 0.3},
            "assets": [
                {
                    "symbol": "ETH",
                    "volatility_floor": 0.1,
                    "oracle": {"min_sources": 2, "max_deviation": 0.02, "max_jump": 0.5},
                    "sources": [
                        generic(self.prices, key, max_age_s=60, poll_interval_s=0.2)
                        for key in ("ETH-a", "ETH-b", "ETH-c")
                    ],
                },
                {
                    "symbol": "USDC",
                    "volatility_floor": 0.01,
                    "oracle": {"min_sources": 1},
                    "sources": [generic(self.prices, "USDC", max_age_s=60, poll_interval_s=0.2)],
                },
            ],
            "mqtt": {
                "url": self.broker.url,
                "topic_prefix": self.prefix,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1,
            },
            "api": {"listen": f"127.0.0.1:{self.api_port}", "token": API_TOKEN},
        }


@contextlib.asynccontextmanager
async def world(workdir: Path, database_url: str) -> AsyncIterator[World]:
    """Start chains (1 s blocks), price servers and a broker; seed Bob's cross-chain book."""
    async with (
        AnvilNode(chain_id=2001, block_time_s=1) as n1,
        AnvilNode(chain_id=2002, block_time_s=1) as n2,
        DevChain(n1.url) as l1,
        DevChain(n2.url) as l2,
        PriceServer() as prices,
    ):
        broker = Mosquitto(workdir)
        await broker.start()
        try:
            weth = (await l1.deploy("MintableERC20", "WETH", "WETH", 18)).lower()
            debt = (await l2.deploy("MintableERC20", "debt USDC", "dUSDC", 6)).lower()
            await l1.transact(weth, "MintableERC20", "mint", BOB, 10**18)
            await l2.transact(debt, "MintableERC20", "mint", BOB, 1500 * 10**6)
            w = World(
                l1,
                l2,
                prices,
                weth,
                debt,
                database_url,
                broker,
                f"xm-e2e-{os.getpid()}-{free_port()}",
                free_port(),
                workdir,
            )
            w.set_eth("2000")
            prices.set("USDC", "1")
            yield w
        finally:
            await broker.kill()


class DaemonProcess:
    """``crossmargin run`` in a subprocess; stderr kept for diagnostics."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon.cli",
            "run",
            "-c",
            str(self.config_path),
            "--migrate",
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
        )
        log.close()

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


class Served(Protocol):
    """What the helpers below need of a world: a work directory and the daemon's API URL."""

    @property
    def workdir(self) -> Path: ...

    @property
    def api(self) -> str: ...

    def config(self) -> dict[str, Any]: ...


@contextlib.asynccontextmanager
async def running_daemon(
    w: Served, config: dict[str, Any] | None = None, *, name: str | None = None
) -> AsyncIterator[DaemonProcess]:
    """``crossmargin run`` on ``config`` (the world's own by default), ready (``/readyz`` 200)
    when entered, killed on exit. The config and the log go to the world's work directory as
    ``config.yaml`` and ``daemon.log``, or ``{name}.yaml`` and ``{name}.log``."""
    path = w.workdir / ("config.yaml" if name is None else f"{name}.yaml")
    path.write_text(yaml.safe_dump(w.config() if config is None else config))
    daemon = DaemonProcess(path, w.workdir / ("daemon.log" if name is None else f"{name}.log"))
    await daemon.start()
    try:
        await wait_ready(w, daemon)
        yield daemon
    finally:
        daemon.kill()
        if daemon.proc is not None:
            await daemon.proc.wait()


async def get_json(w: Served, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(w.api + path) as response:
        return response.status, json.loads(await response.text())


async def wait_ready(w: Served, daemon: DaemonProcess) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.proc is not None and daemon.proc.returncode is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}:\n{daemon.log()}")
        with contextlib.suppress(aiohttp.ClientError, json.JSONDecodeError):
            status, _ = await get_json(w, "/readyz")
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"daemon not ready within {STARTUP_TIMEOUT_S}s:\n{daemon.log()}")


async def eventually(
    check: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition"
) -> Any:
    """Poll an async ``check`` until it returns something truthy (``tests.waitkit``)."""
    return await waitkit.eventually(check, what=what, timeout_s=timeout_s, poll_s=0.1)


async def engine_cycles(w: World) -> int:
    """Engine cycles the daemon has finished (``crossmargin_cycle_seconds_count``)."""
    async with aiohttp.ClientSession() as session, session.get(w.api + "/metrics") as response:
        text = await response.text()
    found = re.search(r"^crossmargin_cycle_seconds_count (\S+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0
