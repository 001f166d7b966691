"""Cluster tests: a fresh PostgreSQL database at head for each test (cluster mode is
PostgreSQL only)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from daemon.store.migrate import migrate
from tests.storekit import postgres_database


@pytest_asyncio.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database migrated to head."""
    async with postgres_database() as url:
        await migrate(url)
        yield url
