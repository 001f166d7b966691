"""The keeper API while PostgreSQL is away (a TCP proxy cuts or stalls it): every request
that needs the database answers 503 ``store_unavailable`` with ``Retry-After`` within a
bounded time — never a 500, never a hang — ``/readyz`` names the store, and what comes from
memory keeps answering; once the database is back, everything answers as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from daemon.api.app import ApiServer
from daemon.config.model import ApiConfig
from daemon.metrics import Metrics
from daemon.store.migrate import migrate
from daemon.store.queries import StoreQueries
from daemon.store.writer import HealthStore
from tests.api.apikit import MARKETS, TOKEN, StaticView, chain_statuses, fill, lending_book
from tests.storekit import account_address, postgres_database
from tests.tcpproxy import TcpProxy

ANSWER_BOUND_S = 20.0  # slower than this is a hang (the API's own deadline is 10 s)
STORE_PATHS = (
    "/v1/liquidatable",
    "/v1/accounts?flag=LIQUIDATABLE",
    f"/v1/accounts/{account_address(1)}",
    "/v1/prices",  # no live round in this view: read from the store
)
MEMORY_PATHS = ("/v1/chains", "/healthz", "/metrics")
POSITION = {"asset": "ETH", "chain": "eth", "size": "1", "entry_price": "2000"}
POSITIONS = {"positions": [{**POSITION, "mmr_tiers": [{"rate": 0.01}]}]}


@dataclass
class ProxiedApi:
    url: str
    proxy: TcpProxy


@pytest.fixture
async def proxied_api() -> AsyncIterator[ProxiedApi]:
    async with postgres_database("crossmargin_api") as url:
        await migrate(url)
        direct = sa.make_url(url)
        assert direct.host is not None
        assert direct.port is not None
        async with TcpProxy(direct.host, direct.port) as proxy:
            through = direct.set(port=proxy.port).render_as_string(hide_password=False)
            async with (
                await HealthStore.open(through) as store,
                StoreQueries.for_api(through) as queries,
            ):
                await fill(store, lending_book())
                server = ApiServer(
                    queries=queries,
                    store=store,
                    view=StaticView(chains=chain_statuses()),
                    settings=ApiConfig(listen="127.0.0.1:0", token=SecretStr(TOKEN)),
                    metrics=Metrics(),
                    markets=MARKETS,
                )
                async with server:
                    yield ProxiedApi(server.url, proxy)


async def call(url: str, method: str = "GET", body: object = None) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            async with http.request(
                method, url, headers=headers, data=None if body is None else json.dumps(body)
            ) as response:
                text = await response.text()
                shown = json.loads(text) if response.content_type == "application/json" else text
                return response.status, shown, response.headers
        except TimeoutError:
            raise AssertionError(f"{method} {url} hung beyond {ANSWER_BOUND_S}s") from None


async def assert_store_unavailable(api: ProxiedApi) -> None:
    put = f"{api.url}/v1/positions/{account_address(1)}"
    answers = [await call(api.url + path) for path in STORE_PATHS]
    answers.append(await call(put, "PUT", POSITIONS))
    for status, body, headers in answers:
        assert status == 503, body
        assert body["error"]["code"] == "store_unavailable"
        assert body["error"]["message"].startswith("store unavailable")
        assert int(headers["Retry-After"]) > 0
    status, body, _ = await call(api.url + "/readyz")
    assert status == 503
    assert [r for r in body["reasons"] if r.startswith("store unavailable")], body
    for path in MEMORY_PATHS:
        status, _, _ = await call(api.url + path)
        assert status == 200, path


async def assert_store_answers(api: ProxiedApi) -> None:
    for path in (*STORE_PATHS, "/readyz"):
        status, body, _ = await call(api.url + path)
        assert status == 200, (path, body)


async def test_a_cut_database_is_a_503_with_a_reason(proxied_api: ProxiedApi) -> None:
    await assert_store_answers(proxied_api)
    proxied_api.proxy.cut()
    await assert_store_unavailable(proxied_api)
    await proxied_api.proxy.restore()
    await assert_store_answers(proxied_api)


async def test_a_stalled_database_is_a_503_not_a_hang(proxied_api: ProxiedApi) -> None:
    await assert_store_answers(proxied_api)
    proxied_api.proxy.pause()
    try:
        status, body, headers = await call(proxied_api.url + "/v1/liquidatable")
        assert (status, body["error"]["code"]) == (503, "store_unavailable")
        assert int(headers["Retry-After"]) > 0
        status, _, _ = await call(proxied_api.url + "/v1/chains")
        assert status == 200
    finally:
        proxied_api.proxy.resume()
    await assert_store_answers(proxied_api)
