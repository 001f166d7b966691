"""``crossmargin prices``, and the wiring of an ``OracleService`` from the config.

``open_oracle(config)`` opens one RPC pool per chain the oracle reads (on-chain sources and
sequencer-uptime feeds), builds every configured source and yields a started
``OracleService``; the daemon uses the same entry point. ``run_prices`` runs one round (or
``rounds``, ``interval_s`` apart: a jump beyond ``max_jump`` needs ``confirm_rounds`` of them)
and prints, per asset and round, the price as a decimal string, its status and the sources
used and dropped with reasons; then one line per chain with an uptime feed. The exit code
reflects the last round: 0 when every asset is OK, 3 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import TextIO

from chains.rpc import RpcPool
from core.errors import ConfigError, OracleStateInvalid
from core.redaction import scrub
from daemon.config.assets import (
    AssetConfig,
    ChainlinkSourceConfig,
    HttpSourceConfig,
    PythSourceConfig,
    SourceConfig,
    UniswapV3TwapSourceConfig,
)
from daemon.config.model import Config
from oracles.model import AggregatorState, AssetPrice, PriceStatus
from oracles.resume import state_from_json
from oracles.service import AssetFeeds, OracleService
from oracles.sources.base import PriceSource, RpcRequester
from oracles.sources.chainlink import ChainlinkFeed, SequencerReading, SequencerUptimeFeed
from oracles.sources.http import HttpPriceSource, parse_path
from oracles.sources.httpclient import JsonHttpClient
from oracles.sources.pyth import PythSource
from oracles.sources.twap import UniswapV3TwapSource

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOT_OK = 3  # some asset's price is not OK (held, stale, tripped or missing)


def build_source(
    spec: SourceConfig, pools: dict[str, RpcRequester], http: JsonHttpClient
) -> PriceSource:
    """One configured source, reading through ``pools[chain]`` or the shared ``http`` client."""
    source_id, max_age_s = spec.source_id(), spec.max_age_s
    poll_s, timeout_s = spec.poll_interval_s, spec.timeout_s
    match spec:
        case ChainlinkSourceConfig():
            return ChainlinkFeed(
                source_id=source_id,
                chain=spec.chain,
                address=spec.address,
                rpc=pools[spec.chain],
                max_age_s=max_age_s,
                poll_interval_s=poll_s,
                timeout_s=timeout_s,
            )
        case HttpSourceConfig():
            url, price_path, timestamp_path, unit = spec.resolved()
            return HttpPriceSource(
                source_id=source_id,
                url=url,
                price_path=parse_path(price_path),
                timestamp_path=None if timestamp_path is None else parse_path(timestamp_path),
                timestamp_unit=unit,
                headers=spec.headers,
                client=http,
                max_age_s=max_age_s,
                poll_interval_s=poll_s,
                timeout_s=timeout_s,
            )
        case PythSourceConfig():
            return PythSource(
                source_id=source_id,
                base_url=spec.url,
                feed_id=spec.feed_id,
                headers=spec.headers,
                client=http,
                max_age_s=max_age_s,
                poll_interval_s=poll_s,
                timeout_s=timeout_s,
            )
        case UniswapV3TwapSourceConfig():
            return UniswapV3TwapSource(
                source_id=source_id,
                chain=spec.chain,
                address=spec.address,
                rpc=pools[spec.chain],
                window_s=spec.window_s,
                decimals0=spec.decimals0,
                decimals1=spec.decimals1,
                invert=spec.invert,
                max_age_s=max_age_s,
                poll_interval_s=poll_s,
                timeout_s=timeout_s,
            )


def oracle_chains(config: Config) -> list[str]:
    """Chains the oracle reads: those of on-chain sources and those with an uptime feed."""
    used = {
        chain
        for asset in config.assets
        for spec in asset.sources
        if (chain := getattr(spec, "chain", None)) is not None
    }
    return [c.name for c in config.chains if c.name in used or c.sequencer_uptime_feed]


def resumed_states(config: Config, documents: Mapping[str, object]) -> dict[str, AggregatorState]:
    """The stored oracle state of every configured asset that has a readable one.

    A document of an unknown version or shape is logged and skipped: that asset starts fresh
    (as on a first start) rather than keeping the daemon from starting.
    """
    configured = {asset.symbol for asset in config.assets}
    states: dict[str, AggregatorState] = {}
    for symbol, document in documents.items():
        if symbol not in configured:
            continue
        try:
            states[symbol] = state_from_json(document)
        except OracleStateInvalid as exc:
            log.warning("oracle.state_discarded asset=%s reason=%s", symbol, exc)
            continue
        state = states[symbol]
        log.info(
            "oracle.state_resumed asset=%s status=%s price=%s pending_confirmations=%s",
            symbol,
            state.status,
            None if state.last_good is None else plain(state.last_good.price),
            None if state.pending is None else state.pending.confirmations,
        )
    return states


def build_oracle_service(
    config: Config,
    pools: dict[str, RpcRequester],
    *,
    resume: Mapping[str, AggregatorState] | None = None,
) -> OracleService:
    """An ``OracleService`` for every configured asset and sequencer feed (not started);
    ``resume`` is the state each asset's aggregator stopped with (``resumed_states``)."""
    polling = config.oracle_polling
    http = JsonHttpClient(max_connections=polling.max_concurrency)

    def feeds(asset: AssetConfig) -> AssetFeeds:
        sources = [build_source(spec, pools, http) for spec in asset.sources]
        return AssetFeeds(symbol=asset.symbol, params=asset.params(), sources=sources)

    sequencers = [
        SequencerUptimeFeed(
            chain=chain.name,
            address=chain.sequencer_uptime_feed,
            rpc=pools[chain.name],
            grace_period_s=chain.sequencer_grace_period_s,
            poll_interval_s=chain.sequencer_poll_interval_s,
            timeout_s=chain.request_timeout_s,
        )
        for chain in config.chains
        if chain.sequencer_uptime_feed is not None
    ]
    return OracleService(
        assets=[feeds(asset) for asset in config.assets],
        sequencers=sequencers,
        http=http,
        max_concurrency=polling.max_concurrency,
        round_interval_s=polling.round_interval_s,
        resume=resume,
    )


