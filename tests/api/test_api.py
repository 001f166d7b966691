"""The keeper API on a real aiohttp server over a real PostgreSQL store (``tests.api.apikit``):
ranking and filters, account lookups, flags, prices, chains, readiness, metrics, the
positions write path with its bearer token, JSON errors everywhere, and no token in logs."""

from __future__ import annotations

import functools
import json
import logging
import math
import operator
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from pydantic import SecretStr

from chains.rpc_endpoint import EndpointState, EndpointStatus
from core.errors import ConfigError
from core.redaction import redact_url
from daemon.config.load import load_config
from daemon.config.model import ApiConfig
from daemon.documents import price_document
from daemon.metrics import Metrics, flag_counts
from daemon.mqtt.publisher import MqttStats
from daemon.mqtt.relay import RelayStats
from margin.kernel import FLAG_DTYPE
from margin.model import Flag
from tests.api.apikit import (
    ARB_BLOCK,
    CYCLE_AT,
    ETH_BLOCK,
    LATENCY_RISK_ACCOUNT,
    MAX_BODY_BYTES,
    NO_DEBT_ACCOUNT,
    RPC_KEY_URL,
    SHORTFALLS,
    TOKEN,
    UNDERWATER,
    RunningApi,
    asset_price,
    running_api,
)
from tests.storekit import USDC_ARB, WETH, account_address

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ETH_SHORT = {
    "asset": "ETH",
    "chain": "eth",
    "size": "-1.5",
    "entry_price": "3000",
    "mmr_tiers": [{"up_to": 100000, "rate": 0.01}, {"rate": 0.02}],
}
BTC_LONG = {
    "asset": "BTC",
    "chain": "arb",
    "size": 0.25,
    "entry_price": 60000,
    "mmr_tiers": [{"rate": 0.05}],
}


@pytest_asyncio.fixture
async def api() -> AsyncIterator[RunningApi]:
    async with running_api() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared_api() -> AsyncIterator[RunningApi]:
    """One server for the tests that only read or are refused (they write nothing)."""
    async with running_api() as running:
        yield running


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
        return await response.json()


async def put(
    http: aiohttp.ClientSession,
    url: str,
    body: object,
    *,
    status: int,
    headers: dict[str, str] = AUTH,
) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **headers}
    async with http.put(url, data=data, headers=sent) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
        return await response.json()


def accounts_of(page: dict[str, Any]) -> list[str]:
    return [a["account"] for a in page["accounts"]]


def addresses(*indices: int) -> list[str]:
    return [account_address(i) for i in indices]


# ---- keepers --------------------------------------------------------------------------------


async def test_liquidatable_is_ranked_by_shortfall_with_breakdowns(
    api: RunningApi, http: aiohttp.ClientSession
) -> None:
    page = await get(http, f"{api.url}/v1/liquidatable")
    assert accounts_of(page) == addresses(*UNDERWATER)
    assert [a["shortfall"] for a in page["accounts"]] == list(SHORTFALLS)
    assert (page["total"], page["limit"], page["offset"]) == (4, 100, 0)
    assert page["as_of"]["blocks"] == {"eth": ETH_BLOCK, "arb": ARB_BLOCK}
    assert page["as_of"]["at"] == CYCLE_AT
    first, held = page["accounts"][0], page["accounts"][2]
    assert first["flags"] == ["LIQUIDATABLE"]
    assert (first["actionable"], first["held_reasons"]) == (True, [])
    assert 0 < first["health"] < 1
    assert held["flags"] == ["LIQUIDATABLE", "SEQUENCER_DOWN"]
    assert (held["actionable"], held["held_reasons"]) == (False, ["SEQUENCER_DOWN"])
    lines = {(h["chain"], h["token"]): h for h in held["breakdown"]["holdings"]}
    weth, usdc_arb = lines[("eth", WETH)], lines[("arb", USDC_ARB)]
    assert (weth["raw"], weth["amount"], weth["block"]) == (
        str(10**18),
        "1.000000000000000000",
        ETH_BLOCK,
    )
    assert (weth["role"], weth["asset"], weth["weight"]) == ("collateral", "ETH", 0.8)
    assert (weth["value"], weth["weighted_value"], weth["price"]) == ("2000.00", "1600.00", "2000")
    assert usdc_arb["block"] == ARB_BLOCK
    assert usdc_arb["flags"] == ["SEQUENCER_DOWN"]
    assert held["breakdown"]["positions"] == []
    assert Decimal(held["weighted_collateral"]) == Decimal("1690.00")


