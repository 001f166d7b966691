"""The named schemas of the OpenAPI document (``components/schemas``; paths: ``openapi``).

Shapes follow ``daemon.api.schemas`` (reads) and ``daemon.api.positions`` (the PUT body).
The configured assets and chains are enums of the PUT body, so clients (and the schemathesis
test) know which values a position may name.
"""

from __future__ import annotations

from typing import Any

from core.addresses import JSON_SCHEMA_LOWER_ADDRESS_PATTERN
from core.domain import PriceStatus
from daemon.api.positions import (
    MAX_ABS_SIZE,
    MAX_EXPIRY,
    MAX_NUMBER_CHARS,
    MAX_POSITIONS,
    MAX_PRICE,
    MAX_TIERS,
    PRICE_PATTERN,
    SIZE_PATTERN,
    PositionMarkets,
)
from daemon.documents import HealthBucket
from margin.model import MONEY_FIELDS, Flag, MarginModel
from margin.options import MAX_IMPLIED_VOL

Schema = dict[str, Any]

DECIMAL: Schema = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "examples": ["110.00"]}
UINT: Schema = {"type": "string", "pattern": r"^[0-9]+$"}
LOWER_ADDRESS: Schema = {"type": "string", "pattern": JSON_SCHEMA_LOWER_ADDRESS_PATTERN}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def enum_of(values: frozenset[str]) -> Schema:
    """A string limited to ``values`` (any string when there are none: ``enum`` can't be [])."""
    return {"type": "string", "enum": sorted(values)} if values else {"type": "string"}


