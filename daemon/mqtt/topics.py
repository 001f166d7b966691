"""What the daemon publishes over MQTT, and when: topics, payload encoding, health buckets.

Pure and synchronous (the I/O is in ``daemon.mqtt.publisher``), so it is tested with tables.

Topics, under a configurable prefix (default ``crossmargin``):

    {prefix}/status               online | offline     retained; offline is also the last will
    {prefix}/accounts/{address}   account state JSON   retained; on a change of flags or bucket
    {prefix}/events/{kind}        event JSON           QoS 1; liquidatable|latency_risk|recovered
    {prefix}/oracle/{asset}       oracle status JSON   retained
    {prefix}/chains/{name}        chain status JSON    retained

JSON payloads are compact with sorted keys, so an unchanged state is byte-for-byte the same
retained message; ``Decimal`` becomes a string (no float rounding of money) and a non-finite
float (``health`` with no debt is ∞, unknown health is NaN) becomes ``null``; the account
state's ``health_known`` tells the two apart.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal, NamedTuple, get_args

from margin.kernel import HealthTable
from margin.model import HELD_REASONS, Flag, flag_names

CRITICAL_HEALTH = 1.05  # health below this (and ≥ 1) is "critical"
WARNING_HEALTH = 1.2  # health below this (and ≥ CRITICAL_HEALTH) is "warning"

EventKind = Literal["liquidatable", "latency_risk", "recovered"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)

_PLAIN_JSON = frozenset({str, int, bool, type(None), Decimal})
"""Types ``encode_json`` passes through as they are (checked by exact type: it is hot)."""
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"
_FORBIDDEN_IN_LEVEL = frozenset("/+#\0")
_RISK_FLAGS = Flag.LIQUIDATABLE | Flag.LATENCY_RISK


class HealthBucket(enum.StrEnum):
    """Coarse health bands: account state is republished only when the band (or a flag) moves."""

    LIQUIDATABLE = "liquidatable"  # health < 1
    CRITICAL = "critical"  # 1 ≤ health < CRITICAL_HEALTH
    WARNING = "warning"  # CRITICAL_HEALTH ≤ health < WARNING_HEALTH
    HEALTHY = "healthy"  # health ≥ WARNING_HEALTH
    NO_DEBT = "no_debt"  # health = ∞ (nothing owed) or not given (None)
    UNKNOWN = "unknown"  # health NaN: a liability was never read (DEBT_UNKNOWN)


def health_bucket(health: float | None) -> HealthBucket:
    """The band ``health`` falls in; ``None`` and +∞ mean no debt, NaN unknown (the engine's
    value for an account with a liability never read)."""
    if health is None or health == math.inf:
        return HealthBucket.NO_DEBT
    if math.isnan(health):
        return HealthBucket.UNKNOWN
    if health < 1:
        return HealthBucket.LIQUIDATABLE
    if health < CRITICAL_HEALTH:
        return HealthBucket.CRITICAL
    if health < WARNING_HEALTH:
        return HealthBucket.WARNING
    return HealthBucket.HEALTHY


class AccountSignal(NamedTuple):
    """The part of an account's health whose change is worth a retained MQTT update."""

    flags: Flag
    bucket: HealthBucket


def should_publish_state(previous: AccountSignal | None, current: AccountSignal) -> bool:
    """True when the account's flags or health bucket changed (or it was never published)."""
    return previous is None or previous != current


def transition_events(
    previous: AccountSignal | None, current: AccountSignal
) -> tuple[EventKind, ...]:
    """The events an account's move from ``previous`` to ``current`` raises, in order.

    ``liquidatable`` / ``latency_risk`` when that flag turns on (an account first seen with it
    counts: after a restart keepers hear about it again); ``recovered`` when the account had
    either flag and now has neither — but not when its health became unknown
    (``DEBT_UNKNOWN``): that is no recovery, the retained account state says what it is.
    """
    before = Flag.NONE if previous is None else previous.flags
    return flag_events(int(before), int(current.flags))


@functools.cache
def flag_events(before: int, after: int) -> tuple[EventKind, ...]:
    """``transition_events`` of a move from flags ``before`` to ``after`` (plain ints, cached:
    a market-wide move asks this once per account)."""
    events: list[EventKind] = []
    if after & Flag.LIQUIDATABLE and not before & Flag.LIQUIDATABLE:
        events.append("liquidatable")
    if after & Flag.LATENCY_RISK and not before & Flag.LATENCY_RISK:
        events.append("latency_risk")
    recovered = not after & (_RISK_FLAGS | Flag.DEBT_UNKNOWN)
    if before & _RISK_FLAGS and recovered:
        events.append("recovered")
    return tuple(events)


@functools.cache
def cached_flag_names(flags: int) -> tuple[str, ...]:
    """``flag_names`` of a plain int, cached (there are only 64 flag combinations)."""
    return tuple(flag_names(Flag(flags)))


def account_state_payload(
    account: str, table: HealthTable, i: int, *, value_decimals: int, at: float
) -> dict[str, object]:
    """The retained per-account JSON document of row ``i`` of the engine's ``HealthTable``
    (the HTTP API has the full breakdown). Money in the table is exact integer units."""
    flags = Flag(int(table.flags[i]))
    health = float(table.health[i])

    def money(column: str) -> Decimal:
        return Decimal(int(getattr(table, column)[i])).scaleb(-value_decimals)

    return {
        "account": account.lower(),
        "health": health,
        "health_latency": float(table.health_latency[i]),
        "health_known": not flags & Flag.DEBT_UNKNOWN,
        "bucket": health_bucket(health).value,
        "flags": list(cached_flag_names(flags)),
        "actionable": bool(table.actionable[i]),
        "held_reasons": list(cached_flag_names(flags & HELD_REASONS)),
        "shortfall": money("shortfall"),
        "collateral_value": money("collateral_value"),
        "liability_value": money("liability_value"),
        "updated_at": at,
    }


class Topics:
    """Topic names under one prefix (validated by the config: no wildcards, no outer ``/``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.status = f"{prefix}/status"

    def account(self, address: str) -> str:
        """Retained state of one account; the address is lower-cased."""
        return f"{self.prefix}/accounts/{_level(address.lower())}"

    def event(self, kind: EventKind) -> str:
        """QoS 1 event stream of one kind."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        return f"{self.prefix}/events/{kind}"

    def oracle(self, asset: str) -> str:
        """Retained oracle status of one asset."""
        return f"{self.prefix}/oracle/{_level(asset)}"

    def chain(self, name: str) -> str:
        """Retained status of one chain."""
        return f"{self.prefix}/chains/{_level(name)}"


def encode_json(payload: Mapping[str, object]) -> bytes:
    """Compact, key-sorted UTF-8 JSON; Decimal → str, non-finite float → null."""
    return json.dumps(
        _finite(payload), sort_keys=True, separators=(",", ":"), default=_default, allow_nan=False
    ).encode()


def _level(value: str) -> str:
    if not value or not _FORBIDDEN_IN_LEVEL.isdisjoint(value):
        raise ValueError(f"not usable as one MQTT topic level: {value!r}")
    return value


def _finite(value: object) -> object:
    # json's default hook never sees floats, so ∞/NaN are replaced before encoding.
    if type(value) in _PLAIN_JSON:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable in an MQTT payload")