async def test_liquidatable_filters_and_pages(api: RunningApi, http: aiohttp.ClientSession) -> None:
    base = f"{api.url}/v1/liquidatable"
    page = await get(http, f"{base}?limit=2&offset=1")
    assert accounts_of(page) == addresses(10, 20)
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert accounts_of(await get(http, f"{base}?chain=arb")) == addresses(20, 0)
    assert accounts_of(await get(http, f"{base}?chain=eth")) == addresses(*UNDERWATER)
    assert accounts_of(await get(http, f"{base}?min_shortfall=200")) == addresses(30, 10)
    assert accounts_of(await get(http, f"{base}?min_shortfall=210.00")) == addresses(30, 10)
    actionable = await get(http, f"{base}?actionable=true")
    assert (accounts_of(actionable), actionable["total"]) == (addresses(30, 10), 2)
    assert accounts_of(await get(http, f"{base}?actionable=false")) == addresses(*UNDERWATER)
    none = await get(http, f"{base}?chain=arb&actionable=true")
    assert (none["accounts"], none["total"]) == ([], 0)
    assert (await get(http, f"{base}?offset=100"))["accounts"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=%D9%A5", "limit"),  # an Arabic-Indic five: int() would take it
        ("limit=1&limit=2", "limit"),
        ("offset=-1", "offset"),
        ("offset=99999999999999999999", "offset"),
        ("min_shortfall=-1", "min_shortfall"),
        ("min_shortfall=NaN", "min_shortfall"),
        ("min_shortfall=1e5", "min_shortfall"),
        ("actionable=maybe", "actionable"),
        ("chain=polygon", "chain"),
    ],
)
async def test_bad_parameters_are_json_400s(
    shared_api: RunningApi, http: aiohttp.ClientSession, query: str, field: str
) -> None:
    body = await get(http, f"{shared_api.url}/v1/liquidatable?{query}", status=400)
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["field"] == field
    assert body["error"]["message"]


async def test_account_lookup(api: RunningApi, http: aiohttp.ClientSession) -> None:
    address = account_address(LATENCY_RISK_ACCOUNT)
    shouting = "0x" + address[2:].upper()
    account = await get(http, f"{api.url}/v1/accounts/{shouting}")
    assert account["account"] == address
    state = account["state"]
    assert state["flags"] == ["LATENCY_RISK", "SEQUENCER_DOWN"]
    assert 1 < state["health"] < 1.01
    assert state["health_latency"] < 1
    assert state["shortfall"] == "0.00"
    blocks = {(b["chain"], b["token"]): (b["raw"], b["block"]) for b in account["balances"]}
    assert blocks[("arb", USDC_ARB)] == (str(100 * 10**6), ARB_BLOCK)
    assert blocks[("eth", WETH)] == (str(10**18), ETH_BLOCK)
    assert account["positions"] == []
    no_debt = await get(http, f"{api.url}/v1/accounts/{account_address(NO_DEBT_ACCOUNT)}")
    assert no_debt["state"]["health"] is None  # infinite: nothing owed
    for malformed in ("0x123", "0x" + "g" * 40, "0x" + "a" * 41, address[2:]):
        error = await get(http, f"{api.url}/v1/accounts/{malformed}", status=400)
        assert error["error"]["field"] == "address"
    unknown = await get(http, f"{api.url}/v1/accounts/0x{'ab' * 20}", status=404)
    assert unknown["error"]["code"] == "not_found"


