"""Building the pipeline's parts from the config, for ``run`` and every command alike: RPC
pools, chain watchers, price sources and the ``OracleService``.

``crossmargin snapshot``, ``health``, ``prices`` and ``check`` build what they read through
these functions, and so does the daemon (``daemon.service``): a command sees a chain and a price
exactly as the service does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping

from chains.contracts import multicall3_runtime
from chains.rpc import DEFAULT_MAX_ATTEMPTS, RpcPool
from chains.watcher import ChainWatcher
from core.amounts import plain_decimal
from core.errors import OracleStateInvalid
from core.requester import Requester
from daemon.config.assets import (
    AssetConfig,
    ChainlinkSourceConfig,
    HttpSourceConfig,
    PythSourceConfig,
    SourceConfig,
    UniswapV3TwapSourceConfig,
)
from daemon.config.model import ChainConfig, Config
from daemon.config.portfolio import correlation_estimator
from oracles.correlation import PairState
from oracles.model import AggregatorState
from oracles.resume import state_from_json
from oracles.service import AssetFeeds, OracleService
from oracles.sources.base import PriceSource
from oracles.sources.chainlink import ChainlinkFeed, SequencerUptimeFeed
from oracles.sources.http import HttpPriceSource, parse_path
from oracles.sources.httpclient import JsonHttpClient
from oracles.sources.pyth import PythSource
from oracles.sources.twap import UniswapV3TwapSource

log = logging.getLogger(__name__)


def chain_pool(
    chain: ChainConfig,
    *,
    urls: list[str] | None = None,
    timeout_s: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> RpcPool:
    """The RPC pool of ``chain`` (not opened): its configured URLs, or ``urls``; requests time
    out after the chain's ``request_timeout_s`` or ``timeout_s``, whichever is shorter."""
    timeout = chain.request_timeout_s
    if timeout_s is not None:
        timeout = min(timeout, timeout_s)
    return RpcPool(
        chain=chain.name,
        chain_id=chain.chain_id,
        urls=chain.rpc_urls if urls is None else urls,
        request_timeout_s=timeout,
        max_attempts=max_attempts,
    )


def build_watcher(
    config: Config,
    chain: ChainConfig,
    pool: RpcPool,
    *,
    owns: Callable[[str], bool] | None = None,
) -> ChainWatcher:
    """A watcher for ``chain`` with the config's tokens and accounts (those ``owns`` accepts,
    in cluster mode: the accounts of this replica's shards)."""
    override = multicall3_runtime() if chain.use_state_override else None
    return ChainWatcher(
        chain=chain,
        tokens=config.tokens_on(chain.name),
        accounts=config.accounts,
        discover=config.discover_accounts,
        requester=pool,
        override_code=override,
        owns=owns,
    )


def build_source(
    spec: SourceConfig, pools: dict[str, Requester], http: JsonHttpClient
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
            None if state.last_good is None else plain_decimal(state.last_good.price),
            None if state.pending is None else state.pending.confirmations,
        )
    return states


def build_oracle_service(
    config: Config,
    pools: dict[str, Requester],
    *,
    resume: Mapping[str, AggregatorState] | None = None,
    correlation_state: Mapping[str, PairState] | None = None,
) -> OracleService:
    """An ``OracleService`` for every configured asset and sequencer feed (not started);
    ``resume`` is the state each asset's aggregator stopped with (``resumed_states``), and
    ``correlation_state`` each risk-group pair's (``correlation_source: ewma``)."""
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
        correlation=correlation_estimator(
            config.margin.portfolio,
            [asset.symbol for asset in config.assets],
            correlation_state,
        ),
    )


@contextlib.asynccontextmanager
async def open_oracle(config: Config) -> AsyncIterator[OracleService]:
    """Open the RPC pools the oracle needs and yield a started ``OracleService``."""
    async with contextlib.AsyncExitStack() as stack:
        pools: dict[str, Requester] = {}
        for name in oracle_chains(config):
            chain = config.chain(name)
            pools[name] = await stack.enter_async_context(chain_pool(chain))
        yield await stack.enter_async_context(build_oracle_service(config, pools))
