"""The real daemon loses PostgreSQL (a TCP proxy cuts every connection and refuses new ones)
while a price crash makes every account liquidatable; then the database comes back.

During the outage the store-backed API answers a 503 with a reason (never a 500, never a
hang), ``/readyz`` names the store, and what comes from memory (chains, prices) still
answers. Once the database is back, every transition of the outage is stored exactly once
and ``/v1/liquidatable`` lists every account, without a restart and without any new reading.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import sqlalchemy as sa
import yaml

from margin.model import Flag
from tests import waitkit
from tests.daemonkit import (
    BOB,
    DaemonProcess,
    World,
    eventually,
    running_daemon,
    wait_ready,
    world,
)
from tests.storekit import postgres_database
from tests.tcpproxy import TcpProxy

ACCOUNTS = [BOB, *(f"0x{0xC4A0:04x}{i:036x}" for i in range(1, 8))]
"""Eight accounts with Bob's book: 1 WETH on l1 against 1,500 USDC of debt on l2."""
ANSWER_BOUND_S = 20.0  # an API answer slower than this counts as a hang
OUTAGE_WAIT_S = 60.0  # generous bounds for conditions (2 cores shared by parallel suites)


@pytest.fixture
async def outage_world(tmp_path: Path) -> AsyncIterator[tuple[World, TcpProxy]]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        others = ACCOUNTS[1:]
        await w.l1.mint_many(w.weth, [(a, 10**18) for a in others])
        await w.l2.mint_many(w.debt, [(a, 1500 * 10**6) for a in others])
        address = sa.make_url(url)
        assert address.host is not None
        assert address.port is not None
        async with TcpProxy(address.host, address.port) as proxy:
            yield w, proxy


def proxied_config(w: World, proxy: TcpProxy) -> dict[str, Any]:
    config = w.config()
    direct = sa.make_url(w.database_url)
    config["database_url"] = direct.set(port=proxy.port).render_as_string(hide_password=False)
    config["accounts"] = list(ACCOUNTS)
    return config


async def fetch(w: World, path: str) -> tuple[int, Any, dict[str, str]]:
    """Status, JSON body and headers; a hang beyond ``ANSWER_BOUND_S`` fails the test."""
    timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with session.get(w.api + path) as response:
                return response.status, json.loads(await response.text()), dict(response.headers)
        except TimeoutError:
            raise AssertionError(f"GET {path} did not answer within {ANSWER_BOUND_S}s") from None


async def stored_transitions(w: World) -> list[tuple[str, Flag, Flag]]:
    """(account, from, to) of every stored transition, read directly (not via the proxy)."""
    url = sa.make_url(w.database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        rows = await conn.fetch(
            "SELECT account, from_flags, to_flags FROM health_transitions ORDER BY id"
        )
    finally:
        await conn.close()
    return [(r["account"], Flag(r["from_flags"]), Flag(r["to_flags"])) for r in rows]


async def test_outage_answers_503_and_stores_every_transition_once_it_is_back(
    outage_world: tuple[World, TcpProxy],
) -> None:
    w, proxy = outage_world
    async with running_daemon(w, proxied_config(w, proxy), name="outage") as daemon:
        status, body, _ = await fetch(w, "/v1/liquidatable")
        assert (status, body["total"]) == (200, 0)
        before = await stored_transitions(w)
        assert not [t for t in before if Flag.LIQUIDATABLE in t[2]]

        proxy.cut()
        w.set_eth("1800")  # 1 WETH x 1800 x 0.8 = 1440 against 1500: all eight under water

        async def store_refused() -> tuple[int, Any, dict[str, str]] | None:
            answer = await fetch(w, "/v1/liquidatable")
            return answer if answer[0] != 200 else None

        status, body, headers = await eventually(
            store_refused, OUTAGE_WAIT_S, "the API to notice the outage"
        )
        assert status == 503, (status, body)
        assert body["error"]["code"] == "store_unavailable"
        assert "store unavailable" in body["error"]["message"]
        assert int(headers["Retry-After"]) > 0
        for path in (f"/v1/accounts/{BOB}", "/v1/accounts?flag=LIQUIDATABLE"):
            status, body, _ = await fetch(w, path)
            assert (status, body["error"]["code"]) == (503, "store_unavailable"), path

        # Memory keeps serving: chains, and the crash itself in the live prices.
        status, body, _ = await fetch(w, "/v1/chains")
        assert status == 200
        assert {c["name"] for c in body["chains"]} == {"l1", "l2"}

        async def crash_priced() -> bool:
            status, body, _ = await fetch(w, "/v1/prices")
            eth = [p for p in body["prices"] if p["asset"] == "ETH"] if status == 200 else []
            return bool(eth) and eth[0]["price"] == "1800"

        await eventually(crash_priced, OUTAGE_WAIT_S, "the crash priced from memory")

        async def store_not_ready() -> list[str] | None:
            status, body, _ = await fetch(w, "/readyz")
            reasons = [r for r in body["reasons"] if "store" in r]
            return reasons if status == 503 and reasons else None

        await eventually(store_not_ready, OUTAGE_WAIT_S, "/readyz to name the store")

        async def writer_failing() -> bool:
            return _metric(await _metrics(w), "crossmargin_store_write_failures_total") >= 2

        await eventually(writer_failing, OUTAGE_WAIT_S, "the engine's writes to fail (retried)")
        metrics = await _metrics(w)
        assert _metric(metrics, "crossmargin_store_pending_accounts") == len(ACCOUNTS)
        assert _metric(metrics, "crossmargin_store_seconds_since_write") > 0
        assert await stored_transitions(w) == before  # nothing could be written

        await proxy.restore()  # the database is back; nothing changes on chain or in prices

        async def all_listed() -> list[str] | None:
            status, body, _ = await fetch(w, "/v1/liquidatable?limit=100")
            listed = sorted(a["account"] for a in body["accounts"]) if status == 200 else []
            return listed if len(listed) == len(ACCOUNTS) else None

        listed = await eventually(all_listed, OUTAGE_WAIT_S, "every account listed again")
        assert listed == sorted(a.lower() for a in ACCOUNTS)

        async def ready() -> bool:
            status, _, _ = await fetch(w, "/readyz")
            return status == 200

        await eventually(ready, OUTAGE_WAIT_S, "/readyz to recover")
        await asyncio.sleep(1.0)  # a few more cycles: nothing may be written twice
        new = (await stored_transitions(w))[len(before) :]
        became = [t for t in new if Flag.LIQUIDATABLE in t[2]]
        assert sorted(t[0] for t in became) == sorted(a.lower() for a in ACCOUNTS)
        assert len(new) == len(set(new)) == len(ACCOUNTS), new
        metrics = await _metrics(w)
        assert _metric(metrics, "crossmargin_store_pending_accounts") == 0
        assert "component_failed name=engine" not in daemon.log_path.read_text()


async def _metrics(w: World) -> str:
    timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(w.api + "/metrics") as response,
    ):
        return await response.text()


