"""The portfolio model through the real daemon: ``margin.model: portfolio``, Anvil chains,
loopback exchanges, PostgreSQL; a perp and options posted through the API; the account's
document (money, health, ``risk``) equals the independent implementation
(``tests/margin/portfolio_oracle.py``) on the same inputs."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemonkit import API_TOKEN, BOB, DaemonProcess, World, get_json, running_daemon
from tests.daemonkit import world as make_world
from tests.margin import portfolio_oracle as oracle
from tests.storekit import postgres_database
from tests.waitkit import eventually

EXPIRY = int(time.time()) + 30 * 86_400
POSTED = [
    {"asset": "ETH", "chain": "l2", "size": "-0.5", "entry_price": "2000",
     "mmr_tiers": [{"rate": 0.05}]},
    {"kind": "option", "asset": "ETH", "chain": "l1", "size": "-3", "right": "put",
     "strike": "1900", "expiry": EXPIRY, "implied_vol": 0.6},
    {"kind": "option", "asset": "ETH", "chain": "l2", "size": "0.5", "right": "call",
     "strike": "2200", "expiry": EXPIRY, "implied_vol": 0.7},
]  # fmt: skip
OPTION_CLOCK_S = 60


@pytest.fixture
async def e2e(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, make_world(tmp_path, url) as w:
        yield w


@contextlib.asynccontextmanager
async def portfolio_daemon(w: World) -> AsyncIterator[DaemonProcess]:
    config = w.config()
    config["margin"] = {
        "model": "portfolio",
        "portfolio": {
            "groups": {
                "ETH": {"assets": ["ETH"], "scan_range": 0.15},
                "USD": {"assets": ["USDC"], "scan_range": 0.03},
            },
            "correlations": {"ETH/USD": 0.0},
        },
    }
    async with running_daemon(w, config) as daemon:
        yield daemon


def expected(volatility: dict[str, float], now: float) -> oracle.Answer:
    """Bob's book as the definition sees it: 1 WETH on l1, 1,500 USDC of debt on l2."""
    setup = oracle.Setup(
        groups={"ETH": (["ETH"], 0.15), "USD": (["USDC"], 0.03)},
        correlations={("ETH", "USD"): 0.0},
        prices={"ETH": 2000.0, "USDC": 1.0},
        volatility=volatility,
        floors={"ETH": 0.1, "USDC": 0.01},
        latency={"l1": 1.0, "l2": 1.0},
        now=now,
    )
    book = oracle.Book(
        holdings=[("ETH", "l1", 2000.0), ("USDC", "l2", -1500.0)],
        perps=[("ETH", "l2", -0.5, 2000.0)],
        options=[
            ("ETH", "l1", -3.0, "put", 1900.0, float(EXPIRY), 0.6),
            ("ETH", "l2", 0.5, "call", 2200.0, float(EXPIRY), 0.7),
        ],
    )
    return oracle.evaluate(setup, book)


async def test_perps_and_options_posted_through_the_api_are_margined_as_defined(
    e2e: World,
) -> None:
    w = e2e
    async with portfolio_daemon(w):
        # Spot alone: 1 ETH (ETH group: 15 % → 300) and 1,500 of debt (USD: 3 % → 45),
        # ρ = 0: M = √(300² + 45²) = 303.36 ↑; health = 2,000 / 1,803.36.
        state = await _state(w)
        assert state["maintenance"] == "303.36"
        assert state["health"] == pytest.approx(2000 / 1803.36)
        async with (
            aiohttp.ClientSession() as http,
            http.put(
                f"{w.api}/v1/positions/{BOB}",
                json={"positions": POSTED},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
            answer = await response.json()
        assert len(answer["options"]) == 2

        last: list[dict[str, Any]] = []

        async def margined() -> dict[str, Any] | None:
            s = await _state(w)
            last[:] = [s]
            return s if s["maintenance"] != "303.36" and s["risk"] is not None else None

        state = await eventually(
            margined, what="Bob margined with his perp and options", seen=lambda: last
        )
        _, prices = await get_json(w, "/v1/prices")
        volatility = {p["asset"]: float(p["volatility"]) for p in prices["prices"]}
        now = time.time()
        want = expected(volatility, now - now % OPTION_CLOCK_S)
        assert float(state["collateral_value"]) == pytest.approx(want.collateral, abs=0.01)
        assert float(state["liability_value"]) == pytest.approx(want.liability, abs=0.01)
        assert float(state["unrealized_pnl"]) == pytest.approx(
            want.pnl + want.options_value, abs=0.05
        )
        assert float(state["maintenance"]) == pytest.approx(want.maintenance, abs=0.05)
        assert state["health"] == pytest.approx(want.health, rel=1e-4)
        assert "LIQUIDATABLE" in state["flags"]  # the written put needs more than Bob has
        risk = state["risk"]
        assert risk["model"] == "portfolio"
        assert float(risk["options_value"]) == pytest.approx(want.options_value, abs=0.05)
        assert risk["groups"]["ETH"]["loss"] == pytest.approx(want.loss["ETH"], abs=0.05)
        assert risk["groups"]["USD"]["loss"] == pytest.approx(want.loss["USD"], abs=0.01)
        assert risk["groups"]["ETH"]["delta"] == pytest.approx(want.delta["ETH"], abs=0.05)
        assert risk["groups"]["ETH"]["horizon_s"] == 1
        assert risk["var_99"] == pytest.approx(want.var_99, rel=1e-6, abs=1e-6)


async def _state(w: World) -> dict[str, Any]:
    status, body = await get_json(w, f"/v1/accounts/{BOB}")
    assert status == 200, json.dumps(body)
    return dict(body["state"])
