"""The keeper API application and its server.

    async with ApiServer(
        queries=store.queries, store=store, view=daemon, settings=config.api,
        metrics=metrics, markets=PositionMarkets.from_config(config),
    ) as server:                                   # binds api.listen; server.url
        ...

One middleware turns every failure into a JSON error (``daemon.api.errors``), so no request
ever gets aiohttp's text/plain pages or a traceback, and counts the request in the metrics;
requests the HTTP parser refuses, idle connections and the connection cap are handled below the
application (``daemon.api.server``). Access logs are structured and carry method, route, path,
status and duration only, each escaped (``daemon.logs.log_safe``: a ``%0A`` in a path cannot
forge a line): never headers, so never the ``Authorization`` bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from core.lifecycle import AsyncResource
from daemon.api.cluster_route import ClusterRoute
from daemon.api.dashboard import Dashboard
from daemon.api.errors import (
    INTERNAL_ERROR,
    ApiError,
    error_response,
    from_http_exception,
    store_unavailable,
)
from daemon.api.openapi import build_spec
from daemon.api.positions import PositionMarkets
from daemon.api.routes import KeeperRoutes
from daemon.api.server import UNREAD_BODY_LINGER_S, KeeperRunner
from daemon.api.stream import StreamHub
from daemon.api.stream_route import event_stream
from daemon.api.stress import StressRoutes
from daemon.api.view import DaemonView
from daemon.config.model import ApiConfig
from daemon.logs import log_safe
from daemon.metrics import Metrics
from daemon.store.errors import StoreUnavailable
from daemon.store.queries import StoreQueries
from daemon.store.writer import HealthStore

log = logging.getLogger(__name__)
access_log = logging.getLogger("daemon.api.access")

SHUTDOWN_GRACE_S = 5.0
"""In-flight requests get this long to finish on close before their connections are cut."""
UNMATCHED_ROUTE = "unmatched"
"""Metrics label of requests that matched no route (404s of arbitrary paths)."""
REJECTED_ROUTE = "rejected"
"""Access-log route of requests the HTTP parser refused (they have no trustworthy path)."""
ROUTE_KEY = web.RequestKey("crossmargin.route", str)
"""Where the error middleware leaves the request's route for the access log."""
HUB_KEY = web.AppKey("crossmargin.stream_hub", StreamHub)
"""The application's event stream hub (``daemon.api.stream``)."""


def _route_of(request: BaseRequest) -> str:
    """The route template (``/v1/accounts/{address}``): bounded label cardinality."""
    match = getattr(request, "match_info", None)
    resource = None if match is None else match.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


