"""HTTP sources on loopback servers shaped like real APIs (no chain): servers down, slow or
answering garbage, API keys in URLs, every preset, Pyth confidence, and the long-running mode
carrying on around a hung source."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from core.domain import PriceStatus
from daemon.config.load import parse_config
from daemon.wiring import open_oracle
from oracles.model import DropReason
from tests.pricekit import Mode, PriceServer, binance, coinbase, generic, oracle_config_data
from tests.watchkit import chain_entry

D = Decimal
TIMEOUT_S = 0.5
PYTH_ID = "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"
SECRET = "SECRETKEY0123456789abcdef"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[PriceServer, PriceServer, PriceServer]]:
    async with PriceServer() as cb, PriceServer() as bn, PriceServer() as gen:
        for server in (cb, bn, gen):
            server.set("ETH-USD", "3000")
            server.set("ETHUSDT", "3000")
            server.set("ETH", "3000")
        yield cb, bn, gen


def http_only_config(sources: list[dict[str, Any]], **oracle: Any) -> Any:
    asset = {"symbol": "ETH", "oracle": oracle, "sources": sources}
    # The chain is never contacted: no source or sequencer feed is on it.
    chain = chain_entry("a", 1001, "http://127.0.0.1:9")
    return parse_config(oracle_config_data([asset], [chain]))


def three(servers: tuple[PriceServer, PriceServer, PriceServer], **extra: Any) -> Any:
    cb, bn, gen = servers
    return http_only_config(
        [
            coinbase(cb, name="coinbase", timeout_s=TIMEOUT_S, **extra),
            binance(bn, name="binance", timeout_s=TIMEOUT_S, **extra),
            generic(gen, name="generic", timeout_s=TIMEOUT_S, **extra),
        ]
    )


@pytest.mark.parametrize(
    ("mode", "reason", "detail"),
    [
        (Mode.DOWN, DropReason.FETCH_FAILED, "connection failed"),
        (Mode.SLOW, DropReason.FETCH_FAILED, "no answer within 0.5s"),
        (Mode.HTML, DropReason.MALFORMED, "not JSON (text/html"),
        (Mode.GARBAGE, DropReason.MALFORMED, "not JSON"),
        (Mode.HTTP500, DropReason.FETCH_FAILED, "HTTP 500"),
        (Mode.SHAPE, DropReason.MALFORMED, "no data.amount in the answer"),
    ],
)
async def test_a_failing_server_is_dropped_with_its_reason_and_stalls_nothing(
    servers: tuple[PriceServer, PriceServer, PriceServer],
    mode: Mode,
    reason: DropReason,
    detail: str,
) -> None:
    cb, _, _ = servers
    async with open_oracle(three(servers)) as oracle:
        assert (await oracle.run_round())["ETH"].status is PriceStatus.OK
        await cb.set_mode(mode)
        asked = cb.requests
        eth = (await oracle.run_round())["ETH"]
        # A slow server costs one timeout, not more: it is asked once per round, and the round
        # ends while its answer is still held back (30 s), dropped as "no answer within 0.5s".
        # The round's duration is measured in bench/deadlines.py, not judged here.
        assert cb.requests - asked == 1
        assert eth.status is PriceStatus.OK
        assert eth.price == D(3000)
        assert eth.dropped == {"coinbase": reason}
        assert sorted(eth.used) == ["binance", "generic"]
        assert detail in oracle.latest_quote("ETH", "coinbase").detail
        await cb.set_mode(Mode.OK)  # and it comes back by itself
        assert sorted((await oracle.run_round())["ETH"].used) == ["binance", "coinbase", "generic"]


async def test_non_numeric_and_absurd_prices_are_malformed(
    servers: tuple[PriceServer, PriceServer, PriceServer],
) -> None:
    cb, _, gen = servers
    config = three(servers)
    async with open_oracle(config) as oracle:
        gen.set("ETH", "NaN")
        cb.set("ETH-USD", "1e999999")
        eth = (await oracle.run_round())["ETH"]
    assert eth.dropped == {
        "generic": DropReason.MALFORMED,  # from the source: not finite
        "coinbase": DropReason.MALFORMED,  # from validity: absurd in size
        "binance": DropReason.NO_QUORUM,
    }
    assert eth.status is PriceStatus.DEGRADED


async def test_api_keys_in_urls_never_reach_details_or_logs(
    servers: tuple[PriceServer, PriceServer, PriceServer], caplog: pytest.LogCaptureFixture
) -> None:
    cb, bn, gen = servers
    config = http_only_config(
        [
            {**coinbase(cb, name="coinbase"), "url": f"{cb.url}/{SECRET}"},
            {**binance(bn, name="binance"), "url": f"{bn.url}/v1?apikey={SECRET}"},
            {**generic(gen, name="generic"), "url": f"{gen.url}/{SECRET}/generic/ETH"},
        ]
    )
    caplog.set_level(logging.DEBUG)
    async with open_oracle(config) as oracle:
        assert (await oracle.run_round())["ETH"].status is PriceStatus.OK  # keys are usable
        for server in servers:
            await server.set_mode(Mode.DOWN)
        eth = (await oracle.run_round())["ETH"]
        details = [oracle.latest_quote("ETH", s).detail for s in ("coinbase", "binance", "generic")]
    assert eth.status is PriceStatus.STALE
    assert all("connection failed" in d for d in details)
    assert not any(SECRET in d for d in details)
    assert details[0].startswith(f"{cb.url}/…#")
    assert SECRET not in caplog.text
    assert "oracle.source_failed" in caplog.text


async def test_timestamps_from_the_answer_and_from_the_date_header(
    servers: tuple[PriceServer, PriceServer, PriceServer],
) -> None:
    cb, _, gen = servers
    t0 = int(time.time()) - 30
    cb.clock = t0  # Date header only
    gen.clock = t0 + 0.25  # "ts" in the body (sub-second)
    async with open_oracle(three(servers)) as oracle:
        await oracle.run_round()
        assert oracle.latest_quote("ETH", "coinbase").observed_at == t0
        assert oracle.latest_quote("ETH", "generic").observed_at == t0 + 0.25


async def test_long_running_mode_keeps_polling_around_a_hung_source(
    servers: tuple[PriceServer, PriceServer, PriceServer],
) -> None:
    cb, bn, gen = servers
    await cb.set_mode(Mode.SLOW, slow_s=60)
    config = three(servers, poll_interval_s=0.05)
    async with open_oracle(config) as oracle:
        seen: list[Any] = []
        async with asyncio.timeout(10):
            rounds = oracle.rounds(interval_s=0.1)
            async for prices in rounds:
                eth = prices["ETH"]
                seen.append(eth)
                if len(seen) == 2:
                    bn.set("ETHUSDT", "3010")
                    gen.set("ETH", "3010")
                if eth.price == D(3010):
                    break
            await rounds.aclose()
    assert len(seen) >= 3
    assert seen[0].price == D(3000)
    assert seen[0].dropped == {"coinbase": DropReason.FETCH_FAILED}
    assert seen[-1].status is PriceStatus.OK
    assert sorted(seen[-1].used) == ["binance", "generic"]


@pytest.mark.parametrize("preset", ["coinbase", "binance", "kraken", "bitstamp"])
async def test_every_preset_reads_its_exchange_shape(
    servers: tuple[PriceServer, PriceServer, PriceServer], preset: str
) -> None:
    cb, bn, _ = servers
    pair = {"coinbase": "ETH-USD", "binance": "ETHUSDT", "kraken": "ETHUSD", "bitstamp": "ethusd"}
    cb.set(pair[preset], "3000.12")
    cb.clock = int(time.time()) - 7
    source = {"kind": "http", "preset": preset, "url": cb.url, "pair": pair[preset], "name": "x"}
    config = http_only_config([source, binance(bn, name="binance")])
    async with open_oracle(config) as oracle:
        await oracle.run_round()
        quote = oracle.latest_quote("ETH", "x")
    assert quote.failure is None, quote.detail
    assert quote.price == D("3000.12")
    assert quote.observed_at == cb.clock


async def test_pyth_confidence_bands_and_too_wide_a_confidence(
    servers: tuple[PriceServer, PriceServer, PriceServer],
) -> None:
    cb, bn, hermes = servers
    hermes.set_pyth(PYTH_ID, price=300_000_000_000, conf=150_000_000, expo=-8)  # 3000 ± 1.5
    pyth = {"kind": "pyth", "url": hermes.url, "feed_id": "0x" + PYTH_ID, "name": "pyth"}
    config = http_only_config(
        [pyth, coinbase(cb, name="coinbase"), binance(bn, name="binance")],
        max_confidence_ratio=0.01,
    )
    async with open_oracle(config) as oracle:
        eth = (await oracle.run_round())["ETH"]
        assert eth.status is PriceStatus.OK
        assert eth.price == D(3000)
        assert (eth.price_low, eth.price_high) == (D("2998.5"), D("3001.5"))
        hermes.set_pyth(PYTH_ID, price=300_000_000_000, conf=4_500_000_000)  # ± 45: 1.5 %
        eth = (await oracle.run_round())["ETH"]
    assert eth.dropped == {"pyth": DropReason.CONFIDENCE_TOO_WIDE}
    assert eth.status is PriceStatus.OK
    assert eth.price_low == eth.price_high == D(3000)
