"""The OpenAPI 3.1 document of the keeper API, built in code and served at ``/openapi.json``.

Built per deployment (``build_spec(markets)``): configured chains are the ``chain`` enum of
``/v1/liquidatable`` and, with the configured assets, of the positions body. Schemas:
``daemon.api.components``.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from core.addresses import JSON_SCHEMA_ADDRESS_PATTERN
from daemon.api import params
from daemon.api.components import Schema, component_schemas, enum_of, ref
from daemon.api.dashboard import (
    DEFAULT_WINDOW_S,
    MAX_POINTS,
    MAX_WINDOW_S,
    MIN_WINDOW_S,
)
from daemon.api.positions import PositionMarkets
from daemon.api.stress import stress_paths, stress_schemas

OPENAPI_VERSION = "3.1.0"
TITLE = "crossmargin keeper API"
PACKAGE = "crossmargin"
JSON = "application/json"


def _json(name: str, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": ref(name)}}}


def _error(description: str) -> Schema:
    return _json("Error", description)


BAD_REQUEST = _error("A parameter is malformed or out of range; `field` names it.")
STORE_UNAVAILABLE: Schema = {
    **_error("The database did not answer (in time): code `store_unavailable`; retry later."),
    "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _page() -> list[Schema]:
    return [
        _query(
            "limit",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": params.MAX_LIMIT,
                "default": params.DEFAULT_LIMIT,
            },
            "Page size.",
        ),
        _query(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": params.MAX_OFFSET, "default": 0},
            "Accounts to skip.",
        ),
    ]


ADDRESS_PARAMETER: Schema = {
    "name": "address",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": JSON_SCHEMA_ADDRESS_PATTERN},
    "description": "0x-prefixed 20-byte hex address, any case.",
}


def _get(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {"get": {"summary": summary, "responses": responses, **extra}}


def paths(markets: PositionMarkets) -> dict[str, Schema]:
    """Every operation."""
    chain_enum = enum_of(markets.chains)
    return {
        "/v1/liquidatable": _get(
            "Accounts with health < 1 and accounts whose health is unknown (held: a liability "
            "never read), largest shortfall first, with their breakdown.",
            {
                "200": _json("LiquidatableList", "One page of the ranking."),
                "400": BAD_REQUEST,
                "503": STORE_UNAVAILABLE,
            },
            parameters=[
                *_page(),
                _query("chain", chain_enum, "Only accounts holding something on this chain."),
                _query(
                    "min_shortfall",
                    {"type": "string", "pattern": params.UNSIGNED_DECIMAL_PATTERN},
                    "Only accounts short by at least this much (USD).",
                ),
                _query(
                    "actionable",
                    {"type": "boolean"},
                    "true: only accounts a keeper may liquidate now (no held reasons).",
                ),
            ],
        ),
        "/v1/accounts": _get(
            "Accounts carrying any of the given flags, by address.",
            {
                "200": _json("FlaggedList", "One page of accounts."),
                "400": BAD_REQUEST,
                "503": STORE_UNAVAILABLE,
            },
            parameters=[
                {
                    **_query(
                        "flag",
                        {
                            "type": "array",
                            "items": ref("Flag"),
                            "minItems": 1,
                            "maxItems": params.MAX_FLAGS,
                        },
                        "Flag name; repeat for any of several (flag=A&flag=B).",
                        required=True,
                    ),
                    "style": "form",
                    "explode": True,
                },
                *_page(),
            ],
        ),
        "/v1/accounts/{address}": _get(
            "One account: current state and breakdown, raw balances, positions.",
            {
                "200": _json("AccountDetail", "The account."),
                "400": BAD_REQUEST,
                "404": _error("The store knows nothing about this account."),
                "503": STORE_UNAVAILABLE,
            },
            parameters=[ADDRESS_PARAMETER],
        ),
        "/v1/positions/{address}": {
            "put": {
                "summary": "Replace an account's derivative positions ([] deletes them).",
                "security": [{"bearer": []}],
                "parameters": [ADDRESS_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": ref("PositionPut")}},
                },
                "responses": {
                    "200": _json("StoredPositions", "The positions now stored."),
                    "400": _error("The body or the address is invalid; `field` names it."),
                    "401": _error("No bearer token (see WWW-Authenticate)."),
                    "403": _error("Wrong token, or writes are disabled (no api.token)."),
                    "408": _error("The body did not arrive within api.body_timeout_s."),
                    "413": _error("The body is larger than api.max_body_bytes."),
                    "415": _error("The body is not application/json."),
                    "503": STORE_UNAVAILABLE,
                },
            }
        },
        "/v1/prices": _get(
            "Every asset's price, status and sources.",
            {
                "200": _json("PriceList", "Prices by asset."),
                "503": {
                    **STORE_UNAVAILABLE,
                    "description": "No live round yet and the database did not answer.",
                },
            },
        ),
        "/v1/chains": _get(
            "Every chain's head, last block read, lag, reorgs and RPC endpoints.",
            {"200": _json("ChainList", "Chains in config order.")},
        ),
        "/v1/cluster": _get(
            "Cluster mode: the replicas (with the shards each holds) and every shard's lease "
            "(owner, epoch, expiry; database clock). Any replica answers for all; "
            '"enabled": false with empty lists when cluster mode is off.',
            {"200": _json("Cluster", "Replicas and leases."), "503": STORE_UNAVAILABLE},
        ),
        "/v1/summary": _get(
            "Accounts by flag now and over time, the health histogram and latency-risky "
            "accounts by chain (what the dashboard at / shows).",
            {
                "200": _json("Summary", "The store at a glance."),
                "400": BAD_REQUEST,
                "503": STORE_UNAVAILABLE,
            },
            parameters=[
                _query(
                    "window_s",
                    {
                        "type": "integer",
                        "minimum": MIN_WINDOW_S,
                        "maximum": MAX_WINDOW_S,
                        "default": DEFAULT_WINDOW_S,
                    },
                    "History length in seconds.",
                ),
                _query(
                    "points",
                    {"type": "integer", "minimum": 2, "maximum": MAX_POINTS, "default": 60},
                    "History points, evenly spaced, the last one now.",
                ),
            ],
        ),
        "/v1/stream": _get(
            "Server-Sent Events: the MQTT events (liquidatable, latency_risk, recovered: id = "
            "the transition id) and chain/oracle status (event chain | oracle, no id: sent in "
            "full on connect, then on change). Last-Event-ID resumes from the outbox; a "
            "comment line every api.stream_heartbeat_s. Never ends by itself.",
            {
                "200": {
                    "description": "The stream.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "400": _error("Last-Event-ID is not an event id."),
                "503": {
                    **_error("api.stream_max_clients streams are open: code too_many_streams."),
                    "headers": {
                        "Retry-After": {
                            "description": "Seconds to wait.",
                            "schema": {"type": "integer"},
                        }
                    },
                },
            },
            parameters=[
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    "description": "Resume after this event id.",
                }
            ],
        ),
        **stress_paths(markets, {"400": BAD_REQUEST, "error": _error("")}),
        "/healthz": _get("Liveness.", {"200": _json("Liveness", "The process answers.")}),
        "/readyz": _get(
            "Readiness: every chain and every asset read at least once, no token whose reads "
            "all fail (read_failures names every failing token); the store answers and is "
            "written.",
            {
                "200": _json("Readiness", "Ready."),
                "503": _json("Readiness", "Not ready yet; `reasons` says why."),
            },
        ),
        "/metrics": _get(
            "Prometheus metrics.",
            {
                "200": {
                    "description": "Text exposition format 0.0.4.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        "/openapi.json": _get(
            "This document.",
            {"200": {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": {}}}}},
        ),
    }


def _version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_spec(markets: PositionMarkets) -> dict[str, Any]:
    """The whole OpenAPI document for a deployment with these assets and chains."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": _version(),
            "description": "Money is a decimal string; health is null when infinite "
            "(nothing owed) or unknown (health_known false: a liability never read); flags are "
            "names; addresses are lower-case. Errors are "
            '{"error": {"code", "message", "field"}}, also for requests the HTTP parser '
            "refuses (400) and connections beyond api.max_connections (503 "
            "too_many_connections).",
        },
        "paths": paths(markets),
        "components": {
            "schemas": {**component_schemas(markets), **stress_schemas(markets)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