def _null(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _flags() -> Schema:
    return {"type": "array", "items": ref("Flag")}


def _number_input(pattern: str, low: float, high: float) -> Schema:
    return {
        "anyOf": [
            {"type": "number", "minimum": low, "maximum": high},
            {"type": "string", "pattern": pattern, "maxLength": MAX_NUMBER_CHARS},
        ]
    }


def component_schemas(markets: PositionMarkets) -> dict[str, Schema]:
    """Every named schema (``Account``, ``HoldingLine``, ``PositionPut``, …)."""
    text, num, integer, boolean = (
        {"type": "string"},
        {"type": "number"},
        {"type": "integer"},
        {"type": "boolean"},
    )
    names = {"type": "array", "items": text}
    return {
        "Flag": {"type": "string", "enum": [f.name for f in Flag if f]},
        "Error": _object(
            {
                "error": _object(
                    {"code": text, "message": text, "field": text}, required=["code", "message"]
                )
            }
        ),
        "HoldingLine": _object(
            {
                "chain": text,
                "token": text,
                "asset": text,
                "role": {"type": "string", "enum": ["collateral", "liability"]},
                "raw": _null(UINT),
                "amount": _null(DECIMAL),
                "price": _null(DECIMAL),
                "value": _null(DECIMAL),
                "weight": _null(num),
                "weighted_value": _null(DECIMAL),
                "block": integer,
                "flags": _flags(),
            }
        ),
        "PositionLine": _object(
            {
                "asset": text,
                "chain": text,
                "size": _null(DECIMAL),
                "entry_price": _null(DECIMAL),
                "mark": _null(DECIMAL),
                "notional": _null(DECIMAL),
                "unrealized_pnl": _null(DECIMAL),
                "mmr": _null(num),
                "maintenance": _null(DECIMAL),
                "flags": _flags(),
            }
        ),
        "Breakdown": _object(
            {
                "holdings": {"type": "array", "items": ref("HoldingLine")},
                "positions": {"type": "array", "items": ref("PositionLine")},
            }
        ),
        "Account": _object(
            {
                "account": LOWER_ADDRESS,
                "health": {
                    **_null({"type": "number", "minimum": 0}),
                    "description": "null: ∞ (no debt) when health_known, unknown otherwise",
                },
                "health_latency": _null({"type": "number", "minimum": 0}),
                "health_known": {
                    "type": "boolean",
                    "description": "false: a liability was never read (DEBT_UNKNOWN); the "
                    "account is held, health and health_latency are null",
                },
                "bucket": {
                    **enum_of(frozenset(b.value for b in HealthBucket)),
                    "description": "health band: liquidatable < 1 ≤ critical < 1.05 ≤ warning "
                    "< 1.2 ≤ healthy; no_debt (∞), unknown (health_known false)",
                },
                "flags": _flags(),
                "actionable": boolean,
                "held_reasons": _flags(),
                **dict.fromkeys(MONEY_FIELDS, DECIMAL),
                "cycle_id": {
                    **_null(integer),
                    "description": "the stored cycle that last changed it; null outside the "
                    "store (MQTT, crossmargin health)",
                },
                "updated_at": num,
                "breakdown": _null(ref("Breakdown")),
                "venues": {
                    "type": "array",
                    "items": ref("VenueEntry"),
                    "description": "the account's entries in every configured venue",
                },
                "risk": {
                    **_null(ref("Risk")),
                    "description": "portfolio-model figures, where a breakdown was built",
                },
            }
        ),
        "GroupRisk": _object(
            {
                "scan_range": num,
                "loss": num,
                "loss_latency": num,
                "delta": num,
                "gamma": num,
                "vega": num,
                "horizon_s": num,
            }
        ),
        "Risk": _object(
            {
                "model": {"type": "string", "enum": [m.value for m in MarginModel]},
                "var_99": num,
                "es_975": num,
                "options_value": DECIMAL,
                "groups": {"type": "object", "additionalProperties": ref("GroupRisk")},
            }
        ),
        **venue_schemas(),
        "BalanceLine": _object(
            {
                "chain": text,
                "token": text,
                "raw": {**_null(UINT), "description": "last good value; null: never read"},
                "block": integer,
                "block_hash": text,
                "read_failed": boolean,
                "failed_block": {**_null(integer), "description": "block of the failed read"},
            }
        ),
        "StoredTier": _object({"rate": num, "up_to": num}, required=["rate"]),
        "StoredPosition": _object(
            {
                "asset": text,
                "chain": text,
                "size": DECIMAL,
                "entry_price": DECIMAL,
                "mmr_tiers": {"type": "array", "items": ref("StoredTier")},
            }
        ),
        "StoredOption": _object(
            {
                "kind": {"type": "string", "enum": ["option"]},
                "asset": text,
                "chain": text,
                "size": DECIMAL,
                "right": {"type": "string", "enum": ["call", "put"]},
                "strike": DECIMAL,
                "expiry": integer,
                "implied_vol": DECIMAL,
            }
        ),
        "AccountDetail": _object(
            {
                "account": LOWER_ADDRESS,
                "state": _null(ref("Account")),
                "balances": {"type": "array", "items": ref("BalanceLine")},
                "positions": {"type": "array", "items": ref("StoredPosition")},
                "venues": {"type": "array", "items": ref("VenueEntry")},
                "options": {"type": "array", "items": ref("StoredOption")},
            }
        ),
        "AsOf": _object(
            {
                "cycle_id": integer,
                "at": num,
                "blocks": {"type": "object", "additionalProperties": integer},
                "accounts": integer,
            }
        ),
        "LiquidatableList": _object(
            {
                "accounts": {"type": "array", "items": ref("Account")},
                "venue_positions": {
                    "type": "array",
                    "items": ref("VenueEntry"),
                    "description": "liquidatable venue entries, most profitable plan first "
                    "(then largest shortfall); ?venue= keeps one venue's",
                },
                "venue_total": integer,
                "total": integer,
                "limit": integer,
                "offset": integer,
                "as_of": _null(ref("AsOf")),
            }
        ),
        "FlaggedList": _object(
            {
                "accounts": {"type": "array", "items": ref("Account")},
                "flags": _flags(),
                "limit": integer,
                "offset": integer,
                "as_of": _null(ref("AsOf")),
            }
        ),
        "Price": _object(
            {
                "asset": text,
                "status": {"type": "string", "enum": [s.value for s in PriceStatus]},
                "price": _null(DECIMAL),
                "price_low": _null(DECIMAL),
                "price_high": _null(DECIMAL),
                "held": boolean,
                "hold_reason": _null(text),
                "used": names,
                "anchors": names,
                "dropped": {"type": "object", "additionalProperties": text},
                "spread": _null(num),
                "observed_at": _null(num),
                "round_at": _null(num),
                "volatility": _null(num),
            },
            required=["asset", "status", "price"],
        ),
        "Endpoint": _object(
            {
                "url": text,
                "state": text,
                "consecutive_failures": integer,
                "error_rate": _null(num),
                "recent_requests": integer,
                "latency_ms": _null(num),
                "hedge_delay_ms": _null(num),
                "hedges": integer,
                "requests": integer,
                "errors": integer,
                "chain_id_verified": boolean,
                "last_error": _null(text),
            },
            required=["url", "state"],
        ),
        "Chain": _object(
            {
                "name": text,
                "chain_id": integer,
                "head": _null(integer),
                "head_hash": _null(text),
                "last_read_block": _null(integer),
                "last_read_hash": _null(text),
                "last_read_age_s": _null(num),
                "since_head_s": _null(num),
                "lag_s": _null(num),
                "stale": boolean,
                "sequencer": _null({"type": "string", "enum": ["UP", "DOWN", "GRACE"]}),
                "reorgs": integer,
                "accounts": integer,
                "holdings": integer,
                "failed_reads": integer,
                "last_error": _null(text),
                "endpoints": {"type": "array", "items": ref("Endpoint")},
            },
            required=["name", "chain_id", "stale"],
        ),
        "TierInput": {
            **_object(
                {
                    "up_to": _null({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_PRICE}),
                    "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                },
                required=["rate"],
            ),
            "additionalProperties": False,
        },
        "PositionInput": {
            **_object(
                {
                    "kind": {"type": "string", "enum": ["perp"], "default": "perp"},
                    "asset": enum_of(markets.assets),
                    "chain": enum_of(markets.chains),
                    "size": _number_input(SIZE_PATTERN, -MAX_ABS_SIZE, MAX_ABS_SIZE),
                    "entry_price": _number_input(PRICE_PATTERN, 0, MAX_PRICE),
                    "mmr_tiers": {
                        "type": "array",
                        "items": ref("TierInput"),
                        "minItems": 1,
                        "maxItems": MAX_TIERS,
                        "description": "Notional slices: up_to strictly increasing, the last "
                        "tier without up_to.",
                    },
                },
                required=["asset", "chain", "size", "entry_price", "mmr_tiers"],
            ),
            "additionalProperties": False,
        },
        "OptionInput": {
            **_object(
                {
                    "kind": {"type": "string", "enum": ["option"]},
                    "asset": enum_of(markets.assets),
                    "chain": enum_of(markets.chains),
                    "size": _number_input(SIZE_PATTERN, -MAX_ABS_SIZE, MAX_ABS_SIZE),
                    "right": {"type": "string", "enum": ["call", "put"]},
                    "strike": {
                        **_number_input(PRICE_PATTERN, 0, MAX_PRICE),
                        "description": "USD, > 0",
                    },
                    "expiry": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": MAX_EXPIRY,
                        "description": "unix seconds, in the future",
                    },
                    "implied_vol": {
                        **_number_input(PRICE_PATTERN, 0, MAX_IMPLIED_VOL),
                        "description": "annualized, > 0 (0.6 = 60 %)",
                    },
                }
            ),
            "additionalProperties": False,
        },
        "PositionPut": {
            **_object(
                {
                    "positions": {
                        "type": "array",
                        "items": {"anyOf": [ref("PositionInput"), ref("OptionInput")]},
                        "maxItems": MAX_POSITIONS,
                        "description": "The account's complete set: perps one per asset, option "
                        "lines one per (asset, chain, right, strike, expiry); [] deletes.",
                    }
                }
            ),
            "additionalProperties": False,
        },
        "StoredPositions": _object(
            {
                "account": LOWER_ADDRESS,
                "positions": {"type": "array", "items": ref("StoredPosition")},
                "options": {"type": "array", "items": ref("StoredOption")},
            }
        ),
        "PriceList": _object({"prices": {"type": "array", "items": ref("Price")}}),
        "ChainList": _object({"chains": {"type": "array", "items": ref("Chain")}}),
        "Readiness": _object(
            {
                "ready": boolean,
                "reasons": names,
                "read_failures": {
                    "type": "array",
                    "description": "Tokens whose latest read failed for some account; not "
                    "ready while one fails for every account read.",
                    "items": _object(
                        {"chain": text, "token": text, "failed": integer, "watched": integer}
                    ),
                },
            }
        ),
        "Liveness": _object({"status": {"type": "string", "enum": ["ok"]}}),
        **cluster_schemas(),
        **summary_schemas(),
    }


def cluster_schemas() -> dict[str, Schema]:
    """``GET /v1/cluster``'s document."""
    shard: Schema = {"type": "integer", "minimum": 0}
    seconds: Schema = {"type": "number", "description": "Unix seconds (database clock)."}
    return {
        "Cluster": _object(
            {
                "enabled": {"type": "boolean"},
                "now": _null(seconds),
                "replicas": {
                    "type": "array",
                    "items": _object(
                        {
                            "id": {"type": "string"},
                            "last_seen": seconds,
                            "alive": {"type": "boolean"},
                            "shards": {"type": "array", "items": shard},
                        }
                    ),
                },
                "shards": {
                    "type": "array",
                    "items": _object(
                        {
                            "shard": shard,
                            "owner": _null({"type": "string"}),
                            "epoch": {"type": "integer", "minimum": 0},
                            "expires_at": _null(seconds),
                        }
                    ),
                },
            }
        )
    }


def venue_schemas() -> dict[str, Schema]:
    """An account's entry in one venue (``daemon.documents.venue_document``)."""
    text: Schema = {"type": "string"}
    raw: Schema = UINT
    return {
        "VenuePlan": _object(
            {
                "debt_asset": LOWER_ADDRESS,
                "collateral_asset": LOWER_ADDRESS,
                "repay_raw": raw,
                "seize_raw": {**raw, "description": "collateral underlying received"},
                "bonus": DECIMAL,
                "profit_usd": _null(DECIMAL),
                "gas_units": {"type": "integer"},
                "gas_usd": _null(DECIMAL),
                "market": _null(text),
                "call": {"type": "object", "description": "the exact arguments to send"},
            }
        ),
        "VenuePosition": _object(
            {
                "asset": LOWER_ADDRESS,
                "asset_name": _null(text),
                "market": _null(text),
                "decimals": _null({"type": "integer"}),
                "collateral_raw": raw,
                "supplied_raw": raw,
                "debt_raw": raw,
                "collateral_weight": DECIMAL,
            }
        ),
        "VenueEntry": _object(
            {
                "venue": text,
                "kind": {"type": "string", "enum": ["aave_v3", "morpho_blue"]},
                "chain": text,
                "account": LOWER_ADDRESS,
                "block": {"type": "integer"},
                "block_hash": text,
                "health": {**_null(DECIMAL), "description": "null: no debt"},
                "health_raw": {
                    **_null(raw),
                    "description": "the venue's fixed point (Aave healthFactor, 1e18)",
                },
                "liquidatable": {"type": "boolean"},
                "collateral_value": _null(DECIMAL),
                "debt_value": _null(DECIMAL),
                "positions": {"type": "array", "items": ref("VenuePosition")},
                "plan": _null(ref("VenuePlan")),
                "flags": {"type": "array", "items": text},
                "stale": {"type": "boolean"},
                "health_at_consensus": {
                    **_null(DECIMAL),
                    "description": "venue health with its oracle at our consensus (drift)",
                },
            }
        ),
    }


def summary_schemas() -> dict[str, Schema]:
    """``GET /v1/summary``'s document."""
    integer: Schema = {"type": "integer", "minimum": 0}
    bound: Schema = _null({"type": "number"})
    flag_counts: Schema = _object({str(f.name): integer for f in Flag if f})
    return {
        "FlagCounts": {**flag_counts, "description": "Accounts carrying each flag."},
        "Summary": _object(
            {
                "accounts": integer,
                "flags": ref("FlagCounts"),
                "actionable": {**integer, "description": "Liquidatable, no held reason."},
                "health_histogram": {
                    "type": "array",
                    "description": "Accounts by health: from <= health < to (null: open end).",
                    "items": _object({"from": bound, "to": bound, "accounts": integer}),
                },
                "no_debt": integer,
                "health_unknown": integer,
                "latency_risk_by_chain": {
                    "type": "object",
                    "additionalProperties": integer,
                    "description": "Latency-risky accounts per chain they hold something on.",
                },
                "history": {
                    "type": "array",
                    "description": "Accounts by flag at evenly spaced times, oldest first, "
                    "rebuilt from the stored transitions.",
                    "items": _object({"at": {"type": "number"}, "flags": ref("FlagCounts")}),
                },
                "as_of": _null(ref("AsOf")),
            }
        ),
    }
