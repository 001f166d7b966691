"""The retained account state's payload, formatted straight from the engine's results.

A market-wide move changes the retained state of most accounts at once (100,000 per move in
``bench/crash.py``), and the general path — ``engine_state`` (a ``StoredHealth`` with seven
``Decimal``s), ``account_document`` and ``encode_json``'s walk — was a fifth of the event
loop's time in a crash (bench/RESULTS.md, issue 14). Most accounts have neither a breakdown
(only flagged ones get one) nor venue entries: for them ``account_state_json`` formats the
documented JSON directly from row ``i`` of the ``HealthTable``. The bytes are those of
``encode_json(account_document(engine_state(...)))`` (a test holds them equal); an account with
a breakdown or venue entries takes the general path.
"""

from __future__ import annotations

import functools
import json
import math

from daemon.documents import cached_flag_names, health_bucket
from margin.kernel import HealthTable
from margin.model import HELD_REASONS, Flag

_COMPACT = (",", ":")  # encode_json's separators
_DEBT_UNKNOWN = int(Flag.DEBT_UNKNOWN)  # plain ints: ``Flag.__and__`` costs ~10 µs a document
_HELD_REASONS = int(HELD_REASONS)


def account_state_json(
    account: str, table: HealthTable, i: int, *, value_decimals: int, at: float
) -> bytes:
    """``encode_json(account_document(engine_state(account, table, i, value_decimals=…,
    at=at)))`` of an account without breakdown and venue entries, formatted directly."""
    flags = int(table.flags[i])
    health = float(table.health[i])

    def money(column: str) -> str:
        return _units_text(int(getattr(table, column)[i]), value_decimals)

    return (
        f'{{"account":{_json_string(account.lower())},'
        f'"actionable":{"true" if table.actionable[i] else "false"},'
        f'"breakdown":null,"bucket":"{health_bucket(health).value}",'
        f'"collateral_value":"{money("collateral_value")}","cycle_id":null,'
        f'"flags":{_flag_list(flags)},"health":{_number(health)},'
        f'"health_known":{"false" if flags & _DEBT_UNKNOWN else "true"},'
        f'"health_latency":{_number(float(table.health_latency[i]))},'
        f'"held_reasons":{_flag_list(flags & _HELD_REASONS)},'
        f'"liability_value":"{money("liability_value")}",'
        f'"maintenance":"{money("maintenance")}","risk":null,'
        f'"shortfall":"{money("shortfall")}",'
        f'"unrealized_pnl":"{money("unrealized_pnl")}",'
        f'"updated_at":{_number(at)},"venues":[],'
        f'"weighted_collateral":"{money("weighted_collateral")}",'
        f'"weighted_liability":"{money("weighted_liability")}"}}'
    ).encode()


def _units_text(raw: int, decimals: int) -> str:
    """``decimal_text(scaled(raw, decimals))`` without a ``Decimal``: ``-5, 2`` → ``-0.05``."""
    if not decimals:
        return str(raw)
    digits = str(-raw if raw < 0 else raw).rjust(decimals + 1, "0")
    return f"{'-' if raw < 0 else ''}{digits[:-decimals]}.{digits[-decimals:]}"


def _number(value: float) -> str:
    """A float as ``json.dumps`` writes it; ``null`` when not finite (``encode_json``)."""
    return float.__repr__(value) if math.isfinite(value) else "null"


def _json_string(text: str) -> str:
    # An address (0x + hex) needs no escaping; anything else goes through json.
    return f'"{text}"' if text.isascii() and text.isalnum() else json.dumps(text)


@functools.cache
def _flag_list(flags: int) -> str:
    """The JSON list of the names of ``flags`` (a few hundred combinations: cached)."""
    return json.dumps(list(cached_flag_names(flags)), separators=_COMPACT)