class KeeperAccessLogger(AbstractAccessLogger):
    """One structured line per request; no headers, no query string, every field escaped."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        route = request.get(ROUTE_KEY)
        if route is None:  # refused by the parser: the request line is not to be trusted
            method = path = "-"
            route = REJECTED_ROUTE
        else:
            method, path = log_safe(request.method), log_safe(request.path)
        self.logger.info(
            "http_request method=%s route=%s path=%s status=%d seconds=%.4f",
            method,
            log_safe(route),
            path,
            response.status,
            time,
        )


def _error_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def handle_errors(request: web.Request, handler: Handler) -> StreamResponse:
        started = time.perf_counter()
        request[ROUTE_KEY] = _route_of(request)
        response: StreamResponse
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            if exc.status < web.HTTPBadRequest.status_code:
                raise  # redirects and the like are not errors
            response = from_http_exception(exc)
        except StoreUnavailable as exc:
            # Expected while the database is down: no traceback, and keepers are told when
            # to come back instead of getting a 500.
            log.info("api_store_unavailable route=%s error=%s", _route_of(request), exc.problem)
            response = store_unavailable()
        except Exception:  # CancelledError is a BaseException: it passes through
            log.exception(
                "api_unhandled_error method=%s route=%s",
                log_safe(request.method),
                log_safe(request[ROUTE_KEY]),
            )
            response = error_response(500, INTERNAL_ERROR, "internal error")
        metrics.observe_http(
            route=request[ROUTE_KEY],
            method=request.method,
            status=response.status,
            seconds=time.perf_counter() - started,
        )
        return response

    return handle_errors


def build_app(
    *,
    queries: StoreQueries,
    store: HealthStore,
    view: DaemonView,
    settings: ApiConfig,
    metrics: Metrics,
    markets: PositionMarkets,
    cluster_ttl_s: float | None = None,
) -> web.Application:
    """The aiohttp application: every route, the JSON error middleware, the body limit.
    ``cluster_ttl_s``: ``cluster.lease_ttl_s`` in cluster mode (``/v1/cluster``)."""
    app = web.Application(
        middlewares=[_error_middleware(metrics)], client_max_size=settings.max_body_bytes
    )
    routes = KeeperRoutes(
        queries=queries,
        store=store,
        view=view,
        settings=settings,
        metrics=metrics,
        markets=markets,
        spec=build_spec(markets),
    )
    routes.register(app.router)
    StressRoutes(view=view, markets=markets, body_timeout_s=settings.body_timeout_s).register(
        app.router
    )
    Dashboard(queries).register(app.router)
    ClusterRoute(queries, cluster_ttl_s).register(app.router)
    hub = StreamHub(
        queries=queries,
        view=view,
        metrics=metrics,
        max_clients=settings.stream_max_clients,
        queue_events=settings.stream_queue_events,
    )
    app[HUB_KEY] = hub
    app.router.add_get(
        "/v1/stream",
        functools.partial(event_stream, hub=hub, heartbeat_s=settings.stream_heartbeat_s),
    )
    app.cleanup_ctx.append(functools.partial(_hub_running, hub=hub))
    app.on_shutdown.append(functools.partial(_end_streams, hub=hub))
    return app


async def _end_streams(app: web.Application, *, hub: StreamHub) -> None:
    """Closing: streams end now, before the grace period waits for in-flight requests."""
    del app
    hub.shutdown()


async def _hub_running(app: web.Application, *, hub: StreamHub) -> AsyncIterator[None]:
    """The hub's task runs while the application does."""
    del app
    task = asyncio.create_task(hub.run(), name="api-stream-hub")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ApiServer(AsyncResource):
    """Serves the keeper API on ``settings.listen`` while entered; closes gracefully on exit.

    Takes what ``build_app`` takes; ``app`` is the application it serves.
    """

    def __init__(
        self,
        *,
        queries: StoreQueries,
        store: HealthStore,
        view: DaemonView,
        settings: ApiConfig,
        metrics: Metrics,
        markets: PositionMarkets,
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
        cluster_ttl_s: float | None = None,
    ) -> None:
        self.app = build_app(
            queries=queries,
            store=store,
            view=view,
            settings=settings,
            metrics=metrics,
            markets=markets,
            cluster_ttl_s=cluster_ttl_s,
        )
        self.hub = self.app[HUB_KEY]
        """The event stream's hub: ``hub.wake()`` after each stored cycle with transitions."""
        self._settings = settings
        self._runner = KeeperRunner(
            self.app,
            max_connections=settings.max_connections,
            access_log_class=KeeperAccessLogger,
            access_log=access_log,
            keepalive_timeout=settings.idle_timeout_s,
            lingering_time=UNREAD_BODY_LINGER_S,
            shutdown_timeout=shutdown_grace_s,
        )
        self._site: web.TCPSite | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket (IPv6 hosts in brackets)."""
        if self.port is None:
            raise RuntimeError("ApiServer is not started")
        host = self._settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving (``port`` is then the real port, also for ``:0``)."""
        await self._runner.setup()
        try:
            self._site = web.TCPSite(self._runner, self._settings.host, self._settings.port)
            await self._site.start()
        except BaseException:  # e.g. the port is taken: release the runner before raising
            await self._runner.cleanup()
            raise
        self.port = int(self._runner.addresses[0][1])  # the real port, also for ":0"
        log.info("api_listening url=%s", self.url)

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish (grace period), close (idempotent)."""
        if self.port is None and self._site is None:
            return
        await self._runner.cleanup()
        self._site = None
        log.info("api_closed")
        self.port = None
