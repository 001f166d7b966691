"""The operator's dashboard (``GET /``) and the summary it reads (``GET /v1/summary``).

The page is plain HTML, CSS and JavaScript modules shipped in the package
(``daemon/api/static/``, read once at start): no CDN, no build step, nothing fetched from
anywhere but this API. It only reads — the JSON endpoints and ``/v1/stream`` — and a
Content-Security-Policy forbids anything else: scripts, styles and connections from this
origin only, no forms, no frames.
"""

from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from daemon.api import params
from daemon.api.errors import ApiError, json_response
from daemon.api.schemas import cycle_document
from daemon.store.queries import StoreQueries
from daemon.store.summary import Summary

STATIC_PACKAGE = "daemon.api"
STATIC_DIR = "static"
INDEX = "index.html"
DEFAULT_WINDOW_S = 3600
MIN_WINDOW_S = 60
MAX_WINDOW_S = 7 * 86_400
DEFAULT_POINTS = 60
MAX_POINTS = 500
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file: its bytes and media type."""

    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every file of the static folder, by name (read from the installed package)."""
    folder = resources.files(STATIC_PACKAGE).joinpath(STATIC_DIR)
    assets: dict[str, Asset] = {}
    for entry in folder.iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        if entry.name.endswith(".js"):
            kind = "text/javascript"  # ES modules must be served as JavaScript
        assets[entry.name] = Asset(entry.read_bytes(), kind)
    return assets


class Dashboard:
    """Handlers of the page, its files and the summary."""

    def __init__(self, queries: StoreQueries) -> None:
        self.queries = queries
        self.assets = load_assets()

    def register(self, router: web.UrlDispatcher) -> None:
        """Add the dashboard's routes (GET only: nothing here writes)."""
        router.add_get("/", self.page)
        router.add_get("/static/{name}", self.static)
        router.add_get("/v1/summary", self.summary)

    def _file(self, name: str) -> web.Response:
        asset = self.assets.get(name)
        if asset is None:
            raise ApiError(404, "not_found", f"no dashboard file {name!r}", field="name")
        charset = "utf-8" if asset.content_type.startswith("text/") else None
        return web.Response(
            body=asset.body,
            content_type=asset.content_type,
            charset=charset,
            headers=PAGE_HEADERS,
        )

    async def page(self, _request: web.Request) -> web.Response:
        """The dashboard."""
        return self._file(INDEX)

    async def static(self, request: web.Request) -> web.Response:
        """One of the dashboard's files (names only: no path reaches the disk)."""
        return self._file(request.match_info["name"])

    async def summary(self, request: web.Request) -> web.Response:
        """Accounts by flag now and over ``window_s``, the health histogram, latency-risky
        accounts by chain."""
        q = request.query
        window = params.integer(
            q, "window_s", default=DEFAULT_WINDOW_S, low=MIN_WINDOW_S, high=MAX_WINDOW_S
        )
        points = params.integer(q, "points", default=DEFAULT_POINTS, low=2, high=MAX_POINTS)
        summary = await self.queries.summary(now=time.time(), window_s=window, points=points)
        return json_response(summary_document(summary))


def summary_document(summary: Summary) -> dict[str, object]:
    """``GET /v1/summary``'s JSON document."""
    return {
        "accounts": summary.accounts,
        "flags": dict(summary.flags),
        "actionable": summary.actionable,
        "health_histogram": [
            {"from": low, "to": high, "accounts": n} for low, high, n in summary.histogram
        ],
        "no_debt": summary.no_debt,
        "health_unknown": summary.health_unknown,
        "latency_risk_by_chain": dict(summary.latency_risk_by_chain),
        "history": [{"at": round(p.at, 3), "flags": dict(p.flags)} for p in summary.history],
        "as_of": cycle_document(summary.cycle),
    }
