"""``crossmargin check`` against Anvil, loopback price APIs, PostgreSQL, SQLite and Mosquitto."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from core.redaction import redact_url
from daemon.commands.check import CheckRow, CheckStatus, print_rows, run_checks
from daemon.commands.probes import probe_database
from daemon.config.load import parse_config
from daemon.store.engine import create_store_engine, write_transaction
from daemon.store.migrate import head_revision, migrate
from daemon.store.urls import shown_url
from devnet import AnvilNode, DevChain
from tests.clikit import crossmargin
from tests.faultproxy import FaultMode, FaultProxy, free_port
from tests.pricekit import ACCOUNT, Mode, PriceServer, coinbase
from tests.storekit import fresh_database, postgres_database
from tests.watchkit import chain_entry, token_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

FEED = "MockAggregatorV3"
UPTIME = "SequencerUptimeFeed"
SYSTEM_BROKER = "127.0.0.1:1883"  # the machine's Mosquitto (anonymous, any credentials)
API_KEY = "k3yk3yk3yk3yk3yk3yk3y"  # a key-like path segment: redacted wherever a URL is shown
MQTT_PASSWORD = "s3cret-mqtt-pw"
NO_CODE = "0x000000000000000000000000000000000000dead"


@pytest.fixture
async def exchange() -> AsyncIterator[PriceServer]:
    async with PriceServer() as server:
        server.set("ETH-USD", "3000.10")
        yield server


def config_data(
    chains: list[dict[str, Any]],
    tokens: list[dict[str, Any]],
    sources: list[dict[str, Any]],
    database_url: str,
    mqtt_url: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "chains": chains,
        "tokens": tokens,
        "accounts": [ACCOUNT],
        "assets": [{"symbol": "ETH", "sources": sources}],
        "database_url": database_url,
    }
    if mqtt_url is not None:
        data["mqtt"] = {"url": mqtt_url}
    return data


def by_component(rows: list[CheckRow]) -> dict[str, CheckRow]:
    components = [row.component for row in rows]
    assert len(set(components)) == len(components), components
    return {row.component: row for row in rows}


async def test_all_green_exits_0_with_one_ok_row_per_component(
    tmp_path: Path, chain_a: AnvilNode, dev_a: DevChain, exchange: PriceServer
) -> None:
    token = await dev_a.deploy("MintableERC20", "T", "T", 6)
    now = int(time.time())
    feed = await dev_a.deploy(FEED, 8, "ETH / USD", 0)
    await dev_a.transact(feed, FEED, "setRoundData", 3_000_20000000, now, now)
    uptime = await dev_a.deploy(UPTIME)
    await dev_a.transact(uptime, UPTIME, "setStatusAt", False, 1)
    chain = chain_entry(
        "a", dev_a.chain_id, dev_a.url, ws_url=chain_a.ws_url, sequencer_uptime_feed=uptime
    )
    sources = [
        {"kind": "chainlink", "chain": "a", "address": feed, "name": "feed"},
        coinbase(f"{exchange.url}/{API_KEY}", name="coinbase", headers={"X-Key": API_KEY}),
    ]
    async with postgres_database() as db_url:
        await migrate(db_url)
        data = config_data(
            [chain],
            [token_entry("a", token, decimals=6, symbol="T")],
            sources,
            db_url,
            mqtt_url=f"mqtt://checker:{MQTT_PASSWORD}@{SYSTEM_BROKER}",
        )
        path = tmp_path / "crossmargin.yaml"
        path.write_text(yaml.safe_dump(data))
        code, out, err = await crossmargin("check", "-c", str(path), "--json")

    assert code == 0, out + err
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(set(row) == {"component", "status", "detail"} for row in rows)
    assert [row for row in rows if row["status"] != "ok"] == []
    details = {row["component"]: row["detail"] for row in rows}
    assert list(details) == [
        "config",
        f"chain a rpc {dev_a.url}",
        f"chain a ws {chain_a.ws_url}",
        f"chain a token T {token.lower()}",
        f"chain a sequencer {uptime.lower()}",
        "asset ETH source feed",
        "asset ETH source coinbase",
        f"database {shown_url(db_url)}",
        f"mqtt broker {redact_url(f'mqtt://checker:{MQTT_PASSWORD}@{SYSTEM_BROKER}')}",
    ]
    assert list(details)[-1].startswith(f"mqtt broker mqtt://{SYSTEM_BROKER}/…#")
    assert details["config"] == "1 chain(s), 1 token(s), 1 asset(s), 0 venue(s)"
    assert details[f"chain a rpc {dev_a.url}"].startswith(f"chain id {dev_a.chain_id}, head ")
    assert details[f"chain a token T {token.lower()}"] == "code present, decimals 6 (as configured)"
    assert details[f"chain a sequencer {uptime.lower()}"].startswith("sequencer UP since 1")
    assert details["asset ETH source feed"].startswith("price 3000.2, ")
    assert details["asset ETH source coinbase"].startswith("price 3000.1, ")
    assert details[f"database {shown_url(db_url)}"] == (
        f"reachable, schema at head ({head_revision()})"
    )
    assert API_KEY not in out + err
    assert MQTT_PASSWORD not in out + err


async def test_each_failure_is_its_own_row_and_exits_1(
    dev_a: DevChain, dev_b: DevChain, exchange: PriceServer
) -> None:
    token = await dev_a.deploy("MintableERC20", "T", "T", 6)
    closed = f"http://127.0.0.1:{free_port()}/{API_KEY}"
    chains = [
        chain_entry("a", dev_a.chain_id, closed, dev_a.url, ws_url=f"ws://127.0.0.1:{free_port()}"),
        chain_entry("wrong", 4242, dev_b.url),  # dev_b serves chain id 1002
    ]
    tokens = [
        token_entry("a", token, decimals=18, symbol="T"),  # it has 6
        token_entry("a", NO_CODE, symbol="GHOST"),
    ]
    await exchange.set_mode(Mode.DOWN)
    db_url = f"postgresql+asyncpg://crossmargin:{MQTT_PASSWORD}@127.0.0.1:{free_port()}/cm"
    mqtt_url = f"mqtt://127.0.0.1:{free_port()}"
    config = parse_config(
        config_data(chains, tokens, [coinbase(exchange, name="coinbase")], db_url, mqtt_url)
    )

    rows = await run_checks(config, timeout_s=5)

    row = by_component(rows)
    assert [r.status for r in rows].count(CheckStatus.FAIL) == 8
    shown_closed = redact_url(closed)
    assert API_KEY not in shown_closed
    assert shown_closed.startswith("http://127.0.0.1:")
    assert row[f"chain a rpc {shown_closed}"].status is CheckStatus.FAIL
    assert "connection failed" in row[f"chain a rpc {shown_closed}"].detail
    assert row[f"chain a rpc {dev_a.url}"].status is CheckStatus.OK  # its neighbour is fine
    ws = next(r for r in rows if r.component.startswith("chain a ws "))
    assert ws.status is CheckStatus.FAIL
    assert "connection failed" in ws.detail
    wrong = row[f"chain wrong rpc {dev_b.url}"]
    assert wrong.status is CheckStatus.FAIL
    assert f"chain id {dev_b.chain_id}, expected 4242" in wrong.detail
    mismatch = row[f"chain a token T {token.lower()}"]
    assert mismatch.status is CheckStatus.FAIL
    assert "config says decimals=18, the chain says 6" in mismatch.detail
    ghost = row[f"chain a token GHOST {NO_CODE}"]
    assert (ghost.status, ghost.detail) == (CheckStatus.FAIL, "no contract code at this address")
    price = row["asset ETH source coinbase"]
    assert price.status is CheckStatus.FAIL
    assert price.detail.startswith("fetch_failed: ")
    assert "connection failed" in price.detail
    database = next(r for r in rows if r.component.startswith("database "))
    assert database.status is CheckStatus.FAIL
    assert "unreachable" in database.detail
    broker = next(r for r in rows if r.component.startswith("mqtt broker "))
    assert broker.status is CheckStatus.FAIL

    table = io.StringIO()
    assert print_rows(rows, as_json=False, out=table) == 1
    text = table.getvalue()
    assert API_KEY not in text
    assert MQTT_PASSWORD not in text
    lines = text.splitlines()
    assert lines[0].split() == ["COMPONENT", "STATUS", "DETAIL"]
    status_column = lines[0].index("STATUS")
    for line, r in zip(lines[1:], rows, strict=True):
        assert line.startswith(r.component)
        assert line[status_column:].startswith(f"{r.status} ")


async def stamp(url: str, revision: str) -> None:
    engine = create_store_engine(url)
    try:
        async with write_transaction(engine) as conn:
            await conn.execute(
                sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
async def test_database_behind_warns_and_at_head_is_ok(dialect: str, tmp_path: Path) -> None:
    async with fresh_database(dialect, tmp_path) as url:
        if dialect == "sqlite":
            status, detail = await probe_database(url)
            assert (status, detail) == (
                CheckStatus.WARN,
                "no database file yet: run `crossmargin migrate -c CONFIG`",
            )
            assert not (tmp_path / "store.sqlite3").exists()  # a check creates nothing
            await migrate(url, "base")  # the file now exists, with an empty schema
        status, detail = await probe_database(url)
        assert status is CheckStatus.WARN
        assert detail == "reachable, no schema: run `crossmargin migrate -c CONFIG`"
        await migrate(url)
        await stamp(url, "0000older")  # what a database migrated by an older release holds
        assert await probe_database(url) == (
            CheckStatus.WARN,
            f"reachable, schema at 0000older, this version needs {head_revision()}: "
            "run `crossmargin migrate -c CONFIG`",
        )
        await stamp(url, head_revision())
        assert await probe_database(url) == (
            CheckStatus.OK,
            f"reachable, schema at head ({head_revision()})",
        )


async def test_a_hung_endpoint_costs_one_timeout_and_mqtt_unset_is_skipped(
    tmp_path: Path, dev_a: DevChain
) -> None:
    token = await dev_a.deploy("MintableERC20", "T", "T", 6)
    async with FaultProxy(dev_a.url) as proxy:
        proxy.mode = FaultMode.HANG
        chain = chain_entry("a", dev_a.chain_id, proxy.url, dev_a.url)
        database = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
        await migrate(database)
        sources = [{"kind": "http", "url": f"{proxy.url}/price", "price_path": "p"}]
        data = config_data([chain], [token_entry("a", token)], sources, database)
        rows = await run_checks(parse_config(data), timeout_s=0.5)
        hung_requests = proxy.requests
        proxy.mode = FaultMode.PASS
    # One timeout each, not a retry loop: the hung URL is asked once by the RPC probe and once
    # by the price source probe. (The RPC side of its duration: bench/deadlines.py.)
    assert hung_requests == 2, hung_requests
    row = by_component(rows)
    hung = row[f"chain a rpc {proxy.url}"]
    assert hung.status is CheckStatus.FAIL
    assert "no answer within 0.5s" in hung.detail
    assert row[f"chain a rpc {dev_a.url}"].status is CheckStatus.OK
    source = next(r for r in rows if r.component.startswith("asset ETH source "))
    assert source.status is CheckStatus.FAIL
    # Chain reads go through the URLs that passed: the hung one shows on its own row only.
    assert row[f"chain a token ETH {token.lower()}"].status is CheckStatus.OK
    assert row[f"database {database}"].status is CheckStatus.OK
    assert row["mqtt broker"] == CheckRow(
        "mqtt broker", CheckStatus.SKIPPED, "mqtt.url is not set: MQTT publishing is off"
    )
