"""The ``assets:`` and ``oracle_polling:`` parts of the config: priced assets and their sources.

Kept apart from ``daemon.config.model`` (which embeds these models) so each file stays readable.
Keys are a contract with operators, like the rest of the config (extend, never rename).

    assets:
      - symbol: ETH
        volatility_floor: 0.5
        oracle: {min_sources: 2, max_deviation: 0.02, max_jump: 0.2, confirm_rounds: 3}
        sources:
          - {kind: chainlink, chain: mainnet, address: "0x…", max_age_s: 3600}
          - {kind: http, url: "http://127.0.0.1:9001/eth", price_path: data.amount}
          - {kind: http, preset: coinbase, url: "http://127.0.0.1:9002", pair: ETH-USD}
          - {kind: pyth, url: "https://hermes.pyth.network", feed_id: "0xff61…"}
          - {kind: uniswap_v3_twap, chain: mainnet, address: "0x…", decimals0: 6,
             decimals1: 18, invert: true}
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from core.redaction import distinct_fingerprints, url_authority
from daemon.config.types import (
    MAX_HORIZON_S,
    MAX_INTERVAL_S,
    MAX_TIMEOUT_S,
    MAX_VOLATILITY,
    Address,
    HttpUrl,
    StrictModel,
)
from oracles import model as om
from oracles.sources.chainlink import DEFAULT_FEED_POLL_INTERVAL_S, DEFAULT_FEED_TIMEOUT_S
from oracles.sources.http import (
    DEFAULT_HTTP_POLL_INTERVAL_S,
    DEFAULT_HTTP_TIMEOUT_S,
    HTTP_PRESETS,
    parse_path,
)
from oracles.sources.pyth import (
    DEFAULT_PYTH_POLL_INTERVAL_S,
    DEFAULT_PYTH_TIMEOUT_S,
    HERMES_URL,
    normalize_feed_id,
)
from oracles.sources.twap import (
    DEFAULT_TWAP_POLL_INTERVAL_S,
    DEFAULT_TWAP_TIMEOUT_S,
    DEFAULT_TWAP_WINDOW_S,
    MAX_WINDOW_S,
)
from oracles.volatility import DEFAULT_INTERVAL_S, DEFAULT_LAMBDA

SHORT_ADDRESS_CHARS = 10  # "0x" + 8 hex digits in derived source names

SOURCE_KINDS = frozenset({"chainlink", "http", "pyth", "uniswap_v3_twap"})


def _json_path(value: str | None) -> str | None:
    if value is not None:
        parse_path(value)
    return value


_JsonPath = Annotated[str | None, AfterValidator(_json_path)]


class OracleSettings(StrictModel):
    """An asset's ``oracle:`` block (see ``oracles.aggregate`` for what each knob does)."""

    min_sources: int = Field(default=om.DEFAULT_MIN_SOURCES, ge=1)
    max_deviation: float = Field(default=om.DEFAULT_MAX_DEVIATION, ge=0, lt=1)
    max_jump: float = Field(default=om.DEFAULT_MAX_JUMP, gt=0)
    confirm_rounds: int = Field(default=om.DEFAULT_CONFIRM_ROUNDS, ge=1)
    min_price: Decimal | None = Field(default=None, gt=0)
    max_price: Decimal | None = Field(default=None, gt=0)
    anchor_tolerance: float = Field(default=om.DEFAULT_ANCHOR_TOLERANCE, ge=0)
    max_confidence_ratio: float = Field(default=om.DEFAULT_MAX_CONFIDENCE_RATIO, ge=0, lt=1)
    confidence_bands: bool = True
    """Value collateral at price − conf and debt at price + conf (sources with a confidence)."""
    future_tolerance_s: float = Field(
        default=om.DEFAULT_FUTURE_TOLERANCE_S, ge=0, le=MAX_INTERVAL_S
    )
    ewma_lambda: float = Field(default=DEFAULT_LAMBDA, gt=0, lt=1)
    ewma_interval_s: float = Field(default=DEFAULT_INTERVAL_S, gt=0, le=MAX_HORIZON_S)

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and high <= low:
            raise ValueError("max_price must be greater than min_price")
        return self


class _SourceBase(StrictModel):
    name: str | None = Field(default=None, min_length=1)
    """How the source is shown in output; derived when absent (``AssetConfig`` fills it in),
    never from a URL's path, query or user-info (they carry API keys)."""

    def source_id(self) -> str:
        """The configured (or filled-in) name, else ``default_id()``."""
        return self.name or self.default_id()

    def default_id(self) -> str:
        """The id derived from what the source reads (overridden per kind)."""
        raise NotImplementedError

    def identity(self) -> str:
        """What tells two sources of one kind apart; its fingerprint makes a shared default
        id unique (overridden per kind)."""
        raise NotImplementedError