async def test_accounts_by_flag(api: RunningApi, http: aiohttp.ClientSession) -> None:
    base = f"{api.url}/v1/accounts"
    risky = await get(http, f"{base}?flag=LATENCY_RISK")
    assert (accounts_of(risky), risky["flags"]) == (
        addresses(LATENCY_RISK_ACCOUNT),
        ["LATENCY_RISK"],
    )
    assert accounts_of(await get(http, f"{base}?flag=latency_risk")) == accounts_of(risky)
    either = await get(http, f"{base}?flag=LIQUIDATABLE&flag=LATENCY_RISK")
    assert accounts_of(either) == sorted(addresses(*UNDERWATER, LATENCY_RISK_ACCOUNT))
    page = await get(http, f"{base}?flag=SEQUENCER_DOWN&limit=3&offset=2")
    assert len(page["accounts"]) == 3
    assert all("SEQUENCER_DOWN" in a["flags"] for a in page["accounts"])
    for query in ("flag=BOGUS", "flag=NONE", "", "flag=LIQUIDATABLE&limit=0"):
        error = await get(http, f"{base}?{query}", status=400)
        assert error["error"]["field"] in ("flag", "limit")


# ---- operators ------------------------------------------------------------------------------


async def test_prices_from_the_store_then_from_the_view(
    api: RunningApi, http: aiohttp.ClientSession
) -> None:
    stored = (await get(http, f"{api.url}/v1/prices"))["prices"]
    assert [(p["asset"], p["price"], p["status"]) for p in stored] == [
        ("ETH", "2000", "OK"),
        ("USDC", "1.0001", "OK"),
    ]
    assert stored[0]["dropped"] == {"twap": "stale"}
    assert stored[0]["used"] == ["cl", "http"]
    api.view.prices = [price_document(asset_price("ETH", "6E+4", CYCLE_AT))]
    live = (await get(http, f"{api.url}/v1/prices"))["prices"]
    assert [(p["asset"], p["price"]) for p in live] == [("ETH", "60000")]


async def test_chains_show_redacted_endpoints(api: RunningApi, http: aiohttp.ClientSession) -> None:
    chains = (await get(http, f"{api.url}/v1/chains"))["chains"]
    assert [c["name"] for c in chains] == ["eth", "arb"]
    eth, arb = chains
    assert (eth["head"], eth["last_read_block"], eth["lag_s"]) == (ETH_BLOCK + 2, ETH_BLOCK, 3.5)
    assert (eth["sequencer"], arb["sequencer"]) == (None, "DOWN")
    assert eth["endpoints"][0]["url"] == redact_url(RPC_KEY_URL)
    assert eth["endpoints"][0]["url"].startswith("https://eth.rpc.example/…#")
    assert eth["endpoints"][0]["state"] == "healthy"
    text = json.dumps(chains)
    assert RPC_KEY_URL.rsplit("/", 1)[1] not in text


async def test_health_and_readiness(api: RunningApi, http: aiohttp.ClientSession) -> None:
    assert await get(http, f"{api.url}/healthz") == {"status": "ok"}
    api.view.not_ready = ["chain arb: no block read yet", "asset BTC: never priced"]
    waiting = await get(http, f"{api.url}/readyz", status=503)
    assert waiting == {"ready": False, "reasons": api.view.not_ready, "read_failures": []}
    api.view.not_ready = []
    failing = {"chain": "arb", "token": USDC_ARB, "failed": 1, "watched": 40}
    api.view.failing = [failing]  # some reads fail: named, still ready
    ready = await get(http, f"{api.url}/readyz")
    assert ready == {"ready": True, "reasons": [], "read_failures": [failing]}


