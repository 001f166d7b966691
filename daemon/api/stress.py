"""``POST /v1/stress`` and ``GET /v1/stress/grid``: the live book under price and volatility
shocks (``margin.stress``), read-only and without a token.

Each request values a frozen snapshot of the daemon's in-memory engine
(``DaemonView.stress_book``) in a worker thread, so the event loop keeps serving while numpy
runs. Stress requests run one at a time, the others wait their turn; grid reports (21 full
passes: seconds over a large book) likewise, but apart: a grid works on its own snapshot under
its own lock, so a stress request never waits behind a grid. Nothing is written anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.api import params
from daemon.api.components import Schema, enum_of, ref
from daemon.api.errors import UNSUPPORTED_MEDIA_TYPE, ApiError, BadRequest, json_response
from daemon.api.positions import MAX_NAME_CHARS, PositionMarkets, read_body
from daemon.api.view import DaemonView
from daemon.stress_report import grid_document, stress_document
from margin.scenario import ScenarioBook
from margin.stress import (
    GRID_MAX_PERCENT,
    GRID_STEP_PERCENT,
    MAX_SHOCK,
    MAX_SHOCKS,
    MIN_SHOCK,
    TOP_ACCOUNTS,
    Shocks,
    StressInputError,
    run_stress,
    stress_grid,
)

log = logging.getLogger(__name__)

NOT_READY = "not_ready"
"""503 code: the daemon's engine has not started yet (nothing to stress)."""
JSON_MEDIA_TYPES = ("application/json",)

_Strict = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, frozen=True)
_Asset = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
_ShockMap = Annotated[dict[_Asset, float], Field(max_length=MAX_SHOCKS)]


class StressBody(BaseModel):
    """The request: relative shocks by asset (``-0.3`` is a 30 % fall)."""

    model_config = _Strict
    price_shocks: _ShockMap = Field(default_factory=dict)
    vol_shocks: _ShockMap = Field(default_factory=dict)


@dataclass(slots=True)
class StressRoutes:
    """The stress handlers and what they read from."""

    view: DaemonView
    markets: PositionMarkets
    body_timeout_s: float
    _one_stress_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)
    _one_grid_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)

    def register(self, router: web.UrlDispatcher) -> None:
        """Add the stress routes to ``router``."""
        router.add_post("/v1/stress", self.stress)
        router.add_get("/v1/stress/grid", self.grid)

    async def stress(self, request: web.Request) -> web.Response:
        """The book now and under the posted shocks."""
        if request.content_type not in JSON_MEDIA_TYPES:
            raise ApiError(415, UNSUPPORTED_MEDIA_TYPE, "the body must be application/json")
        body = await read_body(request, self.body_timeout_s)
        shocks = parse_shocks(body, self.markets.assets)
        async with self._one_stress_at_a_time:
            book = self._book()
            started = time.perf_counter()
            report = await asyncio.to_thread(run_stress, book, shocks)
        log.info(
            "stress_pass accounts=%d shocks=%d newly_liquidatable=%d seconds=%.3f",
            report.accounts,
            len(shocks.price) + len(shocks.vol),
            report.newly_liquidatable_count,
            time.perf_counter() - started,
        )
        return json_response(stress_document(report))

    async def grid(self, request: web.Request) -> web.Response:
        """Liquidatable accounts, shortfall and bad debt for moves of one asset."""
        asset = params.choice(request.query, "asset", self.markets.assets, "asset")
        if asset is None:
            raise BadRequest("asset", "is required (a configured asset such as ETH)")
        async with self._one_grid_at_a_time:
            book = self._book()
            report = await asyncio.to_thread(stress_grid, book, asset)
        return json_response(grid_document(report))

    def _book(self) -> ScenarioBook:
        book = self.view.stress_book()
        if book is None:
            raise ApiError(503, NOT_READY, "the engine has not started yet; retry later")
        return book


def parse_shocks(body: bytes, assets: frozenset[str]) -> Shocks:
    """Validate a POST body into ``Shocks`` (``BadRequest`` naming the first bad field)."""
    try:
        parsed = StressBody.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise BadRequest(None, "the body is not valid JSON") from None
        where = ".".join(str(p) for p in first["loc"] if p != "[key]") or None
        raise BadRequest(where, first["msg"]) from None
    try:
        shocks = Shocks(price=parsed.price_shocks, vol=parsed.vol_shocks)
        shocks.check_assets(assets)
    except StressInputError as exc:
        raise BadRequest(exc.field, exc.problem) from None
    return shocks