class ChainlinkSourceConfig(_SourceBase):
    """An AggregatorV3-compatible feed on a configured chain."""

    kind: Literal["chainlink"]
    chain: str
    address: Address
    max_age_s: float = Field(default=3600.0, gt=0, le=MAX_HORIZON_S)
    poll_interval_s: float = Field(default=DEFAULT_FEED_POLL_INTERVAL_S, gt=0, le=MAX_INTERVAL_S)
    timeout_s: float = Field(default=DEFAULT_FEED_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)

    def default_id(self) -> str:
        """``chainlink:<chain>:<address prefix>``."""
        return f"chainlink:{self.chain}:{self.address[:SHORT_ADDRESS_CHARS]}"

    def identity(self) -> str:
        """The feed: chain and address."""
        return f"{self.chain}:{self.address}"


class HttpSourceConfig(_SourceBase):
    """A JSON price API: a ``preset`` with a ``pair``, or a ``url`` with a ``price_path``."""

    kind: Literal["http"]
    url: HttpUrl | None = None
    preset: Literal["coinbase", "binance", "kraken", "bitstamp"] | None = None
    pair: str | None = Field(default=None, min_length=1)
    price_path: _JsonPath = None
    timestamp_path: _JsonPath = None
    timestamp_unit: Literal["s", "ms"] = "s"
    headers: dict[str, str] = Field(default_factory=dict)
    max_age_s: float = Field(default=60.0, gt=0, le=MAX_HORIZON_S)
    poll_interval_s: float = Field(default=DEFAULT_HTTP_POLL_INTERVAL_S, gt=0, le=MAX_INTERVAL_S)
    timeout_s: float = Field(default=DEFAULT_HTTP_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)

    @model_validator(mode="after")
    def _preset_or_paths(self) -> Self:
        if self.preset is not None:
            if self.pair is None:
                raise ValueError(f"preset {self.preset} needs a pair (e.g. {self._example()})")
            if self.price_path is not None or self.timestamp_path is not None:
                raise ValueError("a preset sets price_path/timestamp_path: leave them out")
        else:
            if self.url is None or self.price_path is None:
                raise ValueError("give url and price_path, or a preset and a pair")
            if self.pair is not None:
                raise ValueError("pair is only used with a preset")
        return self

    def _example(self) -> str:
        return HTTP_PRESETS[self.preset].pair_example if self.preset else ""

    def resolved(self) -> tuple[str, str, str | None, Literal["s", "ms"]]:
        """``(url, price_path, timestamp_path, timestamp_unit)`` with the preset applied."""
        if self.preset is None:
            assert self.url is not None  # validated
            assert self.price_path is not None
            return self.url, self.price_path, self.timestamp_path, self.timestamp_unit
        preset = HTTP_PRESETS[self.preset]
        assert self.pair is not None  # validated
        url = preset.url(self.url, self.pair)
        return url, preset.price_path, preset.timestamp_path, preset.timestamp_unit

    def default_id(self) -> str:
        """``<preset>:<pair>``, or ``http:<host[:port]>`` (never the path or query)."""
        if self.preset is not None:
            return f"{self.preset}:{self.pair}"
        return f"http:{url_authority(self.url or '') or 'invalid-url'}"

    def identity(self) -> str:
        """The URL requested (the preset applied)."""
        return self.resolved()[0]


class PythSourceConfig(_SourceBase):
    """A Pyth price feed served by Hermes (price with confidence)."""

    kind: Literal["pyth"]
    url: HttpUrl = HERMES_URL
    feed_id: Annotated[str, AfterValidator(normalize_feed_id)]
    headers: dict[str, str] = Field(default_factory=dict)
    max_age_s: float = Field(default=60.0, gt=0, le=MAX_HORIZON_S)
    poll_interval_s: float = Field(default=DEFAULT_PYTH_POLL_INTERVAL_S, gt=0, le=MAX_INTERVAL_S)
    timeout_s: float = Field(default=DEFAULT_PYTH_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)

    def default_id(self) -> str:
        """``pyth:<feed id prefix>``."""
        return f"pyth:{self.feed_id[:8]}"

    def identity(self) -> str:
        """The Hermes URL and the feed."""
        return f"{self.url} {self.feed_id}"


