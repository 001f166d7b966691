"""``POST /v1/stress`` and ``GET /v1/stress/grid`` on the real API over PostgreSQL, valuing
the book of ``tests.api.apikit`` (the view hands the API a snapshot of its real engine).

ETH −30 % (1,400) by hand: a common account keeps 1,120 + 90 weighted against 1,000 owed;
#5 (owes 1,680) falls to 1,210: newly liquidatable, short 470. The four already under water
are short #30 1,830 − 1,120 = 710, #10 1,810 − 1,120 = 690, #20 1,820 − 1,210 = 610,
#0 1,800 − 1,210 = 590: 3,070 in all. Bad debt (unweighted 1,400 ETH + 100 USDC where held):
#30 430, #10 410, #20 320, #0 300, #5 180 = 1,640.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from daemon.stress_report import grid_document, stress_document
from margin.model import PriceInput
from margin.options import Right
from margin.scenario import ScenarioBook, ScenarioValues
from margin.stress import GRID_MOVES, MAX_SHOCKS, Shocks, run_stress, stress_grid
from tests.api.apikit import ACCOUNTS, LATENCY_RISK_ACCOUNT, running_api
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import World, option
from tests.storekit import account_address

JSON_HEADERS = {"Content-Type": "application/json"}


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(f"{url}/v1/stress", data=raw, headers=JSON_HEADERS) as response:
        return response.status, await response.json()


async def test_an_eth_crash_on_the_live_book() -> None:
    async with running_api() as api, aiohttp.ClientSession() as session:
        cycle = await api.store.queries.last_cycle()
        status, doc = await post(session, api.url, {"price_shocks": {"ETH": -0.3}})
        assert status == 200, doc
        assert doc["accounts"] == ACCOUNTS + 1
        assert (doc["liquidatable_before"], doc["liquidatable_after"]) == (4, 5)
        assert doc["newly_liquidatable_count"] == 1
        [item] = doc["newly_liquidatable"]
        assert item["account"] == account_address(LATENCY_RISK_ACCOUNT)
        assert item["shortfall_after"] == "470.00"
        assert item["health_before"] == pytest.approx(1_690 / 1_680)
        assert item["health_after"] == pytest.approx(1_210 / 1_680)
        assert doc["total_shortfall_after"] == "3070.00"
        assert doc["bad_debt_after"] == "1640.00"
        # the same as the pure pass over the same engine
        expected = stress_document(run_stress(api.engine.snapshot(), Shocks(price={"ETH": -0.3})))
        assert doc == json.loads(json.dumps(expected))
        # read-only: nothing was written, the engine moved nothing
        assert await api.store.queries.last_cycle() == cycle
        assert api.engine.snapshot().prices["ETH"].price == 2_000.0


async def test_no_shocks_changes_nothing_and_needs_no_token() -> None:
    async with running_api() as api, aiohttp.ClientSession() as session:
        status, doc = await post(session, api.url, {})
        assert status == 200, doc
        assert doc["liquidatable_before"] == doc["liquidatable_after"] == 4
        assert doc["newly_liquidatable"] == []
        assert doc["total_shortfall_after"] == "680.00"  # 230 + 210 + 130 + 110
        assert doc["latency_risk_before"] == doc["latency_risk_after"] == 1


async def test_a_volatility_shock_moves_latency_risk_only() -> None:
    """#5 is latency-risky at σ = 100 %: eth's 900 s shock is 2.33 · 1 · sqrt(900 / 31,536,000)
    = 1.24 %, so 1,600 · 0.9876 + 90 = 1,670 < 1,680. At σ = 1 % the shock is 0.012 %:
    1,689.8 ≥ 1,680, no longer at risk."""
    async with running_api() as api, aiohttp.ClientSession() as session:
        _, calm = await post(session, api.url, {})
        status, doc = await post(session, api.url, {"vol_shocks": {"ETH": -0.99}})
        assert status == 200, doc
        assert (doc["latency_risk_before"], doc["latency_risk_after"]) == (1, 0)
        for key in ("liquidatable_after", "total_shortfall_after", "bad_debt_after"):
            assert doc[key] == calm[key]


def with_vols_times(book: oracle.Book, factor: float) -> oracle.Book:
    """``book`` with every option's implied vol multiplied by ``factor``."""
    options = [(*line[:6], line[6] * factor) for line in book.options]
    return replace(book, options=options)


