"""The JSON-RPC interface chain components depend on (``chains.rpc.RpcPool`` implements it)."""

from __future__ import annotations

from typing import Any, Protocol


class Requester(Protocol):
    """Send JSON-RPC requests to one chain; return the ``result`` or raise a crossmargin error."""

    async def request(self, method: str, params: list[Any]) -> Any:
        """One request with ``params`` serialised by the requester."""
        ...

    async def request_raw(self, method: str, params_json: str) -> Any:
        """One request whose params array is already serialised JSON (hot path)."""
        ...
