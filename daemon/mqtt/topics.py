"""What the daemon publishes over MQTT, and when: topics, payload encoding, transitions.

Pure and synchronous (the I/O is in ``daemon.mqtt.publisher``), so it is tested with tables.

Topics, under a configurable prefix (default ``crossmargin``):

    {prefix}/status               online | offline     retained; offline is also the last will
                                                       (cluster mode: {prefix}/status/{replica})
    {prefix}/accounts/{address}   Account JSON         retained; on a change of flags or bucket
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

from core.addresses import lower_address
from daemon.documents import HealthBucket
from margin.model import Flag

EventKind = Literal["liquidatable", "latency_risk", "recovered"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)

_PLAIN_JSON = frozenset({str, int, bool, type(None), Decimal})
"""Types ``encode_json`` passes through as they are (checked by exact type: it is hot)."""
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"
_FORBIDDEN_IN_LEVEL = frozenset("/+#\0")
_RISK_FLAGS = Flag.LIQUIDATABLE | Flag.LATENCY_RISK


class AccountSignal(NamedTuple):
    """The part of an account's health whose change is worth a retained MQTT update."""

    flags: Flag
    bucket: HealthBucket


@functools.cache
def account_signal(flags: int, bucket: HealthBucket) -> AccountSignal:
    """The signal of these flag bits and bucket, one shared instance per value: a million
    accounts hold a few distinct signals, not a tuple each (64 bytes per account)."""
    return AccountSignal(Flag(flags), bucket)


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


class Topics:
    """Topic names under one prefix (validated by the config: no wildcards, no outer ``/``)."""

    def __init__(self, prefix: str, *, replica: str | None = None) -> None:
        self.prefix = prefix
        # Cluster mode: each replica its own status (and last will), so one replica dying
        # does not mark the others offline.
        status = f"{prefix}/status"
        self.status = status if replica is None else f"{status}/{_level(replica)}"
        self.accounts_prefix = f"{prefix}/accounts/"
        """What an account's topic is its address appended to (``account``)."""

    def account(self, address: str) -> str:
        """Retained state of one account; the address is lower-cased."""
        return self.accounts_prefix + self.account_key(address)

    def account_key(self, address: str) -> str:
        """``address`` as the last level of its account topic (lower-cased, checked): the
        compact key of its retained state (``daemon.mqtt.outbox``), the engine's own string
        when it is lower-case already."""
        return _level(lower_address(address))

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