async def test_a_vol_shock_alone_reprices_options_under_the_portfolio_model() -> None:
    """A written ETH straddle (10 calls and 10 puts at 2,000, 30 days, implied vol 60 %) on
    USDC collateral, under ``margin.model: portfolio``. ``vol_shocks: {ETH: 1}`` doubles ETH's
    implied vols and its EWMA volatility (the latency shock; no floor: the scan range stays):
    the options are worth more to the holder the account sold them to, and the grid loses
    more. The collateral lies halfway between what keeps health at 1 before and after, so the
    vol shock alone makes the account liquidatable; health and shortfall, before and after,
    are the independent implementation's (``tests/margin/portfolio_oracle.py``) with every
    vol doubled."""
    world = World(volatility={"ETH": 0.8})
    owner = "0x" + "5" * 40
    lines = [
        option(owner, size=-10, right=Right.CALL, strike=2000, vol=0.6, now=world.now),
        option(owner, size=-10, right=Right.PUT, strike=2000, vol=0.6, now=world.now),
    ]
    setup = world.setup()
    shocked = replace(setup, volatility={"ETH": 0.8 * 2})
    naked = oracle.Book(
        options=[(o.asset, o.chain, o.size, o.right.value, o.strike, o.expiry, 0.6) for o in lines]
    )
    calm, stressed = (
        oracle.evaluate(setup, naked),
        oracle.evaluate(shocked, with_vols_times(naked, 2)),
    )
    # without debt, health = (C + O) / M: 1 at C = M − O
    need_before = calm.maintenance - calm.options_value
    need_after = stressed.maintenance - stressed.options_value
    assert need_after > need_before + 1_000  # the shock matters by more than any rounding
    world.hold(owner, "usdc", float(round((need_before + need_after) / 2)))
    world.options(owner, lines)
    world.engine.recompute_all()
    before = oracle.evaluate(setup, world.book(owner))
    after = oracle.evaluate(shocked, with_vols_times(world.book(owner), 2))
    assert after.health < 1 <= before.health
    slack = 0.01 * (2 + 2 * 3)  # each line and M round to a cent
    async with running_api() as api, aiohttp.ClientSession() as session:
        api.view.engine = world.engine
        status, doc = await post(session, api.url, {"vol_shocks": {"ETH": 1.0}})
    assert status == 200, doc
    assert (doc["accounts"], doc["liquidatable_before"], doc["liquidatable_after"]) == (1, 0, 1)
    [item] = doc["newly_liquidatable"]
    assert item["account"] == owner
    for got, want in ((item["health_before"], before), (item["health_after"], after)):
        tolerance = slack * (1 + want.health) / (want.maintenance + want.liability)
        assert got == pytest.approx(want.health, abs=tolerance)
    assert float(item["shortfall_after"]) == pytest.approx(after.shortfall, abs=slack)
    assert after.shortfall > 100


async def test_the_grid() -> None:
    async with running_api() as api, aiohttp.ClientSession() as session:
        async with session.get(f"{api.url}/v1/stress/grid", params={"asset": "ETH"}) as response:
            assert response.status == 200
            doc = await response.json()
        assert (doc["asset"], doc["accounts"], doc["liquidatable_before"]) == ("ETH", 41, 4)
        moves = [p["move"] for p in doc["points"]]
        assert moves == list(GRID_MOVES)
        by_move = {round(p["move"], 2): p for p in doc["points"]}
        assert by_move[-0.3]["liquidatable"] == 5
        assert by_move[-0.3]["total_shortfall"] == "3070.00"
        assert by_move[-0.3]["bad_debt"] == "1640.00"
        assert by_move[0.0]["liquidatable"] == 4
        # ETH −50 % (1,000): 800 + 90 < 1,000 owed: every debtor is under water.
        assert by_move[-0.5]["liquidatable"] == ACCOUNTS
        assert by_move[-0.5]["newly_liquidatable"] == ACCOUNTS - 4


class GatedBook:
    """A real snapshot whose shocked passes wait for ``gate``, announcing the first in
    ``entered``: a grid over it is provably unfinished until the test opens the gate."""

    def __init__(self, book: ScenarioBook) -> None:
        self.book = book
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.points = 0

    @property
    def accounts(self) -> Sequence[str]:
        return self.book.accounts

    @property
    def assets(self) -> Sequence[str]:
        return self.book.assets

    @property
    def prices(self) -> Mapping[str, PriceInput]:
        return self.book.prices

    @property
    def value_decimals(self) -> int:
        return self.book.value_decimals

    def current(self) -> ScenarioValues:
        return self.book.current()

    def evaluate(
        self, prices: Mapping[str, PriceInput], vol_shocks: Mapping[str, float] | None = None
    ) -> ScenarioValues:
        self.entered.set()
        if not self.gate.wait(timeout=120):
            raise RuntimeError("the test never opened the gate")
        self.points += 1
        return self.book.evaluate(prices, vol_shocks)