async def test_metrics_endpoint(api: RunningApi, http: aiohttp.ClientSession) -> None:
    endpoint = EndpointStatus(
        url=redact_url(RPC_KEY_URL),
        state=EndpointState.HEALTHY,
        consecutive_failures=0,
        parked_remaining_s=0.0,
        last_error=None,
        latency_ewma_ms=20.0,
        requests=7,
        errors=2,
        chain_id_verified=True,
    )
    api.metrics.observe_pool("eth", [endpoint])
    api.metrics.observe_oracle([asset_price("ETH", "2000", CYCLE_AT)])
    api.metrics.observe_accounts(
        flag_counts([Flag.LIQUIDATABLE, Flag.LIQUIDATABLE | Flag.STALE_PRICE])
    )
    api.metrics.observe_cycle(0.25)
    api.metrics.observe_latency(4.0)
    await get(http, f"{api.url}/v1/liquidatable")
    async with http.get(f"{api.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    for name in (
        "crossmargin_chain_head_block",
        "crossmargin_chain_lag_seconds",
        "crossmargin_chain_stale",
        "crossmargin_reorgs_total",
        "crossmargin_rpc_requests_total",
        "crossmargin_rpc_errors_total",
        "crossmargin_rpc_latency_seconds",
        "crossmargin_oracle_status",
        "crossmargin_oracle_price",
        "crossmargin_accounts",
        "crossmargin_cycle_seconds",
        "crossmargin_block_to_publish_seconds",
        "crossmargin_mqtt_connected",
        "crossmargin_mqtt_published_total",
        "crossmargin_events_published_total",
        "crossmargin_events_pending",
        "crossmargin_events_oldest_pending_seconds",
        "crossmargin_http_requests_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert (
        f'crossmargin_rpc_requests_total{{chain="eth",endpoint="{redact_url(RPC_KEY_URL)}"}} 7.0'
        in text
    )
    assert 'crossmargin_oracle_status{asset="ETH",status="OK"} 1.0' in text
    assert 'crossmargin_accounts{flag="LIQUIDATABLE"} 2.0' in text
    assert (
        'crossmargin_http_requests_total{method="GET",route="/v1/liquidatable",status="200"}'
        in text
    )


async def test_unknown_routes_methods_and_crashes_are_json(
    api: RunningApi, http: aiohttp.ClientSession
) -> None:
    assert (await get(http, f"{api.url}/nope", status=404))["error"]["code"] == "not_found"
    async with http.post(f"{api.url}/v1/liquidatable") as response:
        assert response.status == 405
        assert response.content_type == "application/json"
        assert "GET" in response.headers["Allow"]
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    api.view.chains = [{"name": object()}]  # not JSON-serialisable: the handler fails
    crash = await get(http, f"{api.url}/v1/chains", status=500)
    assert crash == {"error": {"code": "internal_error", "message": "internal error"}}


# ---- positions ------------------------------------------------------------------------------


async def test_position_writes_need_the_bearer_token(
    api: RunningApi, http: aiohttp.ClientSession
) -> None:
    url = f"{api.url}/v1/positions/{account_address(1)}"
    body = {"positions": [ETH_SHORT]}
    async with http.put(url, json=body) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"]["code"] == "unauthorized"
    malformed = await put(http, url, body, status=401, headers={"Authorization": f"Basic {TOKEN}"})
    assert malformed["error"]["code"] == "unauthorized"
    wrong = await put(http, url, body, status=403, headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong["error"]["code"] == "forbidden"
    assert await api.store.positions() == []
    assert api.view.changed == []


async def test_position_writes_are_disabled_without_a_token(http: aiohttp.ClientSession) -> None:
    async with running_api(token=None) as api:
        url = f"{api.url}/v1/positions/{account_address(1)}"
        refused = await put(http, url, {"positions": [ETH_SHORT]}, status=403)
        assert "writes are disabled" in refused["error"]["message"]
        assert await api.store.positions() == []


def _with(**changes: object) -> dict[str, object]:
    return {"positions": [{**ETH_SHORT, **changes}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_with(asset="DOGE"), "positions[0].asset"),
        (_with(chain="polygon"), "positions[0].chain"),
        (_with(size="NaN"), "positions[0].size"),
        (_with(size="1e400"), "positions[0].size"),
        (_with(size=True), "positions[0].size"),
        (_with(entry_price=-1), "positions[0].entry_price"),
        (_with(mmr_tiers=[{"rate": 0.01, "up_to": 5}]), "positions[0].mmr_tiers"),
        (_with(mmr_tiers=[{"rate": 0.01, "up_to": 5}, {"rate": 0.02, "up_to": 4}, {"rate": 0.03}]),
         "positions[0].mmr_tiers"),
        (_with(mmr_tiers=[{"rate": 0}]), "positions[0].mmr_tiers"),
        (_with(mmr_tiers=[{"rate": 1.5}]), "positions[0].mmr_tiers"),
        (_with(mmr_tiers=[]), "positions[0].mmr_tiers"),
        (_with(leverage=10), "positions[0].leverage"),
        ({"positions": [ETH_SHORT, ETH_SHORT]}, "positions[1].asset"),
        ({"positions": "all"}, "positions"),
        ({}, "positions"),
        (b'{"positions": [{"asset": "ETH", "chain": "eth", "size": NaN, "entry_price": 1, '
         b'"mmr_tiers": [{"rate": 0.1}]}]}', "positions[0].size"),
        (b"{not json", None),
        (b"[]", None),
    ],
)  # fmt: skip
async def test_bad_position_bodies_are_400s(
    shared_api: RunningApi, http: aiohttp.ClientSession, body: object, field: str | None
) -> None:
    url = f"{shared_api.url}/v1/positions/{account_address(1)}"
    error = await put(http, url, body, status=400)
    assert error["error"]["code"] == "bad_request"
    assert error["error"].get("field") == field, error
    assert await shared_api.store.positions() == []
    assert shared_api.view.changed == []


