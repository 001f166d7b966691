"""What reads return: stored rows as plain frozen data, and how each is built from a row.

Money comes back as ``Decimal`` quantized to the store's ``value_decimals``; NULL health comes
back as ``inf`` (an account that owes nothing) or NaN when the flags say ``DEBT_UNKNOWN`` (a
liability never read: the health is unknown); times are unix seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa

from chains.reads import Pair
from chains.watcher import Reading
from daemon.store.schema import MONEY_COLUMNS
from margin.model import HELD_REASONS, Flag, Position, Tier
from margin.options import OptionPosition

Row = sa.Row[Any]


_R = TypeVar("_R")


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


def from_row(cls: type[_R], row: Row, **derived: Any) -> _R:
    """The record ``cls`` (a dataclass) from ``row``: every field from the column of its name,
    except those given in ``derived`` (converted by the caller). The one way rows become
    records: a column renamed without its field fails here, loudly."""
    columns = row._mapping
    values = {name: columns[name] for name in _field_names(cls) if name not in derived}
    return cls(**values, **derived)


def health_from_row(row: Row, quantum: Decimal) -> StoredHealth:
    """A ``StoredHealth`` from an ``account_health`` row, money quantized to ``quantum``."""
    flags = Flag(row.flags)
    return from_row(
        StoredHealth,
        row,
        health=_health(row.health, flags),
        health_latency=_health(row.health_latency, flags),
        flags=flags,
        **{name: getattr(row, name).quantize(quantum) for name in MONEY_COLUMNS},
    )


def transition_from_row(row: Row, quantum: Decimal) -> StoredTransition:
    """A ``StoredTransition`` from a ``health_transitions`` row, the shortfall quantized to
    ``quantum``."""
    to_flags = Flag(row.to_flags)
    return from_row(
        StoredTransition,
        row,
        from_flags=Flag(row.from_flags),
        to_flags=to_flags,
        health=_health(row.health, to_flags),
        health_latency=_health(row.health_latency, to_flags),
        shortfall=row.shortfall.quantize(quantum),
    )


def _health(value: float | None, flags: Flag) -> float:
    if value is not None:
        return value
    return math.nan if flags & Flag.DEBT_UNKNOWN else math.inf


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainCursor:
    """The last block a chain's balances were stored at."""

    chain: str
    block_number: int
    block_hash: str
    block_timestamp: int | None
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCycle:
    """A written cycle and its block/price context."""

    id: int
    key: str
    at: float
    blocks: dict[str, int]
    prices: dict[str, str | None]
    accounts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredHealth:
    """An account's current health as stored; ``cycle_id``/``updated_at`` name the cycle
    that last changed it."""

    account: str
    health: float
    health_latency: float
    collateral_value: Decimal
    weighted_collateral: Decimal
    liability_value: Decimal
    weighted_liability: Decimal
    unrealized_pnl: Decimal
    maintenance: Decimal
    shortfall: Decimal
    flags: Flag
    actionable: bool
    breakdown: dict[str, Any] | None
    cycle_id: int | None  # None: not from the store (the engine's own results)
    updated_at: float

    @property
    def held_reasons(self) -> Flag:
        """Flags that keep a liquidation back (derived from ``flags``, not stored)."""
        return self.flags & HELD_REASONS

    @property
    def health_known(self) -> bool:
        """False when a liability was never read (``DEBT_UNKNOWN``): ``health`` is NaN."""
        return not self.flags & Flag.DEBT_UNKNOWN


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredTransition:
    """An account's flags changed in a cycle (append-only history, and the MQTT outbox)."""

    id: int
    account: str
    cycle_id: int
    from_flags: Flag
    to_flags: Flag
    health: float
    health_latency: float
    shortfall: Decimal
    actionable: bool
    at: float
    published_at: float | None
    shard: int | None = None
    """The account's shard in cluster mode (``daemon.cluster.shards``), else ``None``."""


