"""``AsyncResource``: the one way crossmargin components are opened and closed.

A component implements ``start`` (optional) and ``close`` (idempotent); ``async with`` calls
them, so every component's lifecycle reads the same and ``close`` runs on any way out.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