def stress_schemas(markets: PositionMarkets) -> dict[str, Schema]:
    """The named schemas of the stress routes."""
    count: Schema = {"type": "integer", "minimum": 0}
    money: Schema = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "examples": ["110.00"]}
    health: Schema = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}
    shock_map: Schema = {
        "type": "object",
        "propertyNames": enum_of(markets.assets),
        "additionalProperties": {"type": "number", "minimum": MIN_SHOCK, "maximum": MAX_SHOCK},
        "maxProperties": MAX_SHOCKS,
    }
    return {
        "StressRequest": {
            "type": "object",
            "properties": {
                "price_shocks": {
                    **shock_map,
                    "description": "Relative price moves by asset: -0.3 is a 30 % fall.",
                },
                "vol_shocks": {
                    **shock_map,
                    "description": "Relative moves of the volatility the engine uses and of "
                    "options' implied vols: 0.5 is +50 %. Under weighted and tiered, on "
                    "accounts without options, they move only health_latency.",
                },
            },
            "additionalProperties": False,
            "description": f"At most {MAX_SHOCKS} shocks in all.",
        },
        "StressedAccount": {
            "type": "object",
            "properties": {
                "account": {"type": "string"},
                "health_before": health,
                "health_after": health,
                "shortfall_after": money,
            },
            "required": ["account", "health_before", "health_after", "shortfall_after"],
        },
        "StressReport": {
            "type": "object",
            "properties": {
                "accounts": count,
                "liquidatable_before": count,
                "liquidatable_after": count,
                "newly_liquidatable_count": count,
                "newly_liquidatable": {
                    "type": "array",
                    "items": ref("StressedAccount"),
                    "maxItems": TOP_ACCOUNTS,
                    "description": f"The {TOP_ACCOUNTS} largest shortfalls among accounts "
                    "liquidatable after and not before.",
                },
                "total_shortfall_after": money,
                "bad_debt_after": {
                    **money,
                    "description": "Σ max(0, L − (C + U + O)), unweighted, at shocked prices.",
                },
                "latency_risk_before": count,
                "latency_risk_after": count,
                "health_unknown": count,
            },
            "required": [
                "accounts",
                "liquidatable_before",
                "liquidatable_after",
                "newly_liquidatable_count",
                "newly_liquidatable",
                "total_shortfall_after",
                "bad_debt_after",
                "latency_risk_before",
                "latency_risk_after",
                "health_unknown",
            ],
        },
        "StressGrid": {
            "type": "object",
            "properties": {
                "asset": {"type": "string"},
                "accounts": count,
                "liquidatable_before": count,
                "points": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "move": {"type": "number"},
                            "liquidatable": count,
                            "newly_liquidatable": count,
                            "total_shortfall": money,
                            "bad_debt": money,
                        },
                        "required": [
                            "move",
                            "liquidatable",
                            "newly_liquidatable",
                            "total_shortfall",
                            "bad_debt",
                        ],
                    },
                },
            },
            "required": ["asset", "accounts", "liquidatable_before", "points"],
        },
    }


def stress_paths(markets: PositionMarkets, errors: Mapping[str, Schema]) -> dict[str, Schema]:
    """The stress operations; ``errors`` maps ``400``, ``503`` … to the spec's error replies."""
    json_of = "application/json"
    not_ready = {**errors["error"], "description": "The engine has not started: code not_ready."}
    return {
        "/v1/stress": {
            "post": {
                "summary": "The live book under price and volatility shocks: who becomes "
                "liquidatable, total shortfall and bad debt. Read-only, no token.",
                "requestBody": {
                    "required": True,
                    "content": {json_of: {"schema": ref("StressRequest")}},
                },
                "responses": {
                    "200": {
                        "description": "Before and after.",
                        "content": {json_of: {"schema": ref("StressReport")}},
                    },
                    "400": errors["400"],
                    "408": {**errors["error"], "description": "The body arrived too slowly."},
                    "413": {**errors["error"], "description": "The body is too large."},
                    "415": {**errors["error"], "description": "The body is not JSON."},
                    "503": not_ready,
                },
            }
        },
        "/v1/stress/grid": {
            "get": {
                "summary": f"Liquidatable accounts, shortfall and bad debt for price moves of "
                f"one asset from -{GRID_MAX_PERCENT} % to +{GRID_MAX_PERCENT} % in "
                f"{GRID_STEP_PERCENT} % steps.",
                "parameters": [
                    {
                        "name": "asset",
                        "in": "query",
                        "required": True,
                        "schema": enum_of(markets.assets),
                        "description": "The asset that moves.",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "One point per move.",
                        "content": {json_of: {"schema": ref("StressGrid")}},
                    },
                    "400": errors["400"],
                    "503": not_ready,
                },
            }
        },
    }