async def test_position_writes_refuse_bad_addresses_media_types_and_large_bodies(
    api: RunningApi, http: aiohttp.ClientSession
) -> None:
    body = {"positions": [ETH_SHORT]}
    error = await put(http, f"{api.url}/v1/positions/0x1234", body, status=400)
    assert error["error"]["field"] == "address"
    url = f"{api.url}/v1/positions/{account_address(1)}"
    async with http.put(
        url, data=b"positions=1", headers={**AUTH, "Content-Type": "text/plain"}
    ) as r:
        assert r.status == 415
        assert (await r.json())["error"]["code"] == "unsupported_media_type"
    huge = {"positions": [{**ETH_SHORT, "asset": "X" * MAX_BODY_BYTES}]}
    too_large = await put(http, url, huge, status=413)
    assert too_large["error"]["code"] == "payload_too_large"
    assert await api.store.positions() == []


async def test_positions_are_replaced_and_the_engine_told(
    api: RunningApi, http: aiohttp.ClientSession
) -> None:
    address = account_address(1)
    url = f"{api.url}/v1/positions/0x{address[2:].upper()}"
    stored = await put(http, url, {"positions": [ETH_SHORT, BTC_LONG]}, status=200)
    assert stored["account"] == address
    assert [(p["asset"], p["chain"], p["size"], p["entry_price"]) for p in stored["positions"]] == [
        ("BTC", "arb", "0.25", "60000"),
        ("ETH", "eth", "-1.5", "3000"),
    ]
    assert stored["positions"][1]["mmr_tiers"] == [{"up_to": 100000, "rate": 0.01}, {"rate": 0.02}]
    in_store = await api.store.positions(address)
    assert [(p.asset, p.size, p.entry_price) for p in in_store] == [
        ("BTC", 0.25, 60000.0),
        ("ETH", -1.5, 3000.0),
    ]
    assert in_store[1].mmr_tiers[0].up_to == 100000
    assert api.view.changed == [address]
    account = await get(http, f"{api.url}/v1/accounts/{address}")
    assert [p["asset"] for p in account["positions"]] == ["BTC", "ETH"]

    replaced = await put(http, url, {"positions": [{**BTC_LONG, "size": "-0.5"}]}, status=200)
    assert [(p["asset"], p["size"]) for p in replaced["positions"]] == [("BTC", "-0.5")]
    assert [p.asset for p in await api.store.positions(address)] == ["BTC"]
    assert (await put(http, url, {"positions": []}, status=200))["positions"] == []
    assert await api.store.positions() == []
    assert api.view.changed == [address] * 3


