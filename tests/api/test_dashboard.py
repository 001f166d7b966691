"""``GET /v1/summary`` (SQL on both dialects, checked against the engine's own table) and the
dashboard's files: served from the package, read-only, under a strict Content-Security-Policy."""

from __future__ import annotations

import bisect
import math
import time

import aiohttp
import pytest

from daemon.store.summary import HEALTH_EDGES
from margin.model import Flag
from tests.api.apikit import running_api
from tests.api.streamkit import price_cycle

WINDOW_S = 3600
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


def engine_figures(engine) -> tuple[dict[str, int], list[int], int, int]:  # type: ignore[no-untyped-def]
    """Flag counts and the health histogram computed in Python from the engine's table."""
    table = engine.recompute_all()
    flags = {str(f.name): 0 for f in Flag if f}
    bins = [0] * (len(HEALTH_EDGES) + 1)
    no_debt = unknown = 0
    for bits, health in zip(table.flags.tolist(), table.health.tolist(), strict=True):
        for f in Flag:
            if f and bits & f:
                flags[str(f.name)] += 1
        if math.isnan(health):
            unknown += 1
        elif math.isinf(health):
            no_debt += 1
        else:
            bins[bisect.bisect_right(HEALTH_EDGES, health)] += 1
    return flags, bins, no_debt, unknown


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
async def test_the_summary_counts_and_history_match_the_engine(dialect: str) -> None:
    async with running_api(dialect=dialect) as api, aiohttp.ClientSession() as session:
        before, bins_before, _, _ = engine_figures(api.engine)
        now = time.time()
        await price_cycle(api, 1_000.0, now - 1_800)  # a crash half an hour ago …
        crashed, _, _, _ = engine_figures(api.engine)
        await price_cycle(api, 2_000.0, now - 600)  # … over ten minutes ago
        flags, bins, no_debt, unknown = engine_figures(api.engine)
        assert crashed["LIQUIDATABLE"] > before["LIQUIDATABLE"]
        url = f"{api.url}/v1/summary?window_s={WINDOW_S}&points=61"
        async with session.get(url) as response:
            assert response.status == 200, await response.text()
            summary = await response.json()
    assert summary["accounts"] == len(api.engine.accounts)
    assert summary["flags"] == flags
    assert [b["accounts"] for b in summary["health_histogram"]] == bins
    assert (summary["no_debt"], summary["health_unknown"]) == (no_debt, unknown)
    assert summary["health_histogram"][0]["from"] is None
    assert summary["health_histogram"][-1]["to"] is None
    assert bins == bins_before  # back at the same price, the same distribution
    points = summary["history"]
    assert len(points) == 61
    assert points[-1]["at"] == pytest.approx(now, abs=30)
    for point in points:
        age = now - point["at"]
        if age > 1_800:
            expected = before
        elif age > 600:
            expected = crashed
        else:
            expected = flags
        assert point["flags"] == expected, (age, point)
    # The latency-risky account holds something on both chains.
    assert summary["latency_risk_by_chain"] == dict.fromkeys(
        summary["latency_risk_by_chain"], flags["LATENCY_RISK"]
    )
    assert summary["as_of"]["cycle_id"] >= 3


@pytest.mark.parametrize(
    ("query", "field"),
    [("window_s=10", "window_s"), ("points=1", "points"), ("points=x", "points")],
)
async def test_summary_parameters_out_of_range_are_400(query: str, field: str) -> None:
    async with (
        running_api() as api,
        aiohttp.ClientSession() as session,
        session.get(f"{api.url}/v1/summary?{query}") as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"]["field"] == field


async def test_the_page_and_its_modules_are_served_read_only_under_a_strict_csp() -> None:
    async with running_api() as api, aiohttp.ClientSession() as session:
        async with session.get(f"{api.url}/") as page:
            assert page.status == 200
            assert page.content_type == "text/html"
            html = await page.text()
            csp = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "connect-src 'self'" in csp
        assert "form-action 'none'" in csp
        assert 'src="/static/app.js"' in html
        assert "http://" not in html
        assert "https://" not in html
        for name, kind in (
            ("app.js", "text/javascript"),
            ("charts.js", "text/javascript"),
            ("style.css", "text/css"),
        ):
            async with session.get(f"{api.url}/static/{name}") as asset:
                assert asset.status == 200, name
                assert asset.content_type == kind
                text = (await asset.text()).replace(SVG_NAMESPACE, "")
            assert "://" not in text, name
        # The page's code never writes: no method but GET, no positions endpoint.
        async with session.get(f"{api.url}/static/app.js") as app:
            code = await app.text()
        assert "PUT" not in code
        assert "POST" not in code
        assert "/v1/positions" not in code
        async with session.get(f"{api.url}/static/..%2fapp.py") as escape:
            assert escape.status == 404
            assert (await escape.json())["error"]["code"] == "not_found"
        async with session.post(f"{api.url}/") as post:
            assert post.status == 405
