"""The one JSON-RPC interface every on-chain reader depends on (``chains.rpc.RpcPool``
implements it): chain watchers, on-chain price sources, the ``check`` probes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Requester(Protocol):
    """Send JSON-RPC requests to one chain; return the ``result`` or raise a crossmargin error
    (``core.errors``: ``ExecutionReverted`` for a revert, ``RetryableError`` for faults)."""

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request with ``params`` serialised by the requester."""
        ...

    async def request_raw(self, method: str, params_json: str) -> Any:
        """One request whose params array is already serialised JSON (hot path)."""
        ...

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | str]]) -> list[Any]:
        """One JSON-RPC batch, results in call order; failed calls come back as exception
        objects in the list. ``params`` may be a pre-serialised JSON array string."""
        ...
