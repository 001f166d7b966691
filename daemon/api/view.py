"""What the API asks of the running daemon (``DaemonView``).

The store answers everything about accounts; the live state that is not stored — chain
watchers, the oracle's last round, readiness — comes from the daemon through this protocol,
so the API can be served (and tested) without chain watchers. A ``DaemonView`` builds its
answers with ``daemon.documents`` (``chain_document``, ``price_document``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from margin.scenario import ScenarioBook


class DaemonView(Protocol):
    """The running daemon as the API sees it."""

    def chain_statuses(self) -> list[Mapping[str, object]]:
        """One JSON-ready document per chain (``chain_document``), in config order."""
        ...

    def price_statuses(self) -> list[Mapping[str, object]] | None:
        """One JSON-ready document per asset (``price_document``) from the oracle's last round,
        or ``None`` to let the API read the newest stored round of every asset instead."""
        ...

    def readiness(self) -> list[str]:
        """Why the daemon is not ready to be trusted yet (empty: ready). Ready means every
        chain has been read and every asset priced at least once, and no token fails every
        read."""
        ...

    def read_failures(self) -> list[dict[str, object]]:
        """Tokens whose latest read failed for some watched account:
        ``{"chain", "token", "failed", "watched"}`` each (empty: every read succeeds)."""
        ...

    def stress_book(self) -> ScenarioBook | None:
        """A frozen snapshot of the live engine's book for stress passes
        (``MarginEngine.snapshot``), or ``None`` before the engine starts."""
        ...

    async def position_changed(self, account: str) -> None:
        """``account``'s positions were replaced in the store: recompute it."""
        ...
