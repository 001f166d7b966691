"""The one JSON shape of each thing the daemon shows: a chain, a price, an account and its
breakdown. The HTTP API, the MQTT retained state and the CLI all print these documents (shapes:
``daemon.api.components``).

Conventions: money and other exact amounts are decimal strings in plain notation (never
``1E+2``); ``health`` is ``null`` when infinite (nothing owed) and when unknown (a liability
never read), told apart by ``health_known``; flags are lists of names
(``["LIQUIDATABLE", "STALE_PRICE"]``); addresses are lower-case. A breakdown is stored in the
form ``breakdown_record`` gives it and rendered by ``breakdown_document`` wherever it is shown.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from chains.rpc_endpoint import EndpointStatus
from chains.watcher import ChainStatus
from core.amounts import format_units, plain_decimal, scaled
from core.redaction import scrub_optional
from daemon.store.records import StoredHealth, StoredPrice
from margin.kernel import HealthTable
from margin.model import MONEY_FIELDS, Flag, flag_names
from oracles.model import AssetPrice
from oracles.sequencer import SequencerStatus
from venues.model import HEALTH_DECIMALS, LiquidationPlan, VenueAccount, VenuePosition

CRITICAL_HEALTH = 1.05  # health below this (and ≥ 1) is "critical"
WARNING_HEALTH = 1.2  # health below this (and ≥ CRITICAL_HEALTH) is "warning"


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


def decimal_text(value: Decimal) -> str:
    """A finite ``Decimal`` in plain notation (``Decimal("6E+4")`` → ``"60000"``)."""
    return format(value, "f")


def float_text(value: float) -> str | None:
    """A float as the shortest plain decimal that reads back to it (``3000.0`` → ``"3000"``);
    ``None`` if not finite."""
    if not math.isfinite(value):
        return None
    return decimal_text(Decimal(repr(value)).normalize())


def price_text(value: Decimal | None) -> str | None:
    """A price as a plain decimal without trailing zeros (``"3000.2"``, ``"60000"``), or
    ``None``; money keeps its fixed decimals (``decimal_text``)."""
    return None if value is None else plain_decimal(value)


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
    return list(cached_flag_names(value)) if isinstance(value, int) and value >= 0 else []


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


def account_document(
    state: StoredHealth, venues: Sequence[Mapping[str, object]] = ()
) -> dict[str, object]:
    """The ``Account`` document: an account's health, flags, reasons, money and breakdown.

    ``GET /v1/accounts/{a}`` ``state``, ``/v1/liquidatable``, the retained MQTT account state
    and ``crossmargin health --json`` all print this; ``cycle_id`` is ``null`` outside the
    store, ``breakdown`` ``null`` where none was built. ``venues`` are the account's venue
    entries (``venue_document``), by venue name.
    """
    document: dict[str, object] = {
        "account": state.account.lower(),
        "health": finite(state.health),
        "health_latency": finite(state.health_latency),
        "health_known": state.health_known,
        "bucket": health_bucket(state.health).value,
        "flags": list(cached_flag_names(int(state.flags))),
        "actionable": state.actionable,
        "held_reasons": list(cached_flag_names(int(state.held_reasons))),
    }
    for name in MONEY_FIELDS:
        document[name] = decimal_text(getattr(state, name))
    document["cycle_id"] = state.cycle_id
    document["updated_at"] = state.updated_at
    document["breakdown"] = breakdown_document(state.breakdown)
    document["venues"] = sorted(venues, key=lambda v: str(v.get("venue")))
    document["risk"] = risk_document(state.breakdown)
    return document


def _money_text(value: Decimal | None) -> str | None:
    return None if value is None else plain_decimal(value)


def venue_plan_document(plan: LiquidationPlan | None) -> dict[str, object] | None:
    """A venue liquidation plan: raw amounts as integer strings, USD as decimal strings."""
    if plan is None:
        return None
    return {
        "debt_asset": plan.debt_asset,
        "collateral_asset": plan.collateral_asset,
        "repay_raw": str(plan.repay_raw),
        "seize_raw": str(plan.seize_raw),
        "bonus": plain_decimal(plan.bonus),
        "profit_usd": _money_text(plan.profit_usd),
        "gas_units": plan.gas_units,
        "gas_usd": _money_text(plan.gas_usd),
        "market": plan.market,
        "call": {
            k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in plan.call.items()
        },
    }


_GROUP_FIGURES = ("scan_range", "loss", "loss_latency", "delta", "gamma", "vega", "horizon_s")


def risk_document(breakdown: Mapping[str, Any] | None) -> dict[str, object] | None:
    """``risk`` of the ``Account`` document from a stored breakdown (``None`` without one):
    the model, ``var_99``, ``es_975`` and ``options_value`` (USD), and per risk group its scan
    range, grid losses, greeks and horizon (``daemon.store.rows.risk_record``)."""
    risk = None if breakdown is None else breakdown.get("risk")
    if not isinstance(risk, Mapping):
        return None
    groups = risk.get("groups")
    return {
        "model": risk.get("model"),
        "var_99": _stored_float(risk.get("var_99")),
        "es_975": _stored_float(risk.get("es_975")),
        "options_value": _stored_text(risk.get("options_value")),
        "groups": {
            str(name): {k: _stored_float(g.get(k)) for k in _GROUP_FIGURES}
            for name, g in (groups.items() if isinstance(groups, Mapping) else ())
            if isinstance(g, Mapping)
        },
    }


def venue_position_document(position: VenuePosition) -> dict[str, object]:
    """One asset of an account in a venue (raw amounts as integer strings)."""
    return {
        "asset": position.asset,
        "asset_name": position.asset_name,
        "market": position.market,
        "decimals": position.decimals,
        "collateral_raw": str(position.collateral_raw),
        "supplied_raw": str(position.supplied_raw),
        "debt_raw": str(position.debt_raw),
        "collateral_weight": plain_decimal(position.collateral_weight),
    }


def venue_document(entry: VenueAccount) -> dict[str, object]:
    """An account's entry in one venue, as ``venues[]`` of the ``Account`` document shows it.

    ``health`` is the venue's health as an exact decimal and ``health_raw`` the venue's own
    fixed-point integer (Aave: ``healthFactor``, 1e18), both ``null`` without debt;
    ``liquidatable`` is the venue's own rule. ``health_at_consensus`` is the venue health
    with the venue's oracle at our consensus prices (set with ``ORACLE_DRIFT``).
    """
    return {
        "venue": entry.venue,
        "kind": entry.kind,
        "chain": entry.chain,
        "account": entry.account,
        "block": entry.block_number,
        "block_hash": entry.block_hash,
        "health": entry.health,
        "health_raw": None if entry.health_raw is None else str(entry.health_raw),
        "liquidatable": entry.liquidatable,
        "collateral_value": _money_text(entry.collateral_value),
        "debt_value": _money_text(entry.debt_value),
        "positions": [venue_position_document(p) for p in entry.positions],
        "plan": venue_plan_document(entry.plan),
        "flags": sorted(entry.flags),
        "stale": entry.stale,
        "health_at_consensus": (
            None
            if entry.health_at_consensus is None
            else format_units(entry.health_at_consensus, HEALTH_DECIMALS)
        ),
    }


def engine_state(
    account: str,
    table: HealthTable,
    i: int,
    *,
    value_decimals: int,
    at: float,
    breakdown: Mapping[str, Any] | None = None,
) -> StoredHealth:
    """Row ``i`` of the engine's ``HealthTable`` as the state ``account_document`` shows
    (money in the table is exact integer units); ``breakdown`` in its stored form
    (``daemon.store.rows.breakdown_record``)."""

    def money(column: str) -> Decimal:
        return scaled(int(getattr(table, column)[i]), value_decimals)

    return StoredHealth(
        account=account,
        health=float(table.health[i]),
        health_latency=float(table.health_latency[i]),
        **{name: money(name) for name in MONEY_FIELDS},
        flags=Flag(int(table.flags[i])),
        actionable=bool(table.actionable[i]),
        breakdown=None if breakdown is None else dict(breakdown),
        cycle_id=None,
        updated_at=at,
    )


@functools.cache
def cached_flag_names(flags: int) -> tuple[str, ...]:
    """``flag_names`` of a plain int, cached (there are only a few hundred combinations)."""
    return tuple(flag_names(Flag(flags)))


def endpoint_document(endpoint: EndpointStatus) -> dict[str, object]:
    """One RPC endpoint (its URL is already redacted by the pool).

    ``error_rate`` (failed or too-slow share of the last ``recent_requests``) and ``latency_ms``
    are what the breaker judges; ``hedge_delay_ms`` is how long a request may go unanswered
    there before a copy goes to the next endpoint, ``hedges`` how often that happened.
    """
    return {
        "url": endpoint.url,
        "state": endpoint.state.value,
        "consecutive_failures": endpoint.consecutive_failures,
        "error_rate": endpoint.error_rate,
        "recent_requests": endpoint.recent_requests,
        "latency_ms": endpoint.latency_ewma_ms,
        "hedge_delay_ms": endpoint.hedge_delay_ms,
        "hedges": endpoint.hedges,
        "requests": endpoint.requests,
        "errors": endpoint.errors,
        "chain_id_verified": endpoint.chain_id_verified,
        "last_error": scrub_optional(endpoint.last_error),
    }


def chain_document(
    status: ChainStatus, *, sequencer: SequencerStatus | None = None
) -> dict[str, object]:
    """A chain watcher's status as ``/v1/chains`` shows it.

    ``lag_s`` is the age of the last block read (what ``max_lag_s`` bounds); ``sequencer`` is
    ``null`` for chains without an uptime feed.
    """
    return {
        "name": status.chain,
        "chain_id": status.chain_id,
        "head": status.head_number,
        "head_hash": status.head_hash,
        "last_read_block": status.last_read_number,
        "last_read_hash": status.last_read_hash,
        "last_read_age_s": status.last_read_age_s,
        "since_head_s": status.since_head_s,
        "lag_s": status.last_read_age_s,
        "stale": status.stale,
        "sequencer": None if sequencer is None else sequencer.value,
        "reorgs": status.reorgs,
        "accounts": status.accounts,
        "holdings": status.holdings,
        "failed_reads": status.failed_reads,
        "last_error": scrub_optional(status.last_error),
        "endpoints": [
            endpoint_document(e) for e in status.endpoints if isinstance(e, EndpointStatus)
        ],
    }


def price_document(price: AssetPrice) -> dict[str, object]:
    """One asset's oracle round as ``/v1/prices`` shows it (prices as decimal strings)."""
    return {
        "asset": price.symbol,
        "status": price.status.value,
        "price": price_text(price.price),
        "price_low": price_text(price.price_low),
        "price_high": price_text(price.price_high),
        "held": price.held,
        "hold_reason": None if price.hold_reason is None else price.hold_reason.value,
        "used": list(price.used),
        "anchors": list(price.anchors),
        "dropped": {source: reason.value for source, reason in sorted(price.dropped.items())},
        "spread": price.spread,
        "observed_at": price.observed_at,
        "round_at": price.round_at,
        "volatility": price.volatility,
    }


def stored_price_document(price: StoredPrice) -> dict[str, object]:
    """The newest stored round of an asset, shaped like ``price_document``."""
    sources = price.sources
    return {
        "asset": price.asset,
        "status": price.status,
        "price": price_text(price.price),
        "price_low": price_text(price.price_low),
        "price_high": price_text(price.price_high),
        "held": price.held,
        "hold_reason": price.hold_reason,
        "used": list(sources.get("used", [])),
        "anchors": list(sources.get("anchors", [])),
        "dropped": dict(sources.get("dropped", {})),
        "spread": price.spread,
        "observed_at": price.observed_at,
        "round_at": price.round_at,
        "volatility": price.volatility,
    }
