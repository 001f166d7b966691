"""No planted secret reaches any output channel of the real daemon and the CLI commands.

Secrets of several shapes are planted in a real config: a short path key, a dotted one with
``~``, query keys, user-info (RPC, ws, database, broker), ws URL keys, an HTTP price source's
path, query and headers, a preset's base URL and a source that is down. The daemon runs with
faults (a dead first RPC URL, an RPC endpoint answering 500 for a while, dead ws endpoints, a
dead price source) so every error path formats its messages; then every channel is collected
and searched: the daemon's log (at INFO), the API, ``/metrics``, every MQTT topic and payload,
``check``/``prices``/``snapshot``/``health`` (tables and JSON, stdout and stderr) and every
table of the store.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
import yaml

from devnet import REPO_ROOT
from tests.clikit import crossmargin
from tests.daemonkit import (
    API_TOKEN,
    BOB,
    DaemonProcess,
    World,
    eventually,
    wait_ready,
    world,
)
from tests.faultproxy import FaultMode, FaultProxy, free_port
from tests.mqttkit import Mosquitto, Subscriber
from tests.pricekit import coinbase, generic
from tests.storekit import postgres_database

ALPHABET = string.ascii_letters + string.digits
FAULTED_REQUESTS = 5  # l1's live endpoint answers 500 this often: parked, cycles fail
API_PATHS = (
    "/v1/chains",
    "/v1/prices",
    f"/v1/accounts/{BOB}",
    "/v1/liquidatable",
    "/v1/accounts?flag=LIQUIDATABLE&flag=STALE_CHAIN&flag=STALE_PRICE",
    "/metrics",
    "/readyz",
    "/healthz",
)


def _token(n: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def _dotted() -> str:
    return f"{_token(2)}.{_token(2)}~{_token(2)}"  # 8 chars, like ab.cd~ef


@dataclass
class Planted:
    """Every secret of one run, by what it is."""

    values: dict[str, str]

    @classmethod
    def new(cls) -> Planted:
        return cls(
            {
                "rpc_short_path": _token(12),
                "rpc_dotted_path": _dotted(),
                "rpc_query": _token(8),
                "rpc_user": f"u{_token(9)}",
                "rpc_password": _token(10),
                "rpc2_dotted_path": _dotted(),
                "rpc2_query": _token(11),
                "ws_path": _token(10),
                "ws_password": _token(9),
                "ws2_path": _dotted(),
                "price_path": _token(9),
                "price_query": _token(10),
                "price_bearer": _token(12),
                "price_api_key": _token(10),
                "preset_path": _dotted(),
                "down_source_path": _token(8),
                "down_source_query": _token(9),
                "db_password": _token(12),
                "mqtt_user": f"m{_token(9)}",
                "mqtt_password": _token(11),
                "api_token": API_TOKEN,
            }
        )

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def forms(self) -> dict[str, str]:
        """Each secret as planted and percent-encoded (``~`` and ``.`` survive both)."""
        out: dict[str, str] = {}
        for name, value in self.values.items():
            out[name] = value
            if quote(value, safe="") != value:
                out[f"{name} (encoded)"] = quote(value, safe="")
        return out


@dataclass
class Faults:
    """The RPC proxies carrying keys, and the l1 proxy that is dead from the start."""

    l1_dead: FaultProxy
    l1_live: FaultProxy
    l2_live: FaultProxy


def secret_config(w: World, s: Planted, f: Faults, database_url: str, broker: int) -> Any:
    """The daemonkit config with a secret in every URL and header it has."""
    data: Any = w.config()
    l1, l2 = data["chains"]
    l1["rpc_urls"] = [
        f"{f.l1_dead.url}/v2/{s['rpc_short_path']}",
        f"http://{s['rpc_user']}:{s['rpc_password']}@127.0.0.1:{f.l1_live.port}"
        f"/{s['rpc_dotted_path']}?apikey={s['rpc_query']}",
    ]
    l1["ws_url"] = f"ws://x:{s['ws_password']}@127.0.0.1:{free_port()}/ws/{s['ws_path']}"
    l2["rpc_urls"] = [f"{f.l2_live.url}/{s['rpc2_dotted_path']}?key={s['rpc2_query']}"]
    l2["ws_url"] = w.l2.url.replace("http://", "ws://") + f"/{s['ws2_path']}"  # anvil answers 404
    eth = data["assets"][0]
    base = w.prices.url
    eth["sources"] = [
        generic(
            f"{base}/{s['price_path']}",
            "ETH-a",
            max_age_s=60,
            poll_interval_s=0.2,
            headers={
                "Authorization": f"Bearer {s['price_bearer']}",
                "X-Api-Key": s["price_api_key"],
            },
        ),
        {
            **generic(w.prices, "ETH-b", max_age_s=60, poll_interval_s=0.2),
            "url": f"{base}/generic/ETH-b?token={s['price_query']}",
        },
        coinbase(f"{base}/{s['preset_path']}", "ETH-USD", max_age_s=60, poll_interval_s=0.2),
        {
            **generic(w.prices, "ETH-c", max_age_s=60, poll_interval_s=0.2),
            "url": f"http://127.0.0.1:{free_port()}/{s['down_source_path']}/generic/ETH-c"
            f"?apikey={s['down_source_query']}",
        },
    ]
    data["database_url"] = database_url.replace("@", f":{s['db_password']}@", 1)
    data["mqtt"]["url"] = f"mqtt://{s['mqtt_user']}:{s['mqtt_password']}@127.0.0.1:{broker}"
    return data


class VerboseDaemon(DaemonProcess):
    """``crossmargin -v run``: INFO logs too, so every logged path is searched."""

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon.cli",
            "-v",
            "run",
            "-c",
            str(self.config_path),
            "--migrate",
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
        )
        log.close()


@dataclass
class Setup:
    w: World
    planted: Planted
    faults: Faults
    broker: Mosquitto
    database_url: str
    config_path: Path


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    planted = Planted.new()
    async with postgres_database() as url, world(tmp_path, url) as w:
        w.prices.set("ETH-USD", "2000")
        broker = Mosquitto(
            tmp_path / "secured", users={planted["mqtt_user"]: planted["mqtt_password"]}
        )
        (tmp_path / "secured").mkdir()
        async with (
            broker,
            FaultProxy(w.l1.url) as l1_dead,
            FaultProxy(w.l1.url) as l1_live,
            FaultProxy(w.l2.url) as l2_live,
        ):
            await l1_dead.set_mode(FaultMode.REFUSE)
            faults = Faults(l1_dead, l1_live, l2_live)
            path = tmp_path / "config.yaml"
            data = secret_config(w, planted, faults, url, broker.port)
            path.write_text(yaml.safe_dump(data))
            yield Setup(w, planted, faults, broker, url, path)


async def _get(w: World, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(w.api + path) as response:
        return f"{response.status} {await response.text()}"


async def _store_dump(database_url: str) -> str:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        parts = []
        for row in tables:
            name = row["table_name"]
            rows = await conn.fetch(f'SELECT * FROM "{name}"')
            parts.append(f"{name}: {[dict(r) for r in rows]!r}")
        return "\n".join(parts)
    finally:
        await conn.close()


async def _cli_outputs(config: Path) -> dict[str, str]:
    runs = {
        "check": ("-v", "check", "-c", str(config), "--timeout", "5"),
        "check --json": ("check", "-c", str(config), "--json", "--timeout", "5"),
        "prices": ("-v", "prices", "-c", str(config)),
        "prices --json": ("prices", "-c", str(config), "--json"),
        "snapshot": ("-v", "snapshot", "-c", str(config)),
        "snapshot --json": ("snapshot", "-c", str(config), "--json"),
        "health": ("-v", "health", "-c", str(config)),
        "health --json": ("health", "-c", str(config), "--json"),
    }
    results = await asyncio.gather(*(crossmargin(*args) for args in runs.values()))
    out: dict[str, str] = {}
    for name, (code, stdout, stderr) in zip(runs, results, strict=True):
        out[f"{name} (exit {code}) stdout"] = stdout
        out[f"{name} stderr"] = stderr
    return out


def _leaks(channels: dict[str, str], planted: Planted) -> list[str]:
    found = []
    for secret_name, value in planted.forms().items():
        for channel, text in channels.items():
            at = text.find(value)
            if at >= 0:
                context = text[max(0, at - 80) : at + len(value) + 40].replace("\n", " | ")
                found.append(f"{secret_name} in {channel}: …{context}…")
    return found


async def test_planted_secrets_never_reach_any_output(setup: Setup) -> None:
    s = setup
    w, planted, faults = s.w, s.planted, s.faults
    topics: dict[str, str] = {}
    async with Subscriber(
        s.broker.port, "#", username=planted["mqtt_user"], password=planted["mqtt_password"]
    ) as sub:
        daemon = VerboseDaemon(s.config_path, w.workdir / "daemon.log")
        await daemon.start()
        try:
            await wait_ready(w, daemon)

            async def l1_parked() -> bool:
                chains = json.loads((await _get(w, "/v1/chains")).split(" ", 1)[1])
                l1 = next(c for c in chains["chains"] if c["name"] == "l1")
                return l1["endpoints"][0]["errors"] > 0

            await eventually(l1_parked, what="the dead l1 endpoint to be counted")
            # Every endpoint of l1 fails for a while: cycles fail, the pool reports errors.
            answered = faults.l1_live.requests
            await faults.l1_live.set_mode(FaultMode.HTTP500)
            await eventually(
                lambda: _async(faults.l1_live.requests >= answered + FAULTED_REQUESTS),
                what="the live l1 endpoint answering 500 for a while",
            )
            await faults.l1_live.set_mode(FaultMode.PASS)
            await wait_ready(w, daemon)
            channels = {f"GET {p}": await _get(w, p) for p in API_PATHS}
            channels.update(await _cli_outputs(s.config_path))
            channels["store"] = await _store_dump(s.database_url)
            assert await daemon.stop() == 0
        finally:
            daemon.kill()
        # the offline status (after the last retained payloads)
        await eventually(lambda: _async(sub.payloads(f"{w.prefix}/status")[-1:] == [b"offline"]))
        for message in sub.messages:
            payload = message.payload
            text = payload.decode(errors="replace") if isinstance(payload, bytes) else str(payload)
            topics[message.topic.value] = topics.get(message.topic.value, "") + text + "\n"

    log = daemon.log_path.read_text(errors="replace")
    channels["daemon log"] = log
    channels["mqtt topics"] = "\n".join(topics)
    channels.update({f"mqtt {topic}": text for topic, text in topics.items()})

    # The faults really happened and were reported: otherwise this test proves nothing.
    for event in ("rpc_endpoint_parked", "heads_ws_failed", "oracle.source_failed"):
        assert event in log, f"{event} was never logged:\n{log[-3000:]}"
    assert faults.l1_live.requests > 0
    assert faults.l2_live.requests > 0
    assert any("/chains/l1" in t for t in topics), sorted(topics)
    assert any("/oracle/ETH" in t for t in topics), sorted(topics)
    prices = json.loads(channels["GET /v1/prices"].split(" ", 1)[1])
    eth = next(p for p in prices["prices"] if p["asset"] == "ETH")
    assert len(eth["used"]) >= 2, eth
    assert "price_history" in channels["store"]

    leaks = _leaks(channels, planted)
    names = sorted({leak.split(" in ", 1)[0] for leak in leaks})
    assert not leaks, f"{len(leaks)} leak(s) of {names}:\n" + "\n".join(leaks[:40])


async def _async(value: object) -> object:
    return value
