"""Store records → the JSON documents of the API (shapes: ``daemon.api.openapi``).

Conventions: money and other exact amounts are decimal strings in plain notation (never
``1E+2``); ``health`` is ``null`` when infinite (nothing owed) and when unknown (a liability
never read), told apart by ``health_known``; flags are lists of names
(``["LIQUIDATABLE", "STALE_PRICE"]``); addresses are lower-case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from daemon.store.records import AccountRecord, StoredBalance, StoredCycle, StoredHealth
from margin.model import Flag, Position, flag_names

MONEY_FIELDS = (
    "collateral_value",
    "weighted_collateral",
    "liability_value",
    "weighted_liability",
    "unrealized_pnl",
    "maintenance",
    "shortfall",
)


def decimal_text(value: Decimal) -> str:
    """A finite ``Decimal`` in plain notation (``Decimal("6E+4")`` → ``"60000"``)."""
    return format(value, "f")


def float_text(value: float) -> str | None:
    """A float as the shortest plain decimal that reads back to it (``3000.0`` → ``"3000"``);
    ``None`` if not finite."""
    if not math.isfinite(value):
        return None
    return decimal_text(Decimal(repr(value)).normalize())


def finite(value: float) -> float | None:
    """``value``, or ``None`` for ±∞/NaN (JSON has neither)."""
    return value if math.isfinite(value) else None


def _stored_text(value: object) -> str | None:
    """A number stored in a breakdown (string or number) as a plain decimal string."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return float_text(value)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return decimal_text(number) if number.is_finite() else None


def _stored_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return finite(float(value))
    return None


def _stored_flags(value: object) -> list[str]:
    return flag_names(Flag(value)) if isinstance(value, int) and value >= 0 else []


def holding_line(line: Mapping[str, Any]) -> dict[str, object]:
    """One stored breakdown line of a token balance (``daemon.store.rows.breakdown_of``)."""
    return {
        "chain": line.get("chain"),
        "token": str(line.get("token", "")).lower(),
        "asset": line.get("asset"),
        "role": line.get("role"),
        "raw": _stored_text(line.get("raw")),
        "amount": _stored_text(line.get("amount")),
        "price": _stored_text(line.get("price")),
        "value": _stored_text(line.get("value")),
        "weight": _stored_float(line.get("weight")),
        "weighted_value": _stored_text(line.get("weighted_value")),
        "block": line.get("block"),
        "flags": _stored_flags(line.get("flags")),
    }


def position_line(line: Mapping[str, Any]) -> dict[str, object]:
    """One stored breakdown line of a position."""
    return {
        "asset": line.get("asset"),
        "chain": line.get("chain"),
        "size": _stored_text(line.get("size")),
        "entry_price": _stored_text(line.get("entry_price")),
        "mark": _stored_text(line.get("mark")),
        "notional": _stored_text(line.get("notional")),
        "unrealized_pnl": _stored_text(line.get("unrealized_pnl")),
        "mmr": _stored_float(line.get("mmr")),
        "maintenance": _stored_text(line.get("maintenance")),
        "flags": _stored_flags(line.get("flags")),
    }


def breakdown_document(breakdown: Mapping[str, Any] | None) -> dict[str, object] | None:
    """The per-chain, per-token breakdown of the cycle that wrote it (``None``: not stored)."""
    if breakdown is None:
        return None
    return {
        "holdings": [holding_line(h) for h in breakdown.get("holdings", [])],
        "positions": [position_line(p) for p in breakdown.get("positions", [])],
    }


def health_document(health: StoredHealth) -> dict[str, object]:
    """An account's current health, flags, reasons and breakdown (``Account`` schema)."""
    document: dict[str, object] = {
        "account": health.account.lower(),
        "health": finite(health.health),
        "health_latency": finite(health.health_latency),
        "health_known": health.health_known,
        "flags": flag_names(health.flags),
        "actionable": health.actionable,
        "held_reasons": flag_names(health.held_reasons),
    }
    for name in MONEY_FIELDS:
        document[name] = decimal_text(getattr(health, name))
    document["cycle_id"] = health.cycle_id
    document["updated_at"] = health.updated_at
    document["breakdown"] = breakdown_document(health.breakdown)
    return document


def balance_line(balance: StoredBalance) -> dict[str, object]:
    """A stored raw balance: the last good ``raw`` at ``block`` (null: never read
    successfully); ``read_failed`` with ``failed_block`` while the latest read fails."""
    return {
        "chain": balance.chain,
        "token": balance.token.lower(),
        "raw": None if balance.raw is None else str(balance.raw),
        "block": balance.block_number,
        "block_hash": balance.block_hash,
        "read_failed": balance.read_failed,
        "failed_block": balance.failed_block_number,
    }


def position_document(position: Position) -> dict[str, object]:
    """A stored position as ``PUT /v1/positions`` takes it (numbers as decimal strings)."""
    return {
        "asset": position.asset,
        "chain": position.chain,
        "size": float_text(position.size),
        "entry_price": float_text(position.entry_price),
        "mmr_tiers": [
            {"up_to": tier.up_to, "rate": tier.rate}
            if tier.up_to is not None
            else {"rate": tier.rate}
            for tier in position.mmr_tiers
        ],
    }


def account_document(record: AccountRecord) -> dict[str, object]:
    """``/v1/accounts/{address}``: current state (null before any cycle), balances, positions."""
    return {
        "account": record.account.lower(),
        "state": None if record.health is None else health_document(record.health),
        "balances": [balance_line(b) for b in record.balances],
        "positions": [position_document(p) for p in record.positions],
    }


def cycle_document(cycle: StoredCycle | None) -> dict[str, object] | None:
    """The last stored cycle: what the listing is as of (``None`` before the first)."""
    if cycle is None:
        return None
    return {
        "cycle_id": cycle.id,
        "at": cycle.at,
        "blocks": dict(cycle.blocks),
        "accounts": cycle.accounts,
    }
