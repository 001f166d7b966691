"""``AsyncResource``: the one way crossmargin components are opened and closed; and the one
way they wait with a deadline (``within``, ``wait_event``).

A component implements ``start`` (optional) and ``close`` (idempotent); ``async with`` calls
them, so every component's lifecycle reads the same and ``close`` runs on any way out.

Deadlines use ``asyncio.timeout``, never ``asyncio.wait_for``: on Python 3.11 ``wait_for``
returns the result when a cancellation arrives in the same loop turn as the awaited future
completes, and the cancellation is lost (CPython gh-86296). A background loop whose
cancellation is lost never ends, and whatever awaits it on shutdown hangs for good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """``await awaitable``, or ``TimeoutError`` after ``timeout_s``; a cancellation of the
    caller is never swallowed."""
    async with asyncio.timeout(timeout_s):
        return await awaitable


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; whether it is set. A cancellation
    of the caller is never swallowed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()


class AsyncResource:
    """Mixin: ``async with resource`` awaits ``start()`` and, on the way out, ``close()``."""

    async def start(self) -> None:
        """Acquire what the component needs (default: nothing)."""

    async def close(self) -> None:
        """Release everything; safe to call more than once."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
