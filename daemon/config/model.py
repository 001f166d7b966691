"""The typed configuration: pydantic models of chains, tokens, margin, MQTT, the API and the
whole ``Config`` (read from YAML by ``daemon.config.load``).

The keys below are the contract with operators (extend, never rename). Any problem becomes one
``ConfigError`` naming the offending key (dotted path) and value; the CLI turns it into one line
on stderr and exit code 2.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.domain import Role
from daemon.config.assets import (
    AssetConfig,
    OraclePollingConfig,
    asset_reference_problem,
)
from daemon.config.portfolio import PortfolioConfig, portfolio_reference_problem
from daemon.config.types import (
    MAX_HORIZON_S,
    MAX_INTERVAL_S,
    MAX_LIABILITY_WEIGHT,
    MAX_TIMEOUT_S,
    MAX_USD,
    Address,
    HttpUrl,
    KeyedError,
    StrictModel,
    WsUrl,
)
from daemon.config.venues import VenueConfig, venue_reference_problem
from margin.model import MarginInputError, MarginModel, Tier, validate_tiers
from oracles.sequencer import DEFAULT_GRACE_PERIOD_S


class ChainConfig(StrictModel):
    """One EVM chain and how to watch it."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    chain_id: int = Field(gt=0)
    rpc_urls: list[HttpUrl] = Field(min_length=1)
    ws_url: WsUrl | None = None
    confirmations: int = Field(default=0, ge=0, le=256)
    poll_interval_s: float = Field(default=1.0, gt=0, le=MAX_INTERVAL_S)
    max_lag_s: float = Field(default=30.0, gt=0, le=MAX_INTERVAL_S)
    liquidation_latency_s: float = Field(default=60.0, ge=0, le=MAX_HORIZON_S)
    request_timeout_s: float = Field(default=3.0, gt=0, le=MAX_TIMEOUT_S)
    """Per JSON-RPC request: a hung endpoint must not hold the chain's reads for long. A healthy
    node answers our largest calls well within it; reads and log ranges halve on a timeout."""
    batch_size: int = Field(default=1000, ge=1, le=5000)
    """(account, token) reads per aggregate3 call; halves by itself on size/gas errors."""
    sweep_interval_s: float = Field(default=60.0, gt=0, le=MAX_INTERVAL_S)
    """Full re-read of every holding, for balances that move without Transfer events."""
    log_range_blocks: int = Field(default=2000, ge=1)
    """Initial eth_getLogs span for discovery; adapts to the node's limits."""
    discovery_from_block: int = Field(default=0, ge=0)
    """First block scanned for Transfer logs when discovering accounts."""
    use_state_override: bool = True
    """Read through a deploy-less Multicall3 via eth_call state override (else it must exist)."""
    multicall_address: Address = "0xca11bde05977b3631167028862be2a173976ca11"
    sequencer_uptime_feed: Address | None = None
    sequencer_grace_period_s: float = Field(default=DEFAULT_GRACE_PERIOD_S, ge=0, le=MAX_INTERVAL_S)
    sequencer_poll_interval_s: float = Field(default=2.0, gt=0, le=MAX_INTERVAL_S)
    """Uptime feed polling period: bounds how long accounts on the chain stay actionable
    after the sequencer goes down (its own prices are dropped at once, see the README)."""


class TierConfig(StrictModel):
    """One slice of a tiered collateral schedule: value up to ``up_to`` USD counts at ``weight``."""

    up_to: float | None = Field(default=None, gt=0, le=MAX_USD)
    weight: float = Field(ge=0, le=1)


class MarginConfig(StrictModel):
    """How the margin engine values accounts (``margin``)."""

    model: MarginModel = MarginModel.WEIGHTED
    """``weighted`` (flat weight per token), ``tiered`` (token ``tiers`` apply) or
    ``portfolio`` (the scenario grid of ``margin.portfolio``)."""
    z: float = Field(default=2.33, gt=0, le=10)
    """Confidence multiplier of the latency shock (2.33 = one-sided 99%)."""
    value_decimals: int = Field(default=2, ge=0, le=4)
    """USD values are rounded to this many decimals, collateral down and debts up."""
    portfolio: PortfolioConfig = Field(default_factory=PortfolioConfig)
    """Risk groups, grid and correlations of the ``portfolio`` model (ignored by the others)."""


