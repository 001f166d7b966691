"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) against
the real daemon on Anvil: it loads without a console error, shows the liquidatable count of
``/v1/liquidatable``, and after a price crash shows the new count without a reload. A
screenshot is written to the test's folder. The same daemon's ``/metrics`` carries every
metric the Grafana dashboard and the alert rules name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemonkit import BOB, World, eventually, get_json, world
from tests.dashkit import (
    CAROL,
    CHROMIUM_FLAGS,
    DAVE,
    chromium_or_skip,
    daemon_with_book,
    profile_dir,
    seed_book,
)
from tests.e2e.deploy_metrics import (
    PROMETHEUS_OWN,
    dashboard_expressions,
    metric_names,
    rule_expressions,
    scraped_names,
)
from tests.storekit import postgres_database

WAIT_S = 60.0
VIEWPORT = {"width": 1400, "height": 1800}


@pytest.fixture
async def e2e(tmp_path: Path) -> AsyncIterator[World]:
    async with postgres_database() as url, world(tmp_path, url) as w:
        w.set_eth("1800")  # Bob is liquidatable from the start
        await seed_book(w)
        yield w


async def listed_total(w: World) -> int:
    status, body = await get_json(w, "/v1/liquidatable")
    assert status == 200
    return int(body["total"])


async def shown(
    page: Any, selector: str, expected: str, what: str, *, within: bool = False
) -> None:
    """Wait until ``selector``'s text is ``expected`` (or contains it, ``within``); polled
    from here: the page's CSP forbids the string evaluation Playwright's own waits use."""
    deadline = time.monotonic() + WAIT_S
    last = None
    while time.monotonic() < deadline:
        last = await page.text_content(selector)
        if last == expected or (within and last is not None and expected in last):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: {selector} shows {last!r}, expected {expected!r}")


async def test_the_dashboard_shows_the_liquidatable_count_live(e2e: World, tmp_path: Path) -> None:
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    w = e2e
    async with daemon_with_book(w), async_playwright() as pw:
        browser = await pw.chromium.launch_persistent_context(
            str(profile_dir(tmp_path)),
            executable_path=executable,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            problems: list[str] = []
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            navigations: list[str] = []
            page.on(
                "framenavigated",
                lambda f: navigations.append(f.url) if f == page.main_frame else None,
            )

            await page.goto(f"{w.api}/")
            before = await listed_total(w)
            assert before == 1  # Bob
            await shown(page, "#liquidatable-count", str(before), "the first load")
            await shown(page, "#stream-state", "live", "the event stream")
            assert BOB[:8] in (await page.text_content("#liquidatable-table") or "")
            chains = await page.text_content("#chains-table") or ""
            assert "l1" in chains
            assert "l2" in chains
            assert "ETH" in (await page.text_content("#prices-table") or "")

            w.set_eth("1200")  # Bob, Carol and Dave go under; Erin holds
            await eventually(lambda: _is_three(listed_total(w)), WAIT_S, "three listed")
            await shown(page, "#liquidatable-count", "3", "after the crash")
            log = await page.text_content("#event-log") or ""
            assert "liquidatable" in log
            # /v1/liquidatable counts and lists in two reads: a refresh between them can show
            # the new total beside the old rows until the next one (the table is polled).
            for account in (BOB, CAROL, DAVE):
                await shown(page, "#liquidatable-table", account[:8], "the ranking", within=True)
            # The oracle's new price arrives on the stream too (status events).
            await shown(page, "#prices-table", "1,200", "the new ETH price", within=True)
            assert navigations == [f"{w.api}/"], "the page was reloaded"

            screenshot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            print(f"dashboard screenshot: {screenshot}")
            assert problems == []
        finally:
            await browser.close()


async def test_the_daemon_exports_every_metric_grafana_and_the_alerts_name(e2e: World) -> None:
    w = e2e
    named = metric_names([*dashboard_expressions(), *rule_expressions()]) - PROMETHEUS_OWN
    async with daemon_with_book(w):
        deadline = time.monotonic() + WAIT_S
        missing: set[str] = named
        while time.monotonic() < deadline:
            import aiohttp

            async with aiohttp.ClientSession() as session, session.get(f"{w.api}/metrics") as r:
                text = await r.text()
            missing = named - scraped_names(text)
            if not missing:
                break
            await asyncio.sleep(0.5)
    assert not missing, f"the daemon's /metrics lacks {sorted(missing)}"


async def _is_three(total: Any) -> bool:
    return bool(await total == 3)
