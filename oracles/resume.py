"""An aggregator's resumable state as a JSON document, and back, exactly.

The store keeps one document per asset (``daemon.store`` table ``oracle_state``), written in
the same transaction as the round it belongs to; the daemon hands it back to the oracle at
start (``AssetAggregator(state=…)``). The round trip is exact, so a restarted aggregator
decides exactly as one that never stopped:

- prices are ``Decimal`` strings (``str(Decimal)`` parses back to the same digits and
  exponent);
- times and the variance are JSON numbers (Python writes the shortest repr that parses back
  to the same float); the rare non-finite float is the string ``"inf"``, ``"-inf"`` or
  ``"nan"`` (PostgreSQL's ``jsonb`` has no such numbers).

Shape (``version`` 1)::

    {"version": 1, "status": "TRIPPED",
     "last_good": {"price": "2000", "price_low": "1999.5", "price_high": "2000.5",
                   "observed_at": 1700000000.0, "accepted_at": 1700000001.0},
     "pending": {"direction": 1, "price": "3200", "confirmations": 1,
                 "evidence_at": 1700000005.0, "first_seen_at": 1700000006.0},
     "volatility": {"variance_per_s": 1.2e-08, "last_price": 2000.0, "last_at": 1700000001.0}}

``last_good``/``pending``/``status`` may be ``null``. A document of another version or shape
raises ``OracleStateInvalid``: the caller logs it and starts that asset fresh.

A risk-group pair's correlation state (``oracles.correlation``, table ``correlation_state``,
one document per pair) goes the same way (``pair_state_to_json``/``pair_state_from_json``)::

    {"version": 1, "assets": ["ETH", "WBTC"], "last_prices": [2000.0, 60000.0],
     "last_at": 1700000001.0, "var_a": 1.2e-08, "var_b": 9e-09, "cov": 7e-09,
     "weight": 0.0012, "weight_sq": 1.4e-08}
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from core.domain import PriceStatus
from core.errors import OracleStateInvalid
from oracles.correlation import PairState
from oracles.model import AcceptedPrice, AggregatorState, PendingJump
from oracles.volatility import VolatilityState

STATE_VERSION = 1
_NON_FINITE = {"inf", "-inf", "nan"}


def state_to_json(state: AggregatorState) -> dict[str, Any]:
    """``state`` as a JSON-ready document (see the module docstring)."""
    last, pending, vol = state.last_good, state.pending, state.volatility
    return {
        "version": STATE_VERSION,
        "status": None if state.status is None else state.status.value,
        "last_good": None
        if last is None
        else {
            "price": str(last.price),
            "price_low": str(last.price_low),
            "price_high": str(last.price_high),
            "observed_at": _float_out(last.observed_at),
            "accepted_at": _float_out(last.accepted_at),
        },
        "pending": None
        if pending is None
        else {
            "direction": pending.direction,
            "price": str(pending.price),
            "confirmations": pending.confirmations,
            "evidence_at": _float_out(pending.evidence_at),
            "first_seen_at": _float_out(pending.first_seen_at),
        },
        "volatility": None
        if vol is None
        else {
            "variance_per_s": _optional_float_out(vol.variance_per_s),
            "last_price": _optional_float_out(vol.last_price),
            "last_at": _optional_float_out(vol.last_at),
        },
    }


def state_from_json(document: object) -> AggregatorState:
    """The ``AggregatorState`` a document holds; ``OracleStateInvalid`` naming the problem
    for any other version or shape."""
    doc = _object(document, "state")
    version = doc.get("version")
    if version != STATE_VERSION:
        raise OracleStateInvalid(f"unknown state version {version!r} (expected {STATE_VERSION})")
    status = doc.get("status")
    try:
        parsed_status = None if status is None else PriceStatus(status)
    except ValueError:
        raise OracleStateInvalid(f"unknown status {status!r}") from None
    return AggregatorState(
        last_good=_last_good(doc.get("last_good")),
        pending=_pending(doc.get("pending")),
        volatility=_volatility(doc.get("volatility")),
        status=parsed_status,
    )


def _last_good(value: object) -> AcceptedPrice | None:
    if value is None:
        return None
    doc = _object(value, "last_good")
    return AcceptedPrice(
        price=_decimal(doc, "price"),
        price_low=_decimal(doc, "price_low"),
        price_high=_decimal(doc, "price_high"),
        observed_at=_float(doc, "observed_at"),
        accepted_at=_float(doc, "accepted_at"),
    )


def _pending(value: object) -> PendingJump | None:
    if value is None:
        return None
    doc = _object(value, "pending")
    direction = _int(doc, "direction")
    confirmations = _int(doc, "confirmations")
    if direction not in (-1, 1) or confirmations < 1:
        raise OracleStateInvalid(
            f"pending: direction {direction} / confirmations {confirmations} out of range"
        )
    return PendingJump(
        direction=direction,
        price=_decimal(doc, "price"),
        confirmations=confirmations,
        evidence_at=_float(doc, "evidence_at"),
        first_seen_at=_float(doc, "first_seen_at"),
    )


def _volatility(value: object) -> VolatilityState | None:
    if value is None:
        return None
    doc = _object(value, "volatility")
    return VolatilityState(
        variance_per_s=_optional_float(doc, "variance_per_s"),
        last_price=_optional_float(doc, "last_price"),
        last_at=_optional_float(doc, "last_at"),
    )


def pair_state_to_json(state: PairState) -> dict[str, Any]:
    """A correlation pair's state as a JSON-ready document (see the module docstring)."""
    last = state.last_prices
    return {
        "version": STATE_VERSION,
        "assets": list(state.assets),
        "last_prices": None if last is None else [_float_out(last[0]), _float_out(last[1])],
        "last_at": _optional_float_out(state.last_at),
        "var_a": _float_out(state.var_a),
        "var_b": _float_out(state.var_b),
        "cov": _float_out(state.cov),
        "weight": _float_out(state.weight),
        "weight_sq": _float_out(state.weight_sq),
    }