class UniswapV3TwapSourceConfig(_SourceBase):
    """A Uniswap v3 pool's TWAP: an anchor that can veto a price, never set one."""

    kind: Literal["uniswap_v3_twap"]
    chain: str
    address: Address
    window_s: int = Field(default=DEFAULT_TWAP_WINDOW_S, gt=0, le=MAX_WINDOW_S)
    decimals0: int = Field(ge=0, le=77)
    decimals1: int = Field(ge=0, le=77)
    invert: bool = False
    """Price token1 in token0 (e.g. ETH in USDC for a USDC/WETH pool) instead of the reverse."""
    max_age_s: float = Field(default=3600.0, gt=0, le=MAX_HORIZON_S)
    poll_interval_s: float = Field(default=DEFAULT_TWAP_POLL_INTERVAL_S, gt=0, le=MAX_INTERVAL_S)
    timeout_s: float = Field(default=DEFAULT_TWAP_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)

    def default_id(self) -> str:
        """``uniswap_v3_twap:<chain>:<address prefix>``."""
        return f"uniswap_v3_twap:{self.chain}:{self.address[:SHORT_ADDRESS_CHARS]}"

    def identity(self) -> str:
        """The pool: chain and address."""
        return f"{self.chain}:{self.address}"


SourceConfig = Annotated[
    ChainlinkSourceConfig | HttpSourceConfig | PythSourceConfig | UniswapV3TwapSourceConfig,
    Field(discriminator="kind"),
]


class AssetConfig(StrictModel):
    """A priced asset: its volatility floor, oracle settings and sources."""

    symbol: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    volatility_floor: float = Field(default=0.0, ge=0, le=MAX_VOLATILITY)
    """Annualized (0.5 = 50 %): the EWMA volatility estimate never goes below it."""
    oracle: OracleSettings = Field(default_factory=OracleSettings)
    sources: list[SourceConfig] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _named_sources(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        """Give every unnamed source its id: a default id shared by several unnamed sources
        (two URLs on one host) gets ``#<fingerprint>`` of what each reads (longer where two
        fingerprints would collide: ``distinct_fingerprints``). A name given in
        the config is kept as is (a clash with it is reported by ``asset_reference_problem``)."""
        shared: dict[str, list[str]] = {}
        for source in sources:
            if not source.name:
                shared.setdefault(source.default_id(), []).append(source.identity())
        told_apart = {
            default: distinct_fingerprints(identities)
            for default, identities in shared.items()
            if len(identities) > 1
        }

        def named(source: SourceConfig) -> SourceConfig:
            if source.name:
                return source
            default = source.default_id()
            if default in told_apart:
                default = f"{default}#{told_apart[default][source.identity()]}"
            return source.model_copy(update={"name": default})

        return [named(s) for s in sources]

    def params(self) -> om.OracleParams:
        """The pure aggregation's parameters for this asset."""
        o = self.oracle
        return om.OracleParams(
            min_sources=o.min_sources,
            max_deviation=o.max_deviation,
            max_jump=o.max_jump,
            confirm_rounds=o.confirm_rounds,
            min_price=o.min_price,
            max_price=o.max_price,
            volatility_floor=self.volatility_floor,
            anchor_tolerance=o.anchor_tolerance,
            max_confidence_ratio=o.max_confidence_ratio,
            confidence_bands=o.confidence_bands,
            future_tolerance_s=o.future_tolerance_s,
            ewma_lambda=o.ewma_lambda,
            ewma_interval_s=o.ewma_interval_s,
        )


class OraclePollingConfig(StrictModel):
    """How the oracle service polls (``oracle_polling:``, optional)."""

    max_concurrency: int = Field(default=32, ge=1, le=1024)
    """Source fetches in flight at once (also the HTTP connection limit)."""
    round_interval_s: float = Field(default=5.0, gt=0, le=MAX_INTERVAL_S)
    """Seconds between two oracle rounds in the long-running daemon."""


def asset_reference_problem(
    assets: list[AssetConfig], chain_names: list[str], token_assets: list[str]
) -> tuple[str, str, object] | None:
    """The first cross-reference problem as ``(key, problem, value)``, or ``None``.

    Asset symbols are unique, every on-chain source names a configured chain, source ids are
    unique within an asset, and — once any asset is configured — every token's ``asset`` is one
    of them (a config without ``assets:`` still runs the watchers alone).
    """
    symbols = [a.symbol for a in assets]
    for i, symbol in enumerate(symbols):
        if symbols.index(symbol) != i:
            return f"assets[{i}].symbol", "duplicate asset symbol", symbol
    for i, asset in enumerate(assets):
        ids: list[str] = []
        for j, source in enumerate(asset.sources):
            key = f"assets[{i}].sources[{j}]"
            chain = getattr(source, "chain", None)
            if chain is not None and chain not in chain_names:
                return f"{key}.chain", "names no configured chain", chain
            if source.source_id() in ids:
                return (
                    f"{key}.name",
                    "two sources of this asset share this name",
                    (source.source_id()),
                )
            ids.append(source.source_id())
    if assets:
        for i, asset_symbol in enumerate(token_assets):
            if asset_symbol not in symbols:
                return f"tokens[{i}].asset", "names no configured asset", asset_symbol
    return None
