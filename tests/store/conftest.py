"""Fixtures of the store tests: a fresh database of each dialect (PostgreSQL and SQLite), empty
or migrated and opened as a ``HealthStore``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from daemon.store.migrate import migrate
from daemon.store.writer import HealthStore
from tests.storekit import DIALECTS, fresh_database


@pytest_asyncio.fixture(params=DIALECTS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each dialect (never migrated)."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[HealthStore]:
    """A ``HealthStore`` on a fresh database of each dialect, migrated to head."""
    await migrate(database_url)
    async with await HealthStore.open(database_url) as opened:
        yield opened