async def test_a_stress_request_does_not_wait_behind_a_grid() -> None:
    """The grid's first point is held inside its pass (the gate); a stress request posted
    meanwhile is answered while the grid has finished no point, then the grid completes with
    the same figures as an ungated grid."""
    async with running_api() as api, aiohttp.ClientSession() as session:
        gated = GatedBook(api.engine.snapshot())
        handed: list[ScenarioBook] = [gated]
        api.view.stress_book = lambda: handed.pop() if handed else api.engine.snapshot()  # type: ignore[method-assign]

        async def grid() -> Any:
            url = f"{api.url}/v1/stress/grid"
            async with session.get(url, params={"asset": "ETH"}) as response:
                assert response.status == 200
                return await response.json()

        grid_task = asyncio.create_task(grid())
        try:
            for _ in range(3_000):  # up to a minute for the grid to reach its first pass
                if gated.entered.is_set() or grid_task.done():
                    break
                await asyncio.sleep(0.02)
            assert gated.entered.is_set(), "the grid never started a pass"
            stress_task = asyncio.create_task(
                post(session, api.url, {"price_shocks": {"ETH": -0.3}})
            )
            done, _ = await asyncio.wait({stress_task}, timeout=60)
            assert stress_task in done, "the stress request is still waiting behind the grid"
            status, doc = stress_task.result()
            assert status == 200, doc
            assert (doc["liquidatable_before"], doc["liquidatable_after"]) == (4, 5)
            assert not grid_task.done()
            assert gated.points == 0
        finally:
            gated.gate.set()
        got = await grid_task
        assert len(got["points"]) == len(GRID_MOVES)
        assert gated.points == len(GRID_MOVES)
        expected = grid_document(stress_grid(api.engine.snapshot(), "ETH"))
        assert got == json.loads(json.dumps(expected))


BAD_BODIES = [
    ({"price_shocks": {"DOGE": -0.3}}, "price_shocks.DOGE"),
    ({"vol_shocks": {"DOGE": 0.3}}, "vol_shocks.DOGE"),
    ({"price_shocks": {"ETH": -1.0}}, "price_shocks.ETH"),
    ({"price_shocks": {"ETH": 10.01}}, "price_shocks.ETH"),
    ({"vol_shocks": {"ETH": -0.995}}, "vol_shocks.ETH"),
    ({"price_shocks": {"ETH": "-0.3"}}, "price_shocks.ETH"),
    ({"price_shocks": {"ETH": True}}, "price_shocks.ETH"),
    ({"price_shocks": {"ETH": None}}, "price_shocks.ETH"),
    ({"price_shocks": ["ETH"]}, "price_shocks"),
    ({"price_shock": {"ETH": -0.3}}, "price_shock"),
    ({"price_shocks": {f"A{i}": 0.1 for i in range(MAX_SHOCKS + 1)}}, "price_shocks"),
    (
        {
            "price_shocks": {"ETH": 0.1, "USDC": 0.1},
            "vol_shocks": {f"A{i}": 0.1 for i in range(MAX_SHOCKS - 2)},
        },
        "vol_shocks.A0",  # 64 shocks: allowed in number, but A0 is no asset
    ),
    (b'{"price_shocks": {"ETH": NaN}}', "price_shocks.ETH"),
    (b'{"price_shocks": {"ETH": -0.3}', None),
    (b"[1, 2]", None),
]


async def test_bad_bodies_are_refused_naming_the_field() -> None:
    async with running_api() as api, aiohttp.ClientSession() as session:
        for body, field in BAD_BODIES:
            status, doc = await post(session, api.url, body)
            assert status == 400, (body, doc)
            assert doc["error"]["code"] == "bad_request"
            assert doc["error"].get("field") == field, (body, doc)


async def test_too_many_shocks_in_all() -> None:
    body = {
        "price_shocks": {"ETH": 0.1, "USDC": 0.1},
        "vol_shocks": {"ETH": 0.1, **{f"A{i}": 0.1 for i in range(MAX_SHOCKS - 2)}},
    }
    async with running_api() as api, aiohttp.ClientSession() as session:
        status, doc = await post(session, api.url, body)
        assert status == 400
        assert doc["error"]["field"] == "price_shocks"
        assert "at most 64" in doc["error"]["message"]


async def test_other_refusals() -> None:
    async with running_api() as api, aiohttp.ClientSession() as session:
        async with session.post(f"{api.url}/v1/stress", data=b"{}") as response:
            assert response.status == 415
        grid = f"{api.url}/v1/stress/grid"
        for query in ({}, {"asset": "DOGE"}, {"asset": ["ETH", "USDC"]}):
            async with session.get(grid, params=query) as response:
                doc = await response.json()
                assert response.status == 400, doc
                assert doc["error"]["field"] == "asset"
        # BTC is configured, but the book holds none and has no price for it: it moves nothing.
        _, calm = await post(session, api.url, {})
        status, doc = await post(session, api.url, {"price_shocks": {"BTC": -0.3}})
        assert (status, doc) == (200, calm)
        api.view.engine = None  # the engine has not started
        status, doc = await post(session, api.url, {})
        assert status == 503
        assert doc["error"]["code"] == "not_ready"


async def test_the_spec_documents_both_operations() -> None:
    async with running_api() as api, aiohttp.ClientSession() as session:
        async with session.get(f"{api.url}/openapi.json") as response:
            spec = await response.json()
        assert "post" in spec["paths"]["/v1/stress"]
        assert "get" in spec["paths"]["/v1/stress/grid"]
        schemas = spec["components"]["schemas"]
        assert schemas["StressRequest"]["properties"]["price_shocks"]["maxProperties"] == 64
        assert set(schemas["StressReport"]["required"]) >= {
            "accounts",
            "liquidatable_before",
            "liquidatable_after",
            "newly_liquidatable",
            "total_shortfall_after",
            "bad_debt_after",
        }