@contextlib.asynccontextmanager
async def open_oracle(config: Config) -> AsyncIterator[OracleService]:
    """Open the RPC pools the oracle needs and yield a started ``OracleService``."""
    async with contextlib.AsyncExitStack() as stack:
        pools: dict[str, RpcRequester] = {}
        for name in oracle_chains(config):
            chain = config.chain(name)
            pools[name] = await stack.enter_async_context(
                RpcPool(
                    chain=name,
                    chain_id=chain.chain_id,
                    urls=chain.rpc_urls,
                    request_timeout_s=chain.request_timeout_s,
                )
            )
        yield await stack.enter_async_context(build_oracle_service(config, pools))


async def run_prices(
    config: Config,
    *,
    rounds: int = 1,
    interval_s: float | None = None,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Run ``rounds`` fresh rounds and print them; the exit code of the last one."""
    if not config.assets:
        raise ConfigError("assets", "no assets configured: nothing to price")
    interval = config.oracle_polling.round_interval_s if interval_s is None else interval_s
    prices: dict[str, AssetPrice] = {}
    async with open_oracle(config) as oracle:
        for index in range(1, rounds + 1):
            if index > 1:
                await asyncio.sleep(interval)
            prices = await oracle.run_round()
            print_round(index, prices, oracle, as_json=as_json, out=out)
    ok = all(p.status is PriceStatus.OK for p in prices.values())
    return EXIT_OK if ok else EXIT_NOT_OK


def plain(value: Decimal | None) -> str | None:
    """A decimal in positional notation without trailing zeros (``"3000.12"``), exactly."""
    if value is None:
        return None
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def price_row(index: int, price: AssetPrice, oracle: OracleService) -> dict[str, object]:
    """The JSON line of one asset in one round."""
    details = {
        source: scrub(detail)
        for source in price.dropped
        if (detail := oracle.round_quote(price.symbol, source).detail)
    }
    return {
        "round": index,
        "asset": price.symbol,
        "price": plain(price.price),
        "status": str(price.status),
        "held": price.held,
        "hold_reason": None if price.hold_reason is None else str(price.hold_reason),
        "used": list(price.used),
        "anchors": list(price.anchors),
        "dropped": {source: str(reason) for source, reason in price.dropped.items()},
        "details": details,
        "round_price": plain(price.round_price),
        "spread": price.spread,
        "observed_at": price.observed_at,
        "volatility": price.volatility,
        "price_low": plain(price.price_low),
        "price_high": plain(price.price_high),
    }


def sequencer_row(index: int, reading: SequencerReading, now: float) -> dict[str, object]:
    """The JSON line of one chain's sequencer feed in one round, classified at ``now``."""
    return {
        "round": index,
        "chain": reading.chain,
        "sequencer": str(reading.status(now)),
        "started_at": reading.started_at,
        "detail": scrub(reading.detail),
    }


def print_round(
    index: int,
    prices: dict[str, AssetPrice],
    oracle: OracleService,
    *,
    as_json: bool,
    out: TextIO,
) -> None:
    """Print one round: JSON lines, or a table (one asset per line, drops indented)."""
    rows = [price_row(index, price, oracle) for price in prices.values()]
    now = time.time()
    chains = [sequencer_row(index, reading, now) for reading in oracle.sequencers.values()]
    if as_json:
        for row in [*rows, *chains]:
            out.write(json.dumps(row) + "\n")
        out.flush()
        return
    out.write(f"round {index}\n")
    for price in prices.values():
        out.write(f"  {_table_line(price, now)}\n")
        for source, why in price.dropped.items():
            detail = scrub(oracle.round_quote(price.symbol, source).detail)
            out.write(f"      dropped {source} {why}{f': {detail}' if detail else ''}\n")
    for reading in oracle.sequencers.values():
        detail = f" ({scrub(reading.detail)})" if reading.detail else ""
        out.write(f"  chain {reading.chain} sequencer {reading.status(now)}{detail}\n")
    out.flush()


def _table_line(price: AssetPrice, now: float) -> str:
    reason = f" ({price.hold_reason})" if price.hold_reason else ""
    spread = "" if price.spread is None else f" spread={price.spread:.4%}"
    age = "" if price.observed_at is None else f" age={now - price.observed_at:.0f}s"
    used = ",".join(price.used) or "-"
    shown = plain(price.price) or "-"
    return f"{price.symbol:<10} {shown:>24} {price.status}{reason} used={used}{spread}{age}"
