"""``correlation_source: ewma`` in the oracle service: HTTP APIs on loopback, rounds at explicit
times; every round feeds the estimator its fresh prices, a held asset's pairs skip the round,
and the service hands out the ρ the engine should use."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from daemon.config.load import parse_config
from daemon.wiring import open_oracle
from oracles.correlation import EwmaCorrelation
from tests.pricekit import PriceServer, generic, oracle_config_data
from tests.watchkit import chain_entry

T0 = 1_800_000_000


@pytest.fixture
async def exchange() -> AsyncIterator[PriceServer]:
    async with PriceServer() as server:
        yield server


def config(server: PriceServer, **portfolio: Any) -> Any:
    assets = [
        {
            "symbol": symbol,
            "oracle": {"min_sources": 1, "max_jump": 0.5},
            "sources": [generic(server, symbol, max_age_s=30, name="api")],
        }
        for symbol in ("ETH", "stETH", "BTC")
    ]
    margin = {
        "model": "portfolio",
        "portfolio": {
            "groups": {"ETH": {"assets": ["ETH", "stETH"], "scan_range": 0.15}},
            "correlations": {"ETH/BTC": 0.3},
            "default_correlation": 0.9,
            **portfolio,
        },
    }
    chains = [chain_entry("a", 1, "http://127.0.0.1:1")]
    return parse_config(oracle_config_data(assets, chains, margin=margin))


async def test_rounds_feed_the_estimator_and_held_assets_skip(
    exchange: PriceServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {
        "correlation_source": "ewma",
        "correlation_warmup_returns": 4,
        "correlation_sample_s": 30,
    }
    reference = EwmaCorrelation(assets=("ETH", "BTC"))  # ETH represents its group
    async with open_oracle(config(exchange, **settings)) as oracle:
        assert oracle.correlations() == {("ETH", "BTC"): 0.3}  # static until warm
        for i in range(8):
            at = T0 + 60 * i
            eth, btc = Decimal(2000) * Decimal("1.01") ** i, Decimal(60_000) * Decimal("1.02") ** i
            exchange.clock = at
            exchange.set("ETH", eth)
            exchange.set("stETH", eth * Decimal("0.999") ** i)  # not ETH's representative
            exchange.set("BTC", btc)
            if i == 5:
                exchange.clock = at - 600  # every quote too old: every price held
            with caplog.at_level(logging.INFO, logger="oracles.service"):
                prices = await oracle.run_round(at + 1)
            if i == 5:
                assert prices["BTC"].held
                continue
            reference.update(float(eth), float(btc), at + 1)
        [estimate] = oracle.correlation_estimates()
        assert oracle.correlation is not None
        assert oracle.correlation.state["ETH/BTC"] == reference.state
        assert estimate.estimated  # 6 returns (one round held) ≥ 4
        assert estimate.correlation == 1.0  # both up every step: ρ = 1
        assert oracle.correlations() == {("ETH", "BTC"): 1.0}
    assert "oracle.correlation pair=ETH/BTC source=ewma rho=1.0" in caplog.text


async def test_static_source_has_no_estimator(exchange: PriceServer) -> None:
    async with open_oracle(config(exchange)) as oracle:
        exchange.set("ETH", "2000")
        exchange.set("stETH", "1999")
        exchange.set("BTC", "60000")
        await oracle.run_round()
        assert oracle.correlation is None
        assert oracle.correlations() is None
        assert oracle.correlation_estimates() == []
