"""Request handlers of the keeper API (shapes: ``daemon.api.openapi``; how the app is put
together and served: ``daemon.api.app``)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from core.redaction import scrub
from daemon.api import params
from daemon.api.auth import require_bearer
from daemon.api.errors import (
    NOT_FOUND,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
    json_response,
)
from daemon.api.positions import PositionMarkets, parse_positions, read_body
from daemon.api.schemas import (
    account_detail_document,
    cycle_document,
    option_document,
    position_document,
)
from daemon.api.view import DaemonView
from daemon.config.model import ApiConfig
from daemon.documents import account_document, stored_price_document
from daemon.metrics import CONTENT_TYPE, Metrics
from daemon.store.errors import StoreUnavailable
from daemon.store.queries import StoreQueries
from daemon.store.writer import HealthStore
from margin.model import flag_names

log = logging.getLogger(__name__)

JSON_MEDIA_TYPES = ("application/json",)


@dataclass(slots=True)
class KeeperRoutes:
    """The handlers and everything they read from."""

    queries: StoreQueries
    store: HealthStore
    view: DaemonView
    settings: ApiConfig
    metrics: Metrics
    markets: PositionMarkets
    spec: dict[str, Any]
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def register(self, router: web.UrlDispatcher) -> None:
        """Add every route to ``router``."""
        router.add_get("/v1/liquidatable", self.liquidatable)
        router.add_get("/v1/accounts", self.accounts_by_flag)
        router.add_get("/v1/accounts/{address}", self.account)
        router.add_put("/v1/positions/{address}", self.put_positions)
        router.add_get("/v1/prices", self.prices)
        router.add_get("/v1/chains", self.chains)
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz)
        router.add_get("/metrics", self.metrics_text)
        router.add_get("/openapi.json", self.openapi)

    # ---- keepers ---------------------------------------------------------------------------

    async def liquidatable(self, request: web.Request) -> web.Response:
        """Accounts with health < 1 or unknown health, largest shortfall first, with their
        breakdowns."""
        q = request.query
        limit = params.integer(
            q, "limit", default=params.DEFAULT_LIMIT, low=1, high=params.MAX_LIMIT
        )
        offset = params.integer(q, "offset", default=0, low=0, high=params.MAX_OFFSET)
        chain = params.choice(q, "chain", self.markets.chains, "chain")
        venue = params.choice(q, "venue", self.markets.venues, "venue")
        min_shortfall = params.unsigned_decimal(q, "min_shortfall")
        actionable_only = params.boolean(q, "actionable") is True
        page = await self.queries.liquidatable_page(
            limit=limit,
            offset=offset,
            actionable_only=actionable_only,
            min_shortfall=min_shortfall,
            chain=chain,
            venue=venue,
        )
        return json_response(
            {
                "accounts": [
                    account_document(h, page.venues.get(h.account, [])) for h in page.accounts
                ],
                "venue_positions": page.venue_positions,
                "venue_total": page.venue_total,
                "total": page.total,
                "limit": limit,
                "offset": offset,
                "as_of": cycle_document(page.cycle),
            }
        )

    async def accounts_by_flag(self, request: web.Request) -> web.Response:
        """Accounts carrying any of the ``flag`` parameters, by address."""
        q = request.query
        flags = params.flags(q, "flag")
        limit = params.integer(
            q, "limit", default=params.DEFAULT_LIMIT, low=1, high=params.MAX_LIMIT
        )
        offset = params.integer(q, "offset", default=0, low=0, high=params.MAX_OFFSET)
        page = await self.queries.accounts_with_flags(flags, limit=limit, offset=offset)
        return json_response(
            {
                "accounts": [
                    account_document(h, page.venues.get(h.account, [])) for h in page.accounts
                ],
                "flags": flag_names(flags),
                "limit": limit,
                "offset": offset,
                "as_of": cycle_document(page.cycle),
            }
        )

    async def account(self, request: web.Request) -> web.Response:
        """One account: current state and breakdown, raw balances, positions."""
        address = params.address(request.match_info["address"])
        record = await self.queries.account(address)
        if record is None:
            raise ApiError(404, NOT_FOUND, f"no account {address} in the store", field="address")
        return json_response(account_detail_document(address, record))

    # ---- the protocol ----------------------------------------------------------------------

    async def put_positions(self, request: web.Request) -> web.Response:
        """Replace an account's positions (an empty list deletes them); bearer token needed."""
        require_bearer(request, self.settings.token)
        address = params.address(request.match_info["address"])
        if request.content_type not in JSON_MEDIA_TYPES:
            raise ApiError(415, UNSUPPORTED_MEDIA_TYPE, "the body must be application/json")
        # aiohttp answers 413 beyond api.max_body_bytes; a body that trickles in is a 408.
        body = await read_body(request, self.settings.body_timeout_s)
        posted = parse_positions(address, body, self.markets, now=time.time())
        async with self._write_lock:
            removed = await self.store.replace_positions(
                address, posted.positions, options=posted.options
            )
            now = await self.store.positions(address)
            options = await self.store.options(address)
        log.info(
            "positions_replaced account=%s positions=%d options=%d removed=%d",
            address,
            len(posted.positions),
            len(posted.options),
            removed,
        )
        await self.view.position_changed(address)
        return json_response(
            {
                "account": address,
                "positions": [position_document(p) for p in now],
                "options": [option_document(o) for o in options],
            }
        )

    # ---- operators -------------------------------------------------------------------------

    async def prices(self, _request: web.Request) -> web.Response:
        """The oracle's last round per asset (or the newest stored round)."""
        live = self.view.price_statuses()
        if live is None:
            stored = await self.queries.latest_prices()
            documents = [stored_price_document(stored[a]) for a in sorted(stored)]
            return json_response({"prices": documents})
        return json_response({"prices": list(live)})

    async def chains(self, _request: web.Request) -> web.Response:
        """Every chain watcher's status."""
        return json_response({"chains": list(self.view.chain_statuses())})

    async def healthz(self, _request: web.Request) -> web.Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        """Readiness: 503 with the reasons until every chain and asset was read once, and
        while a token's reads all fail (``read_failures`` names every failing token), and while
        the store does not answer or the engine cannot write to it."""
        reasons = [scrub(reason) for reason in self.view.readiness()]  # may quote errors
        failures = list(self.view.read_failures())
        try:
            await self.queries.ping()
        except StoreUnavailable as exc:
            reasons.append(scrub(f"store unavailable: {exc.problem}"))
        return json_response(
            {"ready": not reasons, "reasons": reasons, "read_failures": failures},
            status=503 if reasons else 200,
        )

    async def metrics_text(self, _request: web.Request) -> web.Response:
        """Prometheus exposition."""
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def openapi(self, _request: web.Request) -> web.Response:
        """This API's OpenAPI document."""
        return json_response(self.spec)