async def test_the_token_never_reaches_the_logs(
    api: RunningApi, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{api.url}/v1/positions/{account_address(2)}"
    wrong = "wrong-token-" + "z" * 20
    await put(http, url, {"positions": [ETH_SHORT]}, status=200)
    await put(
        http,
        url,
        {"positions": [ETH_SHORT]},
        status=403,
        headers={"Authorization": f"Bearer {wrong}"},
    )
    await put(http, url, b"{not json", status=400)
    api.view.chains = [{"name": object()}]
    await get(http, f"{api.url}/v1/chains", status=500)  # a traceback is logged
    assert "http_request method=PUT route=/v1/positions/{address}" in caplog.text
    assert "positions_replaced" in caplog.text
    assert "api_unhandled_error" in caplog.text
    assert TOKEN not in caplog.text
    assert wrong not in caplog.text


# ---- config and metrics units ---------------------------------------------------------------


def test_api_config(tmp_path: Path) -> None:
    assert ApiConfig().listen == "127.0.0.1:8080"
    assert (ApiConfig().host, ApiConfig().port, ApiConfig().token) == ("127.0.0.1", 8080, None)
    assert (ApiConfig(listen="[::1]:9000").host, ApiConfig(listen="[::1]:9000").port) == (
        "::1",
        9000,
    )
    assert ApiConfig().max_body_bytes == 1_048_576
    config = tmp_path / "crossmargin.yaml"
    base = (
        "chains: [{name: eth, chain_id: 1, rpc_urls: ['http://127.0.0.1:8545']}]\n"
        "tokens: [{chain: eth, address: '0x00000000000000000000000000000000000000aa', "
        "asset: ETH, role: collateral, weight: 0.8}]\n"
        "accounts: ['0x0000000000000000000000000000000000000001']\n"
    )
    config.write_text(base + "api: {listen: '0.0.0.0:9090', token: '${CROSSMARGIN_API_TOKEN}'}\n")
    loaded = load_config(config, env={"CROSSMARGIN_API_TOKEN": TOKEN})
    assert loaded.api.port == 9090
    assert isinstance(loaded.api.token, SecretStr)
    assert loaded.api.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(loaded)
    for bad, key in (("listen: '::1:80'", "api.listen"), ("listen: 'h:99999'", "api.listen")):
        config.write_text(base + f"api: {{{bad}}}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert caught.value.key == key
    config.write_text(base + "api: {token: '${CROSSMARGIN_API_TOKEN:-}'}\n")
    assert load_config(config, env={}).api.token is None  # unset: writes are disabled
    config.write_text(base + "api: {token: short-secret}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.key == "api.token"
    assert "short-secret" not in str(caught.value)


def test_flag_counts_of_the_engine_column_count_every_single_flag() -> None:
    every = int(functools.reduce(operator.or_, Flag))
    combos = list(range(every + 1))  # every combination of the flags
    column = np.array(combos, dtype=FLAG_DTYPE)  # what the daemon passes: the engine's column
    expected = {flag: sum(1 for c in combos if Flag(c) & flag) for flag in Flag if flag}
    assert flag_counts(column) == expected
    assert flag_counts(Flag(c) for c in combos) == expected
    assert all(count == (every + 1) // 2 for count in expected.values())  # each bit in half


def test_metrics_turn_running_totals_into_counters() -> None:
    metrics = Metrics()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    for requests in (5, 9, 3):  # 3 < 9: the pool restarted, its 3 requests are new
        metrics.observe_mqtt(
            MqttStats(
                enabled=True,
                connected=True,
                published=requests,
                events=0,
                reconnects=0,
                retained_topics=0,
                last_error=None,
            )
        )
    assert sample("crossmargin_mqtt_published_total") == 12
    assert sample("crossmargin_mqtt_connected") == 1
    for published in (40, 70):
        metrics.observe_events(
            RelayStats(
                published=published, marked=0, pending=3, oldest_pending_s=1.5, last_error=None
            )
        )
    assert sample("crossmargin_events_published_total") == 70
    assert sample("crossmargin_events_pending") == 3
    assert sample("crossmargin_events_oldest_pending_seconds") == 1.5
    assert sample("crossmargin_accounts", flag="LATENCY_RISK") == 0
    metrics.observe_oracle([asset_price("BTC", "60000.5", 1.0)])
    assert sample("crossmargin_oracle_price", asset="BTC") == 60000.5
    assert sample("crossmargin_oracle_status", asset="BTC", status="OK") == 1
    assert sample("crossmargin_oracle_status", asset="BTC", status="TRIPPED") == 0
    counts = flag_counts([Flag.LIQUIDATABLE | Flag.STALE_CHAIN, Flag.STALE_CHAIN, Flag.NONE])
    assert (counts[Flag.STALE_CHAIN], counts[Flag.LIQUIDATABLE], counts[Flag.ORACLE_TRIPPED]) == (
        2,
        1,
        0,
    )
    metrics.observe_latency(-1.0)  # clock skew: counted as 0, not dropped
    assert sample("crossmargin_block_to_publish_seconds_count") == 1
    assert math.isclose(sample("crossmargin_block_to_publish_seconds_sum") or 0.0, 0.0)
