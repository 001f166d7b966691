"""``correlation_source: ewma`` through the real daemon: loopback exchanges move ETH and USDC
together, the estimated ρ(ETH, USD) rises from the static 0 towards 1 (``/metrics``), and Bob's
portfolio requirement follows it: it equals the independent implementation
(``tests/margin/portfolio_oracle.py``) at the ρ the daemon reports, near its ρ = 1 value."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.config.types import MAX_VOLATILITY
from oracles.correlation import WARMUP_SLACK
from tests.daemonkit import BOB, DaemonProcess, World, get_json, running_daemon
from tests.daemonkit import world as make_world
from tests.margin import portfolio_oracle as oracle
from tests.storekit import postgres_database
from tests.waitkit import eventually

STEP = 1.0001  # both prices move up 0.01 % per step …
STEP_EVERY_S = 0.4  # … this often: several steps per sampled return
SAMPLE_S = 2.0
WARMUP_RETURNS = 5
VOLATILITY_FLOOR = MAX_VOLATILITY
"""Above what the small steps estimate (~1 annualized): volatility stays at the floor, so M
depends on the prices and ρ alone. Above its floor the EWMA volatility keeps decaying while
prices stand still, and M (rounded to cents) would drift between two reads or a restart."""
PAIR = "ETH/USD"


@pytest.fixture
async def e2e(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, make_world(tmp_path, url) as w:
        yield w


@contextlib.asynccontextmanager
async def ewma_daemon(w: World) -> AsyncIterator[DaemonProcess]:
    config = w.config()
    for asset in config["assets"]:
        asset["volatility_floor"] = VOLATILITY_FLOOR
    config["margin"] = {
        "model": "portfolio",
        "portfolio": {
            "groups": {
                "ETH": {"assets": ["ETH"], "scan_range": 0.15},
                "USD": {"assets": ["USDC"], "scan_range": 0.03},
            },
            "correlations": {PAIR: 0.0},
            "correlation_source": "ewma",
            "correlation_warmup_returns": WARMUP_RETURNS,
            "correlation_sample_s": SAMPLE_S,
        },
    }
    async with running_daemon(w, config) as daemon:
        yield daemon


def requirement(rho: float, prices: dict[str, float], volatility: dict[str, float]) -> float:
    """Bob's M by the definition: 1 WETH on l1, 1,500 USDC of debt on l2."""
    setup = oracle.Setup(
        groups={"ETH": (["ETH"], 0.15), "USD": (["USDC"], 0.03)},
        correlations={("ETH", "USD"): rho},
        prices=prices,
        volatility=volatility,
        floors={"ETH": VOLATILITY_FLOOR, "USDC": VOLATILITY_FLOOR},
        latency={"l1": 1.0, "l2": 1.0},
    )
    book = oracle.Book(
        holdings=[("ETH", "l1", prices["ETH"]), ("USDC", "l2", -1500.0 * prices["USDC"])]
    )
    return oracle.evaluate(setup, book).maintenance