class TokenConfig(StrictModel):
    """An ERC-20 on one chain representing an asset, as collateral or as a liability."""

    chain: str
    address: Address
    asset: str = Field(min_length=1)
    role: Role
    weight: float = Field(gt=0, le=MAX_LIABILITY_WEIGHT)
    decimals: int | None = Field(default=None, ge=0, le=77)
    symbol: str | None = None
    tiers: list[TierConfig] | None = None
    """Collateral only, with ``margin.model: tiered``: weights by value slice (USD), e.g.
    ``[{up_to: 100000, weight: 0.8}, {up_to: 1000000, weight: 0.6}, {weight: 0.4}]``."""

    @field_validator("tiers")
    @classmethod
    def _tiers_are_a_schedule(
        cls, tiers: list[TierConfig] | None, info: ValidationInfo
    ) -> list[TierConfig] | None:
        if tiers is None:
            return None
        if info.data.get("role") is not Role.COLLATERAL:
            raise ValueError("tiers apply to collateral tokens only")
        schedule = tuple(Tier(rate=t.weight, up_to=t.up_to) for t in tiers)
        try:
            validate_tiers(schedule, low=0.0, high=1.0, what="tiers")
        except MarginInputError as exc:
            raise ValueError(str(exc)) from None
        return tiers

    @field_validator("weight")
    @classmethod
    def _weight_matches_role(cls, weight: float, info: ValidationInfo) -> float:
        role = info.data.get("role")
        if role is Role.COLLATERAL and weight > 1:
            raise ValueError("a collateral weight is 1 - haircut: it must be in (0, 1]")
        if role is Role.LIABILITY and weight < 1:
            raise ValueError("a liability weight must be >= 1")
        return weight


MQTT_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
"""Accepted ``mqtt.url`` schemes and their default ports (``mqtts`` is TLS)."""


class MqttConfig(StrictModel):
    """The MQTT publisher (``daemon.mqtt.publisher``); MQTT is off while ``url`` is unset."""

    url: str | None = None
    """``mqtt://[user:password@]host[:port]`` or ``mqtts://…`` (TLS against the system CAs)."""
    topic_prefix: str = Field(default="crossmargin", min_length=1)
    client_id: str | None = Field(default=None, min_length=1)
    """Defaults to ``crossmargin-<hostname>-<pid>``."""
    keepalive_s: int = Field(default=30, gt=0, le=65535)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=MAX_INTERVAL_S)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=MAX_INTERVAL_S)
    max_pending: int = Field(default=10000, ge=1)
    """Events read from the database outbox per batch and held in memory until the broker
    acknowledged them; the rest waits in the database (nothing is dropped)."""

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("not a valid URL") from None
        if parts.scheme not in MQTT_DEFAULT_PORTS:
            raise ValueError("must be an mqtt:// or mqtts:// URL")
        if not parts.hostname:
            raise ValueError("names no broker host")
        return url

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, prefix: str) -> str:
        if any(char in prefix for char in "+#\0"):
            raise ValueError("must not contain the MQTT wildcards + or # (or NUL)")
        if prefix.startswith(("/", "$")) or prefix.endswith("/") or "//" in prefix:
            raise ValueError("must not start with / or $, end with /, or have empty levels")
        return prefix

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_above_min(cls, max_s: float, info: ValidationInfo) -> float:
        min_s = info.data.get("reconnect_min_s")
        if min_s is not None and max_s < min_s:
            raise ValueError("must be >= reconnect_min_s")
        return max_s