def pair_state_from_json(document: object) -> PairState:
    """The ``PairState`` a document holds; ``OracleStateInvalid`` naming the problem for any
    other version or shape (the pair then starts afresh)."""
    doc = _object(document, "correlation state")
    version = doc.get("version")
    if version != STATE_VERSION:
        raise OracleStateInvalid(f"unknown state version {version!r} (expected {STATE_VERSION})")
    assets = _field(doc, "assets")
    if not (
        isinstance(assets, list) and len(assets) == 2 and all(isinstance(a, str) for a in assets)
    ):
        raise OracleStateInvalid(f"assets: expected two asset names, got {assets!r}")
    last = _field(doc, "last_prices")
    if last is None:
        prices = None
    elif isinstance(last, list) and len(last) == 2:
        pair = {"a": last[0], "b": last[1]}
        prices = (_float(pair, "a"), _float(pair, "b"))
    else:
        raise OracleStateInvalid(f"last_prices: expected two numbers or null, got {last!r}")
    state = PairState(
        assets=(assets[0], assets[1]),
        last_prices=prices,
        last_at=_optional_float(doc, "last_at"),
        var_a=_float(doc, "var_a"),
        var_b=_float(doc, "var_b"),
        cov=_float(doc, "cov"),
        weight=_float(doc, "weight"),
        weight_sq=_float(doc, "weight_sq"),
    )
    sums = (state.var_a, state.var_b, state.cov, state.weight, state.weight_sq)
    if not all(math.isfinite(x) for x in sums) or min(state.var_a, state.var_b) < 0:
        raise OracleStateInvalid("correlation sums must be finite, variances >= 0")
    return state


# --- fields ----------------------------------------------------------------------------------


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OracleStateInvalid(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _field(doc: dict[str, Any], key: str) -> Any:
    if key not in doc:
        raise OracleStateInvalid(f"missing field {key!r}")
    return doc[key]


def _decimal(doc: dict[str, Any], key: str) -> Decimal:
    value = _field(doc, key)
    if not isinstance(value, str):
        raise OracleStateInvalid(f"{key}: expected a decimal string, got {type(value).__name__}")
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise OracleStateInvalid(f"{key}: {value!r} is not a decimal") from None
    if not parsed.is_finite():
        raise OracleStateInvalid(f"{key}: {value!r} is not finite")
    return parsed


def _int(doc: dict[str, Any], key: str) -> int:
    value = _field(doc, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OracleStateInvalid(f"{key}: expected an integer, got {value!r}")
    return value


def _float(doc: dict[str, Any], key: str) -> float:
    value = _optional_float(doc, key)
    if value is None:
        raise OracleStateInvalid(f"{key}: expected a number, got null")
    return value


def _optional_float(doc: dict[str, Any], key: str) -> float | None:
    value = _field(doc, key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise OracleStateInvalid(f"{key}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)  # jsonb may hand a whole float back as an int: same value
    if isinstance(value, str) and value in _NON_FINITE:
        return float(value)
    raise OracleStateInvalid(f"{key}: expected a number, got {value!r}")


def _float_out(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _optional_float_out(value: float | None) -> float | str | None:
    return None if value is None else _float_out(value)
