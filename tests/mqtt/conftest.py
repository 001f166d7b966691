"""Fixtures of the MQTT tests: a private Mosquitto per module and a topic prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.mqttkit import Mosquitto


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mosquitto]:
    """A Mosquitto of this module's own on a free loopback port."""
    async with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"crossmargin-test-{uuid.uuid4().hex[:12]}"
