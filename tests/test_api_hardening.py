"""The keeper API against hostile input, on a real aiohttp server over a real store
(``tests.apikit``): exact address matching on both dialects, log lines that cannot be forged,
parser errors as JSON without header values in any log, idle/half-sent connections closed
after the timeout, and the connection cap."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from tests.apikit import TOKEN, running_api
from tests.storekit import DIALECTS, account_address

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ETH_SHORT = {
    "asset": "ETH",
    "chain": "eth",
    "size": "-1.5",
    "entry_price": "3000",
    "mmr_tiers": [{"rate": 0.02}],
}


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _json(response: aiohttp.ClientResponse, status: int) -> Any:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


# ---- addresses are matched exactly ----------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_an_address_with_a_trailing_newline_is_a_400_and_nothing_is_stored(
    http: aiohttp.ClientSession, dialect: str
) -> None:
    address = account_address(1)
    async with running_api(dialect=dialect) as api:
        for suffix in ("%0A", "%0D%0A", "%00", "%20"):
            target = URL(f"{api.url}/v1/positions/{address}{suffix}", encoded=True)
            body = json.dumps({"positions": [ETH_SHORT]})
            async with http.put(target, data=body, headers=AUTH) as response:
                error = await _json(response, 400)
            assert error["error"]["field"] == "address", error
            lookup = URL(f"{api.url}/v1/accounts/{address}{suffix}", encoded=True)
            async with http.get(lookup) as response:
                assert (await _json(response, 400))["error"]["field"] == "address"
        assert await api.store.positions() == []  # no second identity of the account
        assert api.view.changed == []
        async with http.put(
            f"{api.url}/v1/positions/{address}", json={"positions": [ETH_SHORT]}, headers=AUTH
        ) as response:
            assert (await _json(response, 200))["account"] == address
        assert [p.account for p in await api.store.positions()] == [address]
