"""The real daemon with a small book for the dashboard and stream tests, and Debian's Chromium
driven by Playwright for Python.

The book (``tests.daemonkit`` world: WETH on l1, a USDC debt token on l2, ETH from three
loopback sources): Bob (1 WETH, owes 1,500) and three more accounts, so a price move changes
several of them at once:

    account   WETH   owes    liquidatable below ETH =  owed / (WETH x 0.8)
    BOB       1      1,500   1,875
    CAROL     1      1,300   1,625
    DAVE      1      1,000   1,250
    ERIN      2      1,500     937.5
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemonkit import BOB, DaemonProcess, World, running_daemon

CAROL = "0x" + "c0" * 20
DAVE = "0x" + "d0" * 20
ERIN = "0x" + "e0" * 20
BOOK = {CAROL: (10**18, 1300), DAVE: (10**18, 1000), ERIN: (2 * 10**18, 1500)}
"""Besides Bob: account → (WETH in wei, USDC owed)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machine's network is closed: Chromium's own background connections only fail.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def seed_book(w: World) -> None:
    """Give Carol, Dave and Erin their WETH and debt (Bob has his from ``world``)."""
    for account, (weth, owed) in BOOK.items():
        await w.l1.transact(w.weth, "MintableERC20", "mint", account, weth)
        await w.l2.transact(w.debt, "MintableERC20", "mint", account, owed * 10**6)


def book_config(w: World, **api: Any) -> dict[str, Any]:
    """The world's config watching the whole book; ``api`` keys are added to ``api:``."""
    config = w.config()
    config["accounts"] = [BOB, *BOOK]
    config["api"].update(api)
    return config


@contextlib.asynccontextmanager
async def daemon_with_book(w: World, **api: Any) -> AsyncIterator[DaemonProcess]:
    """``crossmargin run`` on the book, ready (``/readyz`` 200) when entered."""
    async with running_daemon(w, book_config(w, **api)) as daemon:
        yield daemon


def chromium_or_skip() -> str:
    """The path of Debian's Chromium, or skip the test saying what is missing."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(
            "Chromium is not installed (Debian package chromium; `make test` installs it "
            "with apt-get where it can): the dashboard was not tested in a browser"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (Python, a dev dependency) is not installed: uv sync")
    return CHROMIUM if os.path.exists(CHROMIUM) else str(shutil.which("chromium"))


def profile_dir(tmp_path: Path) -> Path:
    """A fresh, empty ``--user-data-dir`` for one browser."""
    folder = tmp_path / "chromium-profile"
    folder.mkdir()
    return folder
