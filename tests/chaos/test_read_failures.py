"""A debt token that cannot be read, with the real daemon on two Anvil chains, PostgreSQL and
Mosquitto: its code is removed under a running daemon, the daemon restarts, the code returns.

A failed read is a state, never a value: the last good debt is kept (in memory and in the
store), the account is flagged ``READ_FAILED`` and held, never shown healthier; an account whose
debt was never read is held and shown as unknown; ``/readyz`` names the token.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.daemonkit import BOB, DaemonProcess, World, eventually, get_json, world
from tests.mqttkit import Subscriber
from tests.storekit import postgres_database

CAROL = "0x" + "ca" * 20  # added to the config after the token broke: her debt was never read
WAIT_S = 60.0  # generous: two cores shared by several test runs
SWEEP_S = 1  # the debt chain is swept every second, so a broken token shows at once


@pytest.fixture
async def e2e(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        yield w


def daemon_config(w: World, accounts: list[str]) -> dict[str, Any]:
    config = w.config()
    config["accounts"] = accounts
    for chain in config["chains"]:
        chain["sweep_interval_s"] = SWEEP_S
    return config


@contextlib.asynccontextmanager
async def daemon(w: World, config: dict[str, Any], name: str) -> AsyncIterator[DaemonProcess]:
    """The daemon on ``config``, once its engine has valued what it reads (``/readyz`` may say
    503 for a failing token: that is what is under test)."""
    path = w.workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    process = DaemonProcess(path, w.workdir / f"{name}.log")
    await process.start()
    try:
        await eventually(lambda: settled(w, process), WAIT_S, f"{name} daemon settled")
        yield process
    finally:
        process.kill()
        if process.proc is not None:
            await process.proc.wait()


async def settled(w: World, process: DaemonProcess) -> bool:
    """Every chain read, every asset priced, the engine warm: only token reasons may remain."""
    if process.proc is not None and process.proc.returncode is not None:
        raise AssertionError(f"daemon exited {process.proc.returncode}:\n{process.log()}")
    try:
        _, body = await get_json(w, "/readyz")
    except (aiohttp.ClientError, json.JSONDecodeError):
        return False
    return all(reason.startswith("token ") for reason in body["reasons"])


async def state(w: World, account: str) -> dict[str, Any] | None:
    status, body = await get_json(w, f"/v1/accounts/{account}")
    return body["state"] if status == 200 else None


def until_state(w: World, account: str, *flags: str, absent: tuple[str, ...] = ()) -> Any:
    async def check() -> dict[str, Any] | None:
        current = await state(w, account)
        if current is None:
            return None
        have = set(current["flags"])
        return current if set(flags) <= have and not have & set(absent) else None

    return eventually(check, WAIT_S, f"{account} with {flags} without {absent}")


def events(sub: Subscriber, prefix: str, kind: str) -> list[dict[str, Any]]:
    return [json.loads(p) for p in sub.payloads(f"{prefix}/events/{kind}")]


async def metrics_text(w: World) -> str:
    async with aiohttp.ClientSession() as session, session.get(w.api + "/metrics") as response:
        return await response.text()


async def test_unreadable_debt_is_held_with_its_last_value_across_a_restart(e2e: World) -> None:
    w = e2e
    async with Subscriber(w.broker.port, f"{w.prefix}/#") as sub:
        async with daemon(w, daemon_config(w, [BOB]), "first") as first:
            w.set_eth("1800")  # 1 WETH x 1800 x 0.8 = 1440 against 1500 of debt: under water
            before = await until_state(w, BOB, "LIQUIDATABLE")
            assert before["actionable"] is True
            code = await w.l2.rpc("eth_getCode", [w.debt, "latest"])
            await w.l2.set_code(w.debt, b"")  # every balanceOf of the debt token now fails

            held = await until_state(w, BOB, "LIQUIDATABLE", "READ_FAILED")
            assert held["health"] == before["health"]  # the last good debt, not zero
            assert held["actionable"] is False
            assert held["held_reasons"] == ["READ_FAILED"]
            assert await first.stop() == 0

        # Restart (Carol is new: her debt has never been read).
        async with daemon(w, daemon_config(w, [BOB, CAROL]), "second"):
            carol = await until_state(w, CAROL, "DEBT_UNKNOWN")
            bob = await state(w, BOB)
            assert bob is not None
            assert bob["health"] is not None
            assert bob["health"] <= before["health"]
            assert {"LIQUIDATABLE", "READ_FAILED"} <= set(bob["flags"])
            assert bob["health_known"] is True
            assert bob["actionable"] is False
            assert "READ_FAILED" in bob["held_reasons"]

            assert carol["health"] is None
            assert carol["health_known"] is False  # unknown, not "no debt"
            assert "READ_FAILED" in carol["flags"]
            assert carol["actionable"] is False
            status, listing = await get_json(w, "/v1/liquidatable")
            assert status == 200
            listed = {a["account"]: a for a in listing["accounts"]}
            assert set(listed) == {BOB, CAROL}  # held, listed, and Carol shown as unknown
            assert listed[CAROL]["health_known"] is False

            # The last good raw value and the failure are in the store.
            _, detail = await get_json(w, f"/v1/accounts/{BOB}")
            debt_line = next(b for b in detail["balances"] if b["chain"] == "l2")
            assert debt_line["raw"] == str(1500 * 10**6)
            assert debt_line["read_failed"] is True

            status, ready = await get_json(w, "/readyz")
            assert status == 503
            assert any(w.debt in reason for reason in ready["reasons"])
            assert ready["read_failures"] == [
                {"chain": "l2", "token": w.debt, "failed": 2, "watched": 2}
            ]
            gauge = f'crossmargin_failed_holdings{{chain="l2",token="{w.debt}"}} 2.0'
            await eventually(lambda: _has(w, gauge), WAIT_S, "failed holdings gauge")
            retained = json.loads(sub.payloads(f"{w.prefix}/accounts/{CAROL}")[-1])
            assert (retained["bucket"], retained["health_known"]) == ("unknown", False)

            # The token works again: the flags clear, Bob is actionable, Carol owes nothing.
            await w.l2.set_code(w.debt, bytes.fromhex(code[2:]))
            back = await until_state(w, BOB, "LIQUIDATABLE", absent=("READ_FAILED",))
            assert back["actionable"] is True
            assert back["health"] == before["health"]
            cleared = await until_state(w, CAROL, absent=("READ_FAILED", "DEBT_UNKNOWN"))
            assert (cleared["health"], cleared["health_known"]) == (None, True)
            await eventually(lambda: _ready(w), WAIT_S, "ready again")

    assert events(sub, w.prefix, "recovered") == []
    assert [e["account"] for e in events(sub, w.prefix, "liquidatable")] == [BOB]


async def _has(w: World, line: str) -> bool:
    return line in (await metrics_text(w)).splitlines()


async def _ready(w: World) -> bool:
    status, _ = await get_json(w, "/readyz")
    return status == 200