def _metric(text: str, name: str) -> float:
    """The value of an unlabelled sample (0 when absent)."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_black_holed_database_costs_seconds_not_a_hang(
    outage_world: tuple[World, TcpProxy],
) -> None:
    """The database stops answering without refusing (every byte stalls): the API still
    answers 503 within its deadline, the engine goes on in memory, and once the bytes flow
    again everything pending is stored."""
    w, proxy = outage_world
    async with running_daemon(w, proxied_config(w, proxy), name="blackhole"):
        before = await stored_transitions(w)
        proxy.pause()
        w.set_eth("1800")
        (status, body, headers), (ready, readiness, _) = await asyncio.gather(
            fetch(w, "/v1/liquidatable"), fetch(w, "/readyz")
        )
        assert status == 503, (status, body)
        assert body["error"]["code"] == "store_unavailable"
        assert int(headers["Retry-After"]) > 0
        assert ready == 503
        assert [r for r in readiness["reasons"] if "store" in r], readiness

        # By now a write is stuck in the stalled connection: the engine must not be.
        w.set_eth("1700")

        async def priced_1700() -> bool:
            status, body, _ = await fetch(w, "/v1/prices")
            eth = [p for p in body["prices"] if p["asset"] == "ETH"] if status == 200 else []
            return bool(eth) and eth[0]["price"] == "1700"

        await eventually(priced_1700, OUTAGE_WAIT_S, "the engine to go on in memory")
        proxy.resume()

        async def all_listed() -> list[str] | None:
            status, body, _ = await fetch(w, "/v1/liquidatable?limit=100")
            listed = sorted(a["account"] for a in body["accounts"]) if status == 200 else []
            return listed if len(listed) == len(ACCOUNTS) else None

        await eventually(all_listed, OUTAGE_WAIT_S, "every account listed after the stall")
        new = (await stored_transitions(w))[len(before) :]
        assert len(new) == len(set(new)) == len(ACCOUNTS), new


async def test_a_daemon_started_before_its_database_waits_for_it(
    outage_world: tuple[World, TcpProxy],
) -> None:
    """The database is away when the daemon starts (``database_wait_s``, default 60 s): it
    waits, retrying, instead of exiting, and is ready once the database answers."""
    w, proxy = outage_world
    proxy.cut()
    path = w.workdir / "early.yaml"
    path.write_text(yaml.safe_dump(proxied_config(w, proxy)))
    daemon = DaemonProcess(path, w.workdir / "early.log")
    await daemon.start()
    assert daemon.proc is not None
    try:
        await waitkit.eventually(
            lambda: daemon.log().count("store_waiting") >= 2,
            what="two start-up retries logged",
            timeout_s=OUTAGE_WAIT_S,
            seen=daemon.log,
        )
        assert daemon.proc.returncode is None, daemon.log()
        await proxy.restore()
        await wait_ready(w, daemon)
        status, body, _ = await fetch(w, "/v1/accounts/" + BOB)
        assert status == 200, body
        assert await daemon.stop() == 0
    finally:
        daemon.kill()
        await daemon.proc.wait()


async def test_a_database_that_never_comes_exits_1_naming_it(
    outage_world: tuple[World, TcpProxy],
) -> None:
    w, proxy = outage_world
    proxy.cut()
    config = proxied_config(w, proxy)
    config["database_wait_s"] = 1
    path = w.workdir / "never.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = DaemonProcess(path, w.workdir / "never.log")
    await daemon.start()
    assert daemon.proc is not None
    code = await daemon.proc.wait()
    log = daemon.log()
    assert code == 1, log
    last = log.strip().splitlines()[-1]
    assert last.startswith("crossmargin: database postgresql+asyncpg://"), log
    assert f":{proxy.port}/" in last
    assert "unreachable" in last
    assert "(waited 1 s: database_wait_s)" in last
    assert "Traceback" not in log