async def test_moving_together_lifts_the_requirement_towards_rho_one(e2e: World) -> None:
    w = e2e
    async with ewma_daemon(w) as daemon:
        # Cold: the static ρ = 0 holds, M = √(300² + 45²) = 303.36 ↑.
        assert (await _metrics(w))["estimated"] == 0
        assert (await _state(w))["maintenance"] == "303.36"

        moved = {"ETH": 2000.0, "USDC": 1.0}

        async def drift() -> None:
            while True:
                await asyncio.sleep(STEP_EVERY_S)
                for asset in moved:
                    moved[asset] *= STEP
                w.set_eth(f"{moved['ETH']:.6f}")
                w.prices.set("USDC", f"{moved['USDC']:.8f}")

        last: list[Any] = []

        async def warm() -> dict[str, float] | None:
            m = await _metrics(w)
            last[:] = [m]
            return m if m["estimated"] == 1 and m["rho"] >= 0.9 else None

        mover = asyncio.create_task(drift())
        try:
            await eventually(warm, what=f"{PAIR} estimated near 1", seen=lambda: last)
        finally:
            mover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mover
        final = {a: float(f"{p:.6f}" if a == "ETH" else f"{p:.8f}") for a, p in moved.items()}

        async def margined() -> tuple[float, float, float, float] | None:
            m = await _metrics(w)
            state = await _state(w)
            _, body = await get_json(w, "/v1/prices")
            prices = {p["asset"]: float(p["price"]) for p in body["prices"]}
            volatility = {p["asset"]: float(p["volatility"]) for p in body["prices"]}
            got = float(state["maintenance"])
            at_rho = requirement(m["rho"], prices, volatility)
            seen = (got, at_rho, m["rho"], prices == final)
            last[:] = [seen]
            if prices != final or abs(got - at_rho) > 0.05:
                return None
            return (
                got,
                at_rho,
                requirement(1.0, prices, volatility),
                requirement(0.0, prices, volatility),
            )

        got, at_rho, at_one, at_zero = await eventually(
            margined, what="Bob's M at the reported ρ", seen=lambda: last
        )
        assert got == pytest.approx(at_rho, abs=0.05)
        # most of the way from the static ρ = 0 to the ρ = 1 value
        assert got - at_zero >= 0.8 * (at_one - at_zero)
        assert got <= at_one + 0.01

        # The final prices' own return may still be unsampled (a sample every SAMPLE_S): it
        # moves ρ a hair, and M with it by a cent at a rounding boundary. Wait for one more
        # sample (the Kish count grows with each), after which the prices stand still and a
        # return of zero leaves ρ where it is; then take the ρ and M the restart must keep.
        counted = (await _metrics(w))["returns"]

        async def settled() -> tuple[float, float] | None:
            m = await _metrics(w)
            state = await _state(w)
            _, body = await get_json(w, "/v1/prices")
            volatility = {p["asset"]: float(p["volatility"]) for p in body["prices"]}
            last[:] = [m, state["maintenance"], counted]
            if m["returns"] <= counted:
                return None
            if abs(float(state["maintenance"]) - requirement(m["rho"], final, volatility)) > 0.05:
                return None
            return m["rho"], float(state["maintenance"])

        rho, got = await eventually(
            settled, what="a sample taken after the final prices", seen=lambda: last
        )
        assert await daemon.stop() == 0  # the estimator is saved at shutdown

    # Restarted with the prices standing still: a fresh estimator would have no return at all
    # (static ρ = 0); the resumed one carries on with the same ρ and M.
    async with ewma_daemon(w):

        async def resumed() -> dict[str, float] | None:
            m = await _metrics(w)
            last[:] = [m, (await _state(w))["maintenance"]]
            # M within a cent: the engine may not have re-valued Bob at the settled ρ before the
            # stop (a hair of ρ); a fresh estimator would give the static 303.36
            if m["estimated"] != 1 or abs(float(last[1]) - got) > 0.011:
                return None
            return m

        m = await eventually(
            resumed, what="the estimate resumed after a restart", seen=lambda: last
        )
        assert m["rho"] == rho
        # Kish's count of N decayed returns is a hair under N (4.9999996 for 5 seen once):
        # warm by the estimator's own rule, N within its relative slack
        assert m["returns"] >= WARMUP_RETURNS * (1 - WARMUP_SLACK)


async def _metrics(w: World) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(w.api + "/metrics") as response:
        text = await response.text()
    out = {}
    for key, name in (
        ("rho", "crossmargin_correlation"),
        ("estimated", "crossmargin_correlation_estimated"),
        ("returns", "crossmargin_correlation_returns"),
    ):
        found = re.search(rf'^{name}{{pair="{PAIR}"}} (\S+)$', text, re.MULTILINE)
        assert found is not None, f"{name} missing from /metrics"
        out[key] = float(found.group(1))
    return out


async def _state(w: World) -> dict[str, Any]:
    status, body = await get_json(w, f"/v1/accounts/{BOB}")
    assert status == 200, json.dumps(body)
    return dict(body["state"])
