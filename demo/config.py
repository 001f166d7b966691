"""The config the demo daemon runs with: what an operator would write for the demo's world.

Three chains with their block-time-appropriate lag limits and liquidation latencies, every
token with its role and weight, and three priced assets: ETH and BTC from an on-chain feed
plus two exchanges (so one manipulated source is an outlier), USDC from the two exchanges.
The database is SQLite; MQTT is on only when a broker answers.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon.config.load import parse_config
from daemon.config.model import Config
from demo.world import (
    CHAIN_SPECS,
    EXCHANGE_A_PAIRS,
    EXCHANGE_B_KEYS,
    FEED_ASSETS,
    FEED_CHAIN,
    TOKEN_SPECS,
    DemoWorld,
)
from devnet.exchange import coinbase, generic

DEMO_API_TOKEN = "crossmargin-demo-token"  # noqa: S105 - loopback demo only, shown in the view
MQTT_PROBE = ("127.0.0.1", 1883)
MQTT_PROBE_TIMEOUT_S = 0.3
MQTT_TOPIC_PREFIX = "crossmargin-demo"

CHAIN_POLL_INTERVAL_S = 0.25
CHAIN_SWEEP_INTERVAL_S = 30.0
CHAIN_REQUEST_TIMEOUT_S = 2.0
ORACLE_ROUND_INTERVAL_S = 1.0
SOURCE_POLL_INTERVAL_S = 0.5
HTTP_MAX_AGE_S = 30.0
FEED_MAX_AGE_S = 3600.0  # a Chainlink heartbeat: the demo's feeds only move on deviation

VOLATILE_ORACLE = {  # ETH and BTC
    "min_sources": 2,
    "max_deviation": 0.025,  # a crash step (≈1.4%) between feed and exchanges stays inside
    "max_jump": 0.06,  # the crash's one sharp candle (−8%) trips the breaker ...
    "confirm_rounds": 4,  # ... until four fresh rounds confirm it
    "ewma_interval_s": 3600.0,  # volatility memory of hours, not days: the crash shows in σ
}
VOLATILITY_FLOORS = {"ETH": 0.6, "BTC": 0.5, "USDC": 0.01}
SOURCE_NAMES = {"feed": f"chainlink:{FEED_CHAIN}", "a": "exchange-a", "b": "exchange-b"}


def mqtt_broker_url() -> str | None:
    """``mqtt://127.0.0.1:1883`` if something accepts a TCP connection there, else ``None``."""
    try:
        with socket.create_connection(MQTT_PROBE, timeout=MQTT_PROBE_TIMEOUT_S):
            return f"mqtt://{MQTT_PROBE[0]}:{MQTT_PROBE[1]}"
    except OSError:
        return None


def _asset(world: DemoWorld, symbol: str) -> dict[str, Any]:
    poll = {"poll_interval_s": SOURCE_POLL_INTERVAL_S}
    sources: list[dict[str, Any]] = []
    if symbol in FEED_ASSETS:
        sources.append(
            {
                "kind": "chainlink",
                "name": SOURCE_NAMES["feed"],
                "chain": FEED_CHAIN,
                "address": world.feeds[symbol],
                "max_age_s": FEED_MAX_AGE_S,
                **poll,
            }
        )
    sources.append(
        coinbase(
            world.exchange_a,
            EXCHANGE_A_PAIRS[symbol],
            name=SOURCE_NAMES["a"],
            max_age_s=HTTP_MAX_AGE_S,
            **poll,
        )
    )
    sources.append(
        generic(
            world.exchange_b,
            EXCHANGE_B_KEYS[symbol],
            name=SOURCE_NAMES["b"],
            max_age_s=HTTP_MAX_AGE_S,
            **poll,
        )
    )
    oracle: dict[str, Any] = dict(VOLATILE_ORACLE) if symbol in FEED_ASSETS else {"min_sources": 1}
    return {
        "symbol": symbol,
        "volatility_floor": VOLATILITY_FLOORS[symbol],
        "oracle": oracle,
        "sources": sources,
    }


PORTFOLIO: dict[str, Any] = {
    "groups": {
        "ETH": {"assets": ["ETH"], "scan_range": 0.15},
        "USD": {"assets": ["USDC"], "scan_range": 0.03},
    },
    "default_scan_range": 0.15,
    "correlations": {"ETH/BTC": 0.8},
}
"""``margin.portfolio`` of ``crossmargin demo --model portfolio`` (BTC is a group of its own)."""


def demo_config(
    world: DemoWorld,
    accounts: Sequence[str],
    *,
    listen: str,
    workdir: Path,
    mqtt_url: str | None,
    model: str = "weighted",
) -> Config:
    """The validated config for ``world`` (SQLite in ``workdir``, API on ``listen``)."""
    chains = [
        {
            "name": spec.name,
            "chain_id": spec.chain_id,
            "rpc_urls": [world.chain(spec.name).node.url],
            "poll_interval_s": CHAIN_POLL_INTERVAL_S,
            "max_lag_s": spec.max_lag_s,
            "liquidation_latency_s": spec.liquidation_latency_s,
            "sweep_interval_s": CHAIN_SWEEP_INTERVAL_S,
            "request_timeout_s": CHAIN_REQUEST_TIMEOUT_S,
        }
        for spec in CHAIN_SPECS
    ]
    tokens = [
        {
            "chain": chain,
            "address": world.chain(chain).tokens[token.symbol],
            "asset": token.asset,
            "role": token.role,
            "weight": token.weight,
            "decimals": token.decimals,
            "symbol": token.symbol,
        }
        for token in TOKEN_SPECS
        for chain in token.chains
    ]
    data: dict[str, Any] = {
        "chains": chains,
        "tokens": tokens,
        "accounts": list(accounts),
        "database_url": f"sqlite+aiosqlite:///{workdir / 'demo.sqlite3'}",
        "assets": [_asset(world, symbol) for symbol in ("ETH", "BTC", "USDC")],
        "oracle_polling": {"round_interval_s": ORACLE_ROUND_INTERVAL_S},
        "api": {"listen": listen, "token": DEMO_API_TOKEN},
        "margin": {"model": model, "portfolio": PORTFOLIO},
    }
    if mqtt_url is not None:
        data["mqtt"] = {"url": mqtt_url, "topic_prefix": MQTT_TOPIC_PREFIX}
    return parse_config(data, base_dir=workdir)
