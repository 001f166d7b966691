"""Query and path parameters: parsed strictly, every problem a ``BadRequest`` naming the field.

Only ASCII digits count as digits (``int("٥")`` is 5 in Python; not here), a parameter given
twice is an error rather than a silent pick, and every number has a bound the database can
take (an offset beyond a BIGINT would fail in SQL, i.e. as a 500).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal

from multidict import MultiMapping

from core.addresses import normalize_address
from daemon.api.errors import BadRequest
from margin.model import Flag, parse_flag

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
MAX_FLAGS = len([f for f in Flag if f])

UNSIGNED_DECIMAL_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,18})?$"
"""``min_shortfall``: a plain non-negative decimal (no sign, exponent, NaN or infinity).

The ``*_PATTERN`` strings are JSON Schema (OpenAPI) patterns; Python matches them with
``fullmatch``, since ``re``'s ``$`` also matches before a final newline."""
TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")

_UNSIGNED_INT = re.compile(r"[0-9]{1,12}")
_UNSIGNED_DECIMAL = re.compile(UNSIGNED_DECIMAL_PATTERN)

Query = MultiMapping[str]


def address(value: str, *, field: str = "address") -> str:
    """A 20-byte hex address in any case, returned lower-case (``core.addresses``)."""
    try:
        return normalize_address(value)
    except ValueError as exc:
        raise BadRequest(field, str(exc)) from None


def single(query: Query, name: str) -> str | None:
    """The one value of ``name`` (``None`` when absent)."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(name, "given more than once")
    return values[0] if values else None


def integer(query: Query, name: str, *, default: int, low: int, high: int) -> int:
    """An integer in ``[low, high]``."""
    raw = single(query, name)
    if raw is None:
        return default
    if not _UNSIGNED_INT.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(name, f"must be an integer from {low} to {high}")
    return int(raw)


def boolean(query: Query, name: str) -> bool | None:
    """``true``/``false`` (also ``1``/``0``, any case), or ``None`` when absent."""
    raw = single(query, name)
    if raw is None:
        return None
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadRequest(name, "must be true or false")


def unsigned_decimal(query: Query, name: str) -> Decimal | None:
    """A plain non-negative decimal such as ``125`` or ``0.5``, or ``None`` when absent."""
    raw = single(query, name)
    if raw is None:
        return None
    if not _UNSIGNED_DECIMAL.fullmatch(raw):
        raise BadRequest(name, "must be a non-negative decimal such as 125 or 0.5")
    return Decimal(raw)


def choice(query: Query, name: str, allowed: Collection[str], what: str) -> str | None:
    """One of ``allowed``, or ``None`` when absent."""
    raw = single(query, name)
    if raw is None:
        return None
    if raw not in allowed:
        raise BadRequest(name, f"names no configured {what}; one of {', '.join(sorted(allowed))}")
    return raw


def flags(query: Query, name: str) -> Flag:
    """One or more flag names (``flag=A&flag=B``, any case): their union. Required."""
    values = query.getall(name, [])
    if not values:
        raise BadRequest(name, "is required (a flag name such as LATENCY_RISK)")
    if len(values) > MAX_FLAGS:
        raise BadRequest(name, f"at most {MAX_FLAGS} flags")
    union = Flag.NONE
    for value in values:
        try:
            union |= parse_flag(value)
        except ValueError as exc:
            raise BadRequest(name, str(exc)) from None
    return union