API_DEFAULT_LISTEN = "127.0.0.1:8080"
API_MIN_TOKEN_CHARS = 16
API_DEFAULT_MAX_BODY_BYTES = 1_048_576
API_MAX_BODY_BYTES = 64 * 1_048_576
API_DEFAULT_IDLE_TIMEOUT_S = 30.0
"""Longer than common clients keep idle pooled connections (aiohttp 15 s), so a client does not
reuse a connection the server is just closing."""
API_MAX_IDLE_TIMEOUT_S = 3600.0
API_DEFAULT_BODY_TIMEOUT_S = 30.0
API_DEFAULT_MAX_CONNECTIONS = 512
"""Below the usual 1,024 open files per process, with room for RPC, database and broker."""
API_MAX_CONNECTIONS = 65_536
API_DEFAULT_STREAM_MAX_CLIENTS = 16
API_DEFAULT_STREAM_QUEUE_EVENTS = 4096
"""Frames (~0.5 KiB each) waiting for one slow stream client before it is dropped: ~2 MiB."""
API_MAX_STREAM_QUEUE_EVENTS = 1_000_000
API_DEFAULT_STREAM_HEARTBEAT_S = 15.0
"""Below the 30-60 s idle timeouts of common proxies, so an idle stream is not cut."""
API_MAX_STREAM_HEARTBEAT_S = 300.0
_HOSTNAME = re.compile(r"[A-Za-z0-9.\-]+")
_MAX_PORT = 65535


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` as ``(host, port)``; ``ValueError`` if malformed.

    Port 0 asks the OS for a free port (tests); the IPv6 host comes back without brackets.
    """
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("an IPv6 listen address is written [addr]:port") from None
    else:
        host, sep, port = value.rpartition(":")
        if not _HOSTNAME.fullmatch(host):
            raise ValueError("must be host:port (IPv6 as [addr]:port)")
    if not sep or not port.isdigit() or int(port) > _MAX_PORT:
        raise ValueError(f"must end in :port with a port in 0..{_MAX_PORT}")
    return host, int(port)


class ApiConfig(StrictModel):
    """The keeper HTTP API (``daemon.api``)."""

    listen: str = API_DEFAULT_LISTEN
    """``host:port`` to bind (``[::1]:8080`` for IPv6); loopback unless told otherwise."""
    token: SecretStr | None = None
    """Bearer token for writes (``PUT /v1/positions/…``); unset, writes are refused. Give it
    as ``${CROSSMARGIN_API_TOKEN}`` rather than in the file."""
    max_body_bytes: int = Field(default=API_DEFAULT_MAX_BODY_BYTES, ge=1024, le=API_MAX_BODY_BYTES)
    idle_timeout_s: float = Field(
        default=API_DEFAULT_IDLE_TIMEOUT_S, gt=0, le=API_MAX_IDLE_TIMEOUT_S
    )
    """A connection is closed when no complete request head arrived within this many seconds
    of its opening or of its previous answer: idle keep-alive and slow or half-sent headers."""
    body_timeout_s: float = Field(default=API_DEFAULT_BODY_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)
    """A request body (``PUT /v1/positions``) must have arrived within this long: else 408."""
    max_connections: int = Field(default=API_DEFAULT_MAX_CONNECTIONS, ge=1, le=API_MAX_CONNECTIONS)
    """Connections served at once; one more is answered 503 and closed."""
    stream_max_clients: int = Field(default=API_DEFAULT_STREAM_MAX_CLIENTS, ge=0)
    """``GET /v1/stream`` clients served at once (each holds one of ``max_connections``, and
    must stay below it; not given: 16 or half of ``max_connections``, whichever is smaller);
    one more is answered 503 ``too_many_streams``. 0 turns the stream off."""
    stream_queue_events: int = Field(
        default=API_DEFAULT_STREAM_QUEUE_EVENTS, ge=1, le=API_MAX_STREAM_QUEUE_EVENTS
    )
    """Events waiting for one stream client at most; a client that falls further behind is
    disconnected (it resumes with ``Last-Event-ID``)."""
    stream_heartbeat_s: float = Field(
        default=API_DEFAULT_STREAM_HEARTBEAT_S, gt=0, le=API_MAX_STREAM_HEARTBEAT_S
    )
    """A comment line is sent on an idle stream this often (and a vanished client noticed)."""

    @model_validator(mode="after")
    def _streams_leave_connections(self) -> Self:
        if "stream_max_clients" not in self.model_fields_set:
            # Not given: at most half the connections, so a small max_connections stays valid.
            fitted = min(API_DEFAULT_STREAM_MAX_CLIENTS, self.max_connections // 2)
            object.__setattr__(self, "stream_max_clients", fitted)  # the model is frozen
        if self.stream_max_clients >= self.max_connections:
            raise KeyedError(
                "api.stream_max_clients",
                f"must be below api.max_connections ({self.max_connections}): streams hold "
                "connections and would lock out every other request",
                self.stream_max_clients,
            )
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("token")
    @classmethod
    def _long_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and token.get_secret_value() == "":
            return None  # "${CROSSMARGIN_API_TOKEN:-}" with the variable unset: writes are off
        if token is not None and len(token.get_secret_value()) < API_MIN_TOKEN_CHARS:
            raise ValueError(f"must be at least {API_MIN_TOKEN_CHARS} characters long")
        return token

    @property
    def host(self) -> str:
        """The host part of ``listen`` (IPv6 without brackets)."""
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return parse_listen(self.listen)[1]


class ClusterConfig(StrictModel):
    """Several replicas on one PostgreSQL database (``daemon.cluster``): accounts split into
    ``shards`` by a hash of the address, each shard a lease one replica holds at a time."""

    enabled: bool = False
    shards: int = Field(default=16, ge=1, le=4096)
    """Every replica of a deployment must use the same number (checked against the database)."""
    lease_ttl_s: float = Field(default=10.0, ge=1.0, le=MAX_INTERVAL_S)
    """A lease not renewed for this long (database clock) is taken over by another replica."""
    replica_id: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$"
    )
    """This replica's name in the lease table; unset: ``<hostname>-<pid>``."""


class Config(StrictModel):
    """The whole daemon configuration."""

    chains: list[ChainConfig] = Field(min_length=1)
    tokens: list[TokenConfig] = Field(default_factory=list)
    """ERC-20 balances watched per account; optional beside ``venues:`` (or ``assets:`` alone,
    for ``crossmargin prices``)."""
    accounts: list[Address] = Field(default_factory=list)
    """After loading: the listed accounts and those of ``accounts_file``, each once."""
    accounts_file: str | None = Field(default=None, min_length=1)
    """A text file of addresses, one a line (``daemon.config.accounts_file``); relative to the
    config file's directory."""
    discover_accounts: bool = False
    database_url: str | None = None
    """``postgresql+asyncpg://…`` or ``sqlite+aiosqlite:///…`` (``daemon.store``); unset, a
    SQLite file ``crossmargin.sqlite3`` next to the config file (cwd without a file)."""
    database_wait_s: float = Field(default=60.0, ge=0, le=86_400)
    """At start-up, how long to wait for a database that cannot be reached (still starting,
    restarting) before exiting 1; 0 fails at once. A running daemon never stops for an outage
    (writes are held and retried)."""
    assets: list[AssetConfig] = Field(default_factory=list)
    """Priced assets and their oracle sources (``daemon.config.assets``); optional."""
    oracle_polling: OraclePollingConfig = Field(default_factory=OraclePollingConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    """Publishing to an MQTT broker (``daemon.mqtt.publisher``); off unless ``mqtt.url`` is set."""
    margin: MarginConfig = Field(default_factory=MarginConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    """The keeper HTTP API (``daemon.api``); writes need ``api.token``."""
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    """Cluster mode (PostgreSQL only); off by default."""
    venues: list[VenueConfig] = Field(default_factory=list)
    """Lending protocol deployments read straight from the chain (``daemon.config.venues``)."""

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        names = [c.name for c in self.chains]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise KeyedError(f"chains[{i}].name", "duplicate chain name", name)
        ids = [c.chain_id for c in self.chains]
        for i, chain_id in enumerate(ids):
            if ids.index(chain_id) != i:
                raise KeyedError(f"chains[{i}].chain_id", "duplicate chain id", chain_id)
        seen: set[tuple[str, str]] = set()
        for i, token in enumerate(self.tokens):
            if token.chain not in names:
                raise KeyedError(f"tokens[{i}].chain", "names no configured chain", token.chain)
            if (token.chain, token.address) in seen:
                raise KeyedError(f"tokens[{i}].address", "token listed twice", token.address)
            seen.add((token.chain, token.address))
        if not (self.tokens or self.venues or self.assets):
            raise KeyedError("tokens", "nothing to watch: give tokens, venues or assets")
        if (
            self.tokens
            and not self.accounts
            and self.accounts_file is None
            and not self.discover_accounts
        ):
            raise KeyedError(
                "accounts",
                "nothing to watch: list accounts, give accounts_file "
                "or set discover_accounts: true",
            )
        problem = asset_reference_problem(self.assets, names, [t.asset for t in self.tokens])
        if problem is not None:
            raise KeyedError(*problem)
        venue_problem = venue_reference_problem(self.venues, names, [a.symbol for a in self.assets])
        if venue_problem is not None:
            raise venue_problem
        known = {a.symbol for a in self.assets} | {t.asset for t in self.tokens}
        problem = portfolio_reference_problem(self.margin.portfolio, known)
        if problem is not None:
            raise KeyedError(*problem)
        return self

    def chain(self, name: str) -> ChainConfig:
        """The chain called ``name`` (validated to exist for every token)."""
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(name)

    def venue(self, name: str) -> VenueConfig:
        """The venue called ``name``."""
        for venue in self.venues:
            if venue.name == name:
                return venue
        raise KeyError(name)

    def tokens_on(self, chain: str) -> list[TokenConfig]:
        """Tokens watched on ``chain``, in config order."""
        return [t for t in self.tokens if t.chain == chain]
