"""The oracle service: polls every price source and sequencer feed, and runs rounds.

``OracleService`` owns the sources of every asset (and the HTTP client they share), one
``AssetAggregator`` per asset and the L2 sequencer-uptime feeds. The RPC pools the on-chain
sources read through belong to the caller.

Two ways to use it:

- **one-shot** (``crossmargin prices``): ``await service.run_round()`` fetches every source
  now (bounded concurrency, each fetch cut off at its source's ``timeout_s``), then aggregates;
- **long-running** (the daemon): ``async for prices in service.rounds():`` does one such fresh
  round, then starts one poller task per source (each on its own ``poll_interval_s``) and
  per sequencer feed (each on its chain's ``sequencer_poll_interval_s``), and yields a round
  over the latest quotes every ``round_interval_s``.

Either way one failing or hung source never stalls the others: each fetch runs under its own
timeout, holding one of ``max_concurrency`` slots at most that long, and any fault of a source
becomes a failed quote (with its reason) instead of an exception. A source's latest result is
what a round sees: after a failure that is the failure, until the next successful fetch.

A source on an L2 with a sequencer-uptime feed (``chain:`` in its config) is trusted only
while that sequencer is up and was confirmed up *after* the quote was read; otherwise its
quote is dropped as ``SEQUENCER_DOWN`` (``oracles.sequencer_gate``).

With a ``CorrelationEstimator`` (``margin.portfolio.correlation_source: ewma``) every round
also feeds it the round's fresh prices (held or unpriced assets give no return that round):
``correlations`` is then the ρ between risk groups the engine should use.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from core.domain import PriceStatus
from core.lifecycle import AsyncResource
from oracles.aggregate import AssetAggregator
from oracles.correlation import CorrelationEstimator, PairEstimate
from oracles.model import AggregatorState, AssetPrice, DropReason, OracleParams, SourceQuote
from oracles.sequencer import SequencerStatus
from oracles.sequencer_gate import SequencerGate
from oracles.sources.base import PriceSource
from oracles.sources.chainlink import SequencerReading, SequencerUptimeFeed
from oracles.sources.httpclient import JsonHttpClient

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 32  # fetches in flight at once, over all sources
DEFAULT_ROUND_INTERVAL_S = 5.0  # long-running mode: seconds between two rounds
NOT_POLLED = "not fetched yet"


def source_chain(source: PriceSource) -> str | None:
    """The chain an on-chain source reads (its ``chain:``), ``None`` for off-chain sources."""
    chain = getattr(source, "chain", None)
    return chain if isinstance(chain, str) else None


def _fresh(price: AssetPrice) -> float | None:
    """A round's price as a return observation: ``None`` when held (or never priced)."""
    if price.price is None or price.held or price.status is not PriceStatus.OK:
        return None
    return float(price.price)


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetFeeds:
    """One asset: its oracle settings and its sources (ids unique within the asset)."""

    symbol: str
    params: OracleParams
    sources: Sequence[PriceSource]


