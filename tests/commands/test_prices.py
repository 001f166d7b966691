"""``crossmargin prices`` as a subprocess against a feed on Anvil and loopback exchanges."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devnet import DevChain
from tests.clikit import crossmargin
from tests.pricekit import Mode, PriceServer, binance, coinbase, oracle_config_data
from tests.watchkit import chain_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

FEED = "MockAggregatorV3"


@pytest.fixture
async def exchanges() -> AsyncIterator[tuple[PriceServer, PriceServer]]:
    async with PriceServer() as cb, PriceServer() as bn:
        cb.set("ETH-USD", "3000.10")
        bn.set("ETHUSDT", "3000.30")
        yield cb, bn


async def write_config(
    tmp_path: Path, dev: DevChain, cb: PriceServer, bn: PriceServer, **chain: Any
) -> Path:
    now = int(time.time())
    feed = await dev.deploy(FEED, 8, "ETH / USD", 0)
    await dev.transact(feed, FEED, "setRoundData", 3_000_20000000, now, now)
    asset = {
        "symbol": "ETH",
        "volatility_floor": 0.5,
        "oracle": {"min_sources": 2},
        "sources": [
            {"kind": "chainlink", "chain": "a", "address": feed, "name": "feed"},
            coinbase(cb, name="coinbase", timeout_s=1),
            binance(bn, name="binance", timeout_s=1),
        ],
    }
    data = oracle_config_data([asset], [chain_entry("a", dev.chain_id, dev.url, **chain)])
    path = tmp_path / "crossmargin.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def test_all_ok_exits_0_with_json_lines(
    tmp_path: Path, dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    uptime = await dev_a.deploy("SequencerUptimeFeed")
    await dev_a.transact(uptime, "SequencerUptimeFeed", "setStatusAt", False, 1)
    path = await write_config(tmp_path, dev_a, *exchanges, sequencer_uptime_feed=uptime)
    code, out, err = await crossmargin("prices", "-c", str(path), "--json")
    assert code == 0, err
    asset, chain = (json.loads(line) for line in out.splitlines())
    assert asset["asset"] == "ETH"
    assert asset["price"] == "3000.2"  # the median, as an exact decimal string
    assert asset["status"] == "OK"
    assert sorted(asset["used"]) == ["binance", "coinbase", "feed"]
    assert asset["dropped"] == {}
    assert asset["spread"] == pytest.approx(0.2 / 3000.1)
    assert asset["volatility"] == 0.5
    assert asset["price_low"] == asset["price_high"] == "3000.2"
    assert isinstance(asset["observed_at"], float)
    assert chain == {
        "round": 1,
        "chain": "a",
        "sequencer": "UP",
        "started_at": 1,
        "detail": "",
    }


async def test_a_price_that_is_not_ok_exits_3_and_says_why(
    tmp_path: Path, dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    cb, bn = exchanges
    path = await write_config(tmp_path, dev_a, cb, bn)
    await cb.set_mode(Mode.DOWN)
    await bn.set_mode(Mode.HTML)
    code, out, _ = await crossmargin(
        "prices", "-c", str(path), "--rounds", "2", "--interval", "0.1"
    )
    assert code == 3
    lines = out.splitlines()
    assert lines[0] == "round 1"
    assert "ETH" in lines[1]
    assert "DEGRADED (no_quorum)" in lines[1]
    assert any(
        "dropped coinbase fetch_failed" in line and "connection failed" in line for line in lines
    )
    assert any("dropped binance malformed" in line and "not JSON" in line for line in lines)
    assert "round 2" in lines


async def test_json_rounds_and_a_bad_config_exits_2(
    tmp_path: Path, dev_a: DevChain, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    path = await write_config(tmp_path, dev_a, *exchanges)
    code, out, _ = await crossmargin(
        "prices", "-c", str(path), "--json", "--rounds", "2", "--interval", "0.05"
    )
    assert code == 0
    assert [json.loads(line)["round"] for line in out.splitlines()] == [1, 2]

    path.write_text(path.read_text().replace("chain: a\n", "chain: nowhere\n", 1))
    code, out, err = await crossmargin("prices", "-c", str(path))
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "crossmargin: config error at assets[0].sources[0].chain: "
        "names no configured chain (got 'nowhere')"
    ]


async def test_a_config_with_assets_only_prices(
    tmp_path: Path, exchanges: tuple[PriceServer, PriceServer]
) -> None:
    """No tokens, no accounts, no venues: ``prices`` needs nothing but ``assets:``."""
    cb, bn = exchanges
    data = {
        "chains": [{"name": "a", "chain_id": 1, "rpc_urls": ["http://127.0.0.1:1"]}],
        "assets": [
            {
                "symbol": "ETH",
                "oracle": {"min_sources": 2},
                "sources": [coinbase(cb, name="coinbase"), binance(bn, name="binance")],
            }
        ],
    }
    path = tmp_path / "crossmargin.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = await crossmargin("prices", "-c", str(path), "--json")
    assert (code, err) == (0, "")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["asset"], row["status"], row["price"]) == ("ETH", "OK", "3000.2")