class OutboxEntry(NamedTuple):
    """A transition still to be published: the stored fields its events are built from, and
    the block numbers (per chain) of the cycle that stored it. A plain tuple of plain values:
    a market-wide move reads tens of thousands of them."""

    id: int
    account: str
    from_flags: int
    to_flags: int
    health: float  # inf: owes nothing
    health_latency: float
    shortfall: Decimal  # quantized to the store's value_decimals
    actionable: bool
    at: float
    blocks: Mapping[str, int]  # shared by the entries of one cycle


def outbox_entries(
    rows: Iterable[Sequence[Any]], blocks: Mapping[int, Mapping[str, int]], quantum: Decimal
) -> list[OutboxEntry]:
    """``OutboxEntry`` of each row ``(id, account, cycle_id, from_flags, to_flags, health,
    health_latency, shortfall, actionable, at)`` (``at`` in unix seconds), with its cycle's
    ``blocks``: the pool's fenced read and the relay's own connection build them the same way.
    Rows unpacked by position and entries built positionally: a market-wide move reads tens of
    thousands (named access on a row costs more than the rest of the loop)."""
    inf = math.inf
    return [
        OutboxEntry(
            id_,
            account,
            from_flags,
            to_flags,
            inf if health is None else health,
            inf if health_latency is None else health_latency,
            shortfall.quantize(quantum),
            actionable,
            at,
            blocks[cycle_id],
        )
        for (
            id_,
            account,
            cycle_id,
            from_flags,
            to_flags,
            health,
            health_latency,
            shortfall,
            actionable,
            at,
        ) in rows
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredPrice:
    """One oracle round of one asset as stored in the price history."""

    asset: str
    round_at: float
    status: str
    price: Decimal | None
    price_low: Decimal | None
    price_high: Decimal | None
    round_price: Decimal | None
    observed_at: float | None
    held: bool
    hold_reason: str | None
    spread: float | None
    volatility: float
    sources: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBalance:
    """A raw balance as stored: the last good ``raw`` and the block it was read at.

    ``failed_block_number`` is set while the latest read failed (at that block); ``raw`` is
    ``None`` when no read ever succeeded (``block_number`` is then the failed read's).
    """

    chain: str
    token: str
    account: str
    raw: int | None
    block_number: int
    block_hash: str
    failed_block_number: int | None = None

    @property
    def read_failed(self) -> bool:
        """The latest read of this balance failed."""
        return self.failed_block_number is not None


def position_from_row(row: Row) -> Position:
    """A ``Position`` from a ``positions`` row (validated again on the way out)."""
    return Position(
        account=row.account,
        asset=row.asset,
        chain=row.chain,
        size=row.size,
        entry_price=row.entry_price,
        mmr_tiers=tuple(Tier(rate, up_to) for rate, up_to in row.mmr_tiers),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountRecord:
    """One account as the API shows it: current health, balances on every chain, positions,
    and its venue documents (by venue)."""

    account: str
    health: StoredHealth | None
    balances: list[StoredBalance]
    positions: list[Position]
    options: list[OptionPosition] = field(default_factory=list)
    venues: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredState:
    """Everything a restarting daemon resumes from.

    ``balances`` holds the last good value of every pair (``raw`` ``None``: never read
    successfully); ``read_failures`` the pairs whose latest read failed, with that read's
    block; ``token_decimals`` chain → token → decimals as last established.
    """

    cursors: dict[str, ChainCursor]
    balances: dict[str, dict[Pair, Reading]]
    health_flags: dict[str, Flag]
    positions: list[Position]
    latest_prices: dict[str, StoredPrice]
    options: list[OptionPosition] = field(default_factory=list)
    last_cycle: StoredCycle | None
    oracle_states: dict[str, Any] = field(default_factory=dict)
    """asset → the oracle state document of its newest stored round (``oracles.resume``
    decodes it; an unreadable one is the caller's to skip)."""
    read_failures: dict[str, dict[Pair, int]] = field(default_factory=dict)
    token_decimals: dict[str, dict[str, int]] = field(default_factory=dict)