class OracleService(AsyncResource):
    """Prices every configured asset from its sources; see the module docstring.

    ``http`` is the client the HTTP/Pyth sources were built with: the service starts and
    closes it. ``clock`` gives the round time (unix s) when a caller passes no ``now``.
    ``resume`` maps a symbol to the state its aggregator stopped with (``AssetPrice.resume``
    of the last stored round): the breaker, last good price and volatility carry on.
    """

    def __init__(
        self,
        *,
        assets: Sequence[AssetFeeds],
        sequencers: Sequence[SequencerUptimeFeed] = (),
        http: JsonHttpClient | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        round_interval_s: float = DEFAULT_ROUND_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        resume: Mapping[str, AggregatorState] | None = None,
        correlation: CorrelationEstimator | None = None,
    ) -> None:
        if max_concurrency < 1 or round_interval_s <= 0:
            raise ValueError("max_concurrency must be >= 1 and round_interval_s > 0")
        self._assets = {a.symbol: a for a in assets}
        if len(self._assets) != len(assets):
            raise ValueError("asset symbols must be unique")
        for asset in assets:
            ids = [s.source_id for s in asset.sources]
            if len(set(ids)) != len(ids):
                raise ValueError(f"asset {asset.symbol}: source ids must be unique")
        resumed = resume or {}
        self._aggregators = {
            a.symbol: AssetAggregator(symbol=a.symbol, params=a.params, state=resumed.get(a.symbol))
            for a in assets
        }
        self._latest: dict[tuple[str, str], SourceQuote] = {
            (a.symbol, s.source_id): SourceQuote.failed(
                s.source_id, s.kind, DropReason.FETCH_FAILED, NOT_POLLED
            )
            for a in assets
            for s in a.sources
        }
        self._screened = dict(self._latest)  # what the last round used, after the gate
        self._failing: dict[tuple[str, str], DropReason] = {}
        self._status: dict[str, PriceStatus] = {
            symbol: state.status
            for symbol, state in resumed.items()
            if symbol in self._assets and state.status is not None
        }
        self._http = http
        self._limit = asyncio.Semaphore(max_concurrency)
        self._round_interval_s = round_interval_s
        self._clock = clock
        self._gate = SequencerGate(sequencers, limit=self._limit, clock=clock)
        self._pollers: set[asyncio.Task[None]] = set()
        self._correlation = correlation
        self._estimating: dict[str, bool] = {}
        if correlation is not None and not correlation.assets <= set(self._assets):
            missing = ", ".join(sorted(correlation.assets - set(self._assets)))
            raise ValueError(f"correlation: assets not priced by the oracle: {missing}")

    async def start(self) -> None:
        """Start the HTTP client the sources share."""
        if self._http is not None:
            await self._http.start()

    async def close(self) -> None:
        """Stop the pollers and close the HTTP client. Idempotent."""
        await self.stop_polling()
        if self._http is not None:
            await self._http.close()

    # -- queries ------------------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        """Configured assets, in configuration order."""
        return list(self._assets)

    def aggregator(self, symbol: str) -> AssetAggregator:
        """The aggregator of ``symbol`` (its ``state`` is what a restart resumes from)."""
        return self._aggregators[symbol]

    def latest_quote(self, symbol: str, source_id: str) -> SourceQuote:
        """The latest fetched quote of one source (a failed quote before the first fetch)."""
        return self._latest[(symbol, source_id)]

    def round_quote(self, symbol: str, source_id: str) -> SourceQuote:
        """The quote of one source as the last round used it: ``latest_quote``, or the
        ``SEQUENCER_DOWN`` failure the sequencer gate turned it into."""
        return self._screened[(symbol, source_id)]

    def sequencer_status(self, chain: str, now: float | None = None) -> SequencerStatus | None:
        """``UP``/``GRACE``/``DOWN`` of ``chain``'s sequencer at ``now`` (default: the clock)
        from its latest reading; ``None`` when the chain has no uptime feed or was not read.
        Anything but ``UP`` marks the chain ``SEQUENCER_DOWN``."""
        return self._gate.status(chain, self._clock() if now is None else now)

    @property
    def correlation(self) -> CorrelationEstimator | None:
        """The estimator of ρ between risk groups, ``None`` unless ``ewma`` is configured."""
        return self._correlation

    def correlations(self) -> dict[tuple[str, str], float] | None:
        """(group, group) → ρ to use after the last round; ``None`` without an estimator."""
        return None if self._correlation is None else self._correlation.correlations()

    def correlation_estimates(self) -> list[PairEstimate]:
        """Every pair's ρ in use, whether estimated, and its effective returns (``[]``
        without an estimator)."""
        return [] if self._correlation is None else self._correlation.estimates()

    @property
    def sequencer_feeds(self) -> list[SequencerUptimeFeed]:
        """Every configured sequencer-uptime feed."""
        return self._gate.feeds

    @property
    def sequencers(self) -> Mapping[str, SequencerReading]:
        """Latest reading of every chain with an uptime feed that was read."""
        return self._gate.readings

    # -- one round ----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch every source and read every sequencer feed once, concurrently (bounded)."""
        async with asyncio.TaskGroup() as group:
            for asset in self._assets.values():
                for source in asset.sources:
                    group.create_task(self._fetch(asset.symbol, source))
            for feed in self._gate.feeds:
                group.create_task(self._read_sequencer(feed))

    def aggregate(self, now: float | None = None) -> dict[str, AssetPrice]:
        """One round over each source's latest quote, at ``now`` (default: the clock); quotes
        from an L2 whose sequencer is not confirmed up are dropped (``oracles.sequencer_gate``)."""
        at = self._clock() if now is None else now
        prices: dict[str, AssetPrice] = {}
        for symbol, asset in self._assets.items():
            quotes = []
            for source in asset.sources:
                key = (symbol, source.source_id)
                quote = self._gate.screen(key, source_chain(source), self._latest[key], at)
                self._screened[key] = quote
                quotes.append(quote)
            price = self._aggregators[symbol].round(quotes, at)
            self._note_status(price)
            prices[symbol] = price
        if self._correlation is not None:
            self._correlation.update({s: _fresh(p) for s, p in prices.items()}, at)
            self._note_correlations()
        return prices

    async def run_round(
        self, now: float | None = None, *, refresh: bool = True
    ) -> dict[str, AssetPrice]:
        """Fetch everything now (unless ``refresh`` is false), then run one round."""
        if refresh:
            await self.refresh()
        return self.aggregate(now)

    # -- long-running mode --------------------------------------------------------------------

    async def rounds(self, interval_s: float | None = None) -> AsyncIterator[dict[str, AssetPrice]]:
        """Yield a fresh round, start the pollers, then yield a round every ``interval_s``
        (default ``round_interval_s``) over the latest quotes. Pollers run until ``close``."""
        interval = self._round_interval_s if interval_s is None else interval_s
        loop = asyncio.get_running_loop()
        yield await self.run_round()
        self.start_polling()
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + interval, loop.time())
            yield self.aggregate()

    def start_polling(self) -> None:
        """Start one named poller task per source and per sequencer feed (idempotent)."""
        if self._pollers:
            return
        for asset in self._assets.values():
            for source in asset.sources:
                self._spawn(
                    f"oracle-poll:{asset.symbol}:{source.source_id}",
                    source.poll_interval_s,
                    functools.partial(self._fetch, asset.symbol, source),
                )
        for feed in self._gate.feeds:
            self._spawn(
                f"oracle-sequencer:{feed.chain}",
                feed.poll_interval_s,
                functools.partial(self._read_sequencer, feed),
            )

    async def stop_polling(self) -> None:
        """Cancel the pollers and wait for them to finish."""
        tasks, self._pollers = self._pollers, set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, name: str, interval_s: float, fetch: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.get_running_loop().create_task(self._poll(interval_s, fetch), name=name)
        self._pollers.add(task)

    @staticmethod
    async def _poll(interval_s: float, fetch: Callable[[], Awaitable[None]]) -> None:
        """Fetch every ``interval_s`` on a fixed schedule (a slow fetch delays only itself)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await fetch()
            next_at = max(next_at + interval_s, loop.time())

    # -- fetching -----------------------------------------------------------------------------

    async def _fetch(self, symbol: str, source: PriceSource) -> None:
        async with self._limit:
            try:
                async with asyncio.timeout(source.timeout_s):
                    quote = await source.fetch()
            except TimeoutError:
                quote = SourceQuote.failed(
                    source.source_id,
                    source.kind,
                    DropReason.FETCH_FAILED,
                    f"no answer within {source.timeout_s:g}s",
                )
            except Exception as exc:  # a bug in one source must not stop the others
                log.exception("oracle.source_error asset=%s source=%s", symbol, source.source_id)
                quote = SourceQuote.failed(
                    source.source_id,
                    source.kind,
                    DropReason.FETCH_FAILED,
                    f"internal error: {type(exc).__name__}",
                )
        key = (symbol, source.source_id)
        chain = source_chain(source)
        if quote.failure is None and self._gate.guards(chain):
            # An L2 quote waits for a sequencer reading sent after its answer came back.
            assert chain is not None  # guards() is false for None
            await self._gate.vouch(key, chain, asyncio.get_running_loop().time())
        self._note_fetch(symbol, quote)
        self._latest[key] = quote

    async def _read_sequencer(self, feed: SequencerUptimeFeed) -> None:
        await self._gate.read(feed)

    def _note_fetch(self, symbol: str, quote: SourceQuote) -> None:
        """Log a source's failures when they start or change, and its recovery."""
        key = (symbol, quote.source_id)
        before = self._failing.get(key)
        if quote.failure is not None and quote.failure is not before:
            self._failing[key] = quote.failure
            log.warning(
                "oracle.source_failed asset=%s source=%s reason=%s detail=%s",
                symbol,
                quote.source_id,
                quote.failure,
                quote.detail,
            )
        elif quote.failure is None and before is not None:
            del self._failing[key]
            log.info("oracle.source_recovered asset=%s source=%s", symbol, quote.source_id)

    def _note_correlations(self) -> None:
        """Log a pair when its estimate takes over from its static value, or hands back."""
        assert self._correlation is not None
        for e in self._correlation.estimates():
            if self._estimating.get(e.pair, False) is not e.estimated:
                self._estimating[e.pair] = e.estimated
                log.info(
                    "oracle.correlation pair=%s source=%s rho=%s returns=%.1f",
                    e.pair,
                    "ewma" if e.estimated else "static",
                    e.correlation,
                    e.returns,
                )

    def _note_status(self, price: AssetPrice) -> None:
        before = self._status.get(price.symbol)
        if before is not price.status:
            self._status[price.symbol] = price.status
            log.log(
                logging.INFO if price.status is PriceStatus.OK else logging.WARNING,
                "oracle.status asset=%s status=%s previous=%s hold_reason=%s price=%s",
                price.symbol,
                price.status,
                before,
                price.hold_reason,
                price.price,
            )
