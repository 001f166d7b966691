"""``POST /v1/stress`` through the real daemon process (Anvil chains, loopback exchanges,
PostgreSQL, Mosquitto), checked against a plain loop in this test over the balances it minted,
the perps it posted through the API and the prices it set — no code shared with ``margin``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemonkit import (
    API_TOKEN,
    BOB,
    DaemonProcess,
    World,
    eventually,
    get_json,
    running_daemon,
    world,
)
from tests.storekit import postgres_database

ETH_WEIGHT = Decimal("0.8")
CENT = Decimal("0.01")
ACCOUNTS = 12
PRICE = Decimal(2000)
SHOCK = Decimal("-0.25")


@dataclass(frozen=True)
class Perp:
    size: Decimal
    entry: Decimal
    mmr: Decimal


@dataclass(frozen=True)
class Book:
    """What this test put on the chains and posted: ETH on l1, USDC debt on l2, perps."""

    eth: dict[str, Decimal]
    debt: dict[str, Decimal]
    perps: dict[str, Perp]


def address(i: int) -> str:
    return f"0x{0x5E55 + i:040x}"


def the_book() -> Book:
    """Account i holds 1–3 ETH and owes (1,000 + 60 i) USDC per ETH: health 1.6 down to
    below 1 at ETH 2,000 (#10 sits at exactly 1); three of them trade perps."""
    eth = {address(i): Decimal(1 + i % 3) for i in range(ACCOUNTS)}
    debt = {a: eth[a] * (1_000 + 60 * i) for i, a in enumerate(eth)}
    eth[BOB], debt[BOB] = Decimal(1), Decimal(1_500)  # the world's own account
    perps = {
        address(1): Perp(Decimal(2), Decimal(2_000), Decimal("0.05")),
        address(2): Perp(Decimal(-1), Decimal(1_800), Decimal("0.1")),
        address(3): Perp(Decimal("0.5"), Decimal(2_100), Decimal("0.02")),
    }
    return Book(eth=eth, debt=debt, perps=perps)


def floor(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_FLOOR)


def ceil(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class Valued:
    health: float
    shortfall: Decimal
    bad_debt: Decimal


def value(book: Book, account: str, price: Decimal) -> Valued:
    """DESIGN §3 by hand: collateral rounded down, debt and requirements up."""
    collateral = floor(book.eth.get(account, Decimal(0)) * price)
    weighted = floor(collateral * ETH_WEIGHT)
    owed = ceil(book.debt.get(account, Decimal(0)))
    perp = book.perps.get(account)
    pnl = maintenance = Decimal(0)
    if perp is not None:
        pnl = floor(perp.size * (price - perp.entry))
        maintenance = ceil(abs(perp.size) * price * perp.mmr)
    equity, requirement = weighted + pnl, owed + maintenance
    health = float("inf") if not requirement else float(max(equity, Decimal(0)) / requirement)
    return Valued(
        health=health,
        shortfall=max(Decimal(0), requirement - equity),
        bad_debt=max(Decimal(0), owed - (collateral + pnl)),
    )


def expected_report(book: Book, shock: Decimal) -> dict[str, Any]:
    accounts = sorted(book.eth)
    before = {a: value(book, a, PRICE) for a in accounts}
    after = {a: value(book, a, PRICE * (1 + shock)) for a in accounts}
    newly = [a for a in accounts if after[a].health < 1 <= before[a].health]
    newly.sort(key=lambda a: -after[a].shortfall)
    return {
        "accounts": len(accounts),
        "liquidatable_before": sum(v.health < 1 for v in before.values()),
        "liquidatable_after": sum(v.health < 1 for v in after.values()),
        "newly": [(a, str(after[a].shortfall)) for a in newly],
        "health_after": {a: after[a].health for a in newly},
        "total_shortfall_after": str(sum(v.shortfall for v in after.values())),
        "bad_debt_after": str(sum(v.bad_debt for v in after.values())),
    }


@pytest.fixture
async def stressed_world(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        book = the_book()
        others = [a for a in book.eth if a != BOB]
        await w.l1.mint_many(w.weth, [(a, int(book.eth[a]) * 10**18) for a in others])
        await w.l2.mint_many(w.debt, [(a, int(book.debt[a]) * 10**6) for a in others])
        yield w


@contextlib.asynccontextmanager
async def daemon(w: World, accounts: list[str]) -> AsyncIterator[DaemonProcess]:
    config = w.config()
    config["accounts"] = accounts
    async with running_daemon(w, config, name="stress") as process:
        yield process


async def post_positions(w: World, book: Book) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for account, perp in book.perps.items():
            body = {
                "positions": [
                    {
                        "asset": "ETH",
                        "chain": "l1",
                        "size": str(perp.size),
                        "entry_price": str(perp.entry),
                        "mmr_tiers": [{"rate": float(perp.mmr)}],
                    }
                ]
            }
            async with session.put(f"{w.api}/v1/positions/{account}", json=body) as response:
                assert response.status == 200, await response.text()


async def stress(w: World, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{w.api}/v1/stress", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        doc: dict[str, Any] = await response.json()
        return doc


async def test_stress_matches_an_independent_loop(stressed_world: World) -> None:
    w = stressed_world
    book = the_book()
    async with daemon(w, sorted(book.eth)) as process:
        await post_positions(w, book)

        async def perps_valued() -> bool:
            for account in book.perps:
                status, body = await get_json(w, f"/v1/accounts/{account}")
                state = body.get("state") if status == 200 else None
                if state is None or state["maintenance"] == "0.00":
                    return False
            return True

        await eventually(perps_valued, what="the posted perps valued by the engine")
        calm = await stress(w, {})
        crash = await stress(w, {"price_shocks": {"ETH": float(SHOCK)}, "vol_shocks": {"ETH": 1}})
        again = await stress(w, {"price_shocks": {"ETH": float(SHOCK)}, "vol_shocks": {"ETH": 1}})
        _, listed = await get_json(w, "/v1/liquidatable")
        assert process.proc is not None
        assert process.proc.returncode is None, process.log()

    still = expected_report(book, Decimal(0))
    assert calm["liquidatable_before"] == calm["liquidatable_after"]
    assert calm["liquidatable_before"] == still["liquidatable_before"]
    assert calm["total_shortfall_after"] == still["total_shortfall_after"]
    assert listed["total"] == still["liquidatable_before"]

    want = expected_report(book, SHOCK)
    assert crash["accounts"] == want["accounts"] == ACCOUNTS + 1
    assert crash["liquidatable_before"] == want["liquidatable_before"]
    assert crash["liquidatable_after"] == want["liquidatable_after"]
    got = [(a["account"], a["shortfall_after"]) for a in crash["newly_liquidatable"]]
    assert sorted(got) == sorted(want["newly"])  # Bob and #5 tie at 300: any order
    shortfalls = [Decimal(s) for _, s in got]
    assert shortfalls == sorted(shortfalls, reverse=True)
    assert len(got) >= 5  # the crash does something worth checking
    for item in crash["newly_liquidatable"]:
        assert item["health_after"] == pytest.approx(want["health_after"][item["account"]])
    assert crash["total_shortfall_after"] == want["total_shortfall_after"]
    assert crash["bad_debt_after"] == want["bad_debt_after"]
    assert Decimal(crash["bad_debt_after"]) > 0
    assert again == crash  # read-only: the same book gives the same answer
