"""Options through ``PUT /v1/positions/{a}`` (``kind: option``): stored beside perps, replaced
with them, shown by the account detail; bad option fields are 400s naming the field."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from margin.options import Right
from tests.api.apikit import TOKEN, RunningApi, running_api
from tests.storekit import account_address

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
EXPIRY = int(time.time()) + 30 * 86_400
CALL = {
    "kind": "option",
    "asset": "ETH",
    "chain": "eth",
    "size": "-2",
    "right": "call",
    "strike": "3500",
    "expiry": EXPIRY,
    "implied_vol": 0.65,
}
PERP = {
    "asset": "ETH",
    "chain": "eth",
    "size": 1,
    "entry_price": 3000,
    "mmr_tiers": [{"rate": 0.02}],
}


@pytest_asyncio.fixture
async def api() -> AsyncIterator[RunningApi]:
    async with running_api() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared_api() -> AsyncIterator[RunningApi]:
    """One server for the refused writes (they store nothing)."""
    async with running_api() as running:
        yield running


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def put(http: aiohttp.ClientSession, url: str, body: object, status: int) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.put(url, data=data, headers=AUTH) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def test_options_are_stored_beside_perps_and_replaced_with_them(
    api: RunningApi, http: aiohttp.ClientSession
) -> None:
    account = account_address(1)
    url = f"{api.url}/v1/positions/{account}"
    put_ = {**CALL, "right": "put", "strike": 2500, "size": 3}
    answer = await put(http, url, {"positions": [PERP, CALL, put_]}, status=200)
    assert [p["asset"] for p in answer["positions"]] == ["ETH"]
    assert answer["options"] == [
        {
            "kind": "option",
            "asset": "ETH",
            "chain": "eth",
            "size": "-2",
            "right": "call",
            "strike": "3500",
            "expiry": EXPIRY,
            "implied_vol": "0.65",
        },
        {
            "kind": "option",
            "asset": "ETH",
            "chain": "eth",
            "size": "3",
            "right": "put",
            "strike": "2500",
            "expiry": EXPIRY,
            "implied_vol": "0.65",
        },
    ]
    stored = await api.store.options(account)
    assert [(o.right, o.strike, o.size) for o in stored] == [
        (Right.CALL, 3500.0, -2.0),
        (Right.PUT, 2500.0, 3.0),
    ]
    assert api.view.changed == [account]
    async with http.get(f"{api.url}/v1/accounts/{account}") as response:
        detail = await response.json()
    assert detail["options"] == answer["options"]
    # a PUT is the whole set: only the perp is left, then nothing
    answer = await put(http, url, {"positions": [PERP]}, status=200)
    assert answer["options"] == []
    assert await api.store.options(account) == []
    await put(http, url, {"positions": []}, status=200)
    assert await api.store.positions(account) == []


def _option(**changes: object) -> dict[str, object]:
    return {"positions": [{**CALL, **changes}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_option(strike=0), "positions[0].strike"),
        (_option(strike="-5"), "positions[0].strike"),
        (_option(expiry=int(time.time()) - 60), "positions[0].expiry"),
        (_option(expiry="soon"), "positions[0].expiry"),
        (_option(implied_vol=0), "positions[0].implied_vol"),
        (_option(implied_vol="NaN"), "positions[0].implied_vol"),
        (_option(implied_vol=-0.5), "positions[0].implied_vol"),
        (_option(implied_vol=50), "positions[0].implied_vol"),
        (_option(right="straddle"), "positions[0].right"),
        (_option(kind="future"), "positions[0].kind"),
        (_option(asset="DOGE"), "positions[0].asset"),
        (_option(size="lots"), "positions[0].size"),
        (_option(entry_price=1), "positions[0].entry_price"),
        ({"positions": [CALL, CALL]}, "positions[1]"),
        (
            f'{{"positions": [{json.dumps({**CALL, "implied_vol": 0.5})[:-1]}, '
            f'"implied_vol": NaN}}]}}'.replace(', "implied_vol": 0.5', "").encode(),
            "positions[0].implied_vol",
        ),
    ],
)
async def test_bad_option_fields_are_400s_naming_them(
    shared_api: RunningApi, http: aiohttp.ClientSession, body: object, field: str
) -> None:
    url = f"{shared_api.url}/v1/positions/{account_address(2)}"
    error = await put(http, url, body, status=400)
    assert error["error"]["code"] == "bad_request"
    assert error["error"].get("field") == field, error
    assert await shared_api.store.options() == []
