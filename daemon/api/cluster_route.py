"""``GET /v1/cluster``: the replicas and the shard leases, as the database has them.

Any replica answers for the whole cluster (the lease table is shared); outside cluster mode
the document says ``"enabled": false`` with empty lists. Times are unix seconds from the
database's clock.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api.errors import json_response
from daemon.store.leases import ClusterView
from daemon.store.queries import StoreQueries


def cluster_document(view: ClusterView | None) -> dict[str, Any]:
    """The ``Cluster`` document of ``view`` (``None``: cluster mode off)."""
    if view is None:
        return {"enabled": False, "now": None, "replicas": [], "shards": []}
    held: dict[str, list[int]] = {}
    for lease in view.shards:
        if lease.live and lease.owner is not None:
            held.setdefault(lease.owner, []).append(lease.shard)
    return {
        "enabled": True,
        "now": view.now,
        "replicas": [
            {
                "id": r.id,
                "last_seen": r.last_seen,
                "alive": r.alive,
                "shards": held.get(r.id, []),
            }
            for r in view.replicas
        ],
        "shards": [
            {
                "shard": s.shard,
                "owner": s.owner if s.live else None,
                "epoch": s.epoch,
                "expires_at": s.expires_at if s.live else None,
            }
            for s in view.shards
        ],
    }


class ClusterRoute:
    """The handler; ``ttl_s`` is ``cluster.lease_ttl_s`` (``None``: cluster mode off)."""

    def __init__(self, queries: StoreQueries, ttl_s: float | None) -> None:
        self._queries = queries
        self._ttl_s = ttl_s

    def register(self, router: web.UrlDispatcher) -> None:
        """Add ``GET /v1/cluster``."""
        router.add_get("/v1/cluster", self.cluster)

    async def cluster(self, _request: web.Request) -> web.Response:
        """Replicas with the shards they hold, and every shard's lease."""
        if self._ttl_s is None:
            return json_response(cluster_document(None))
        return json_response(cluster_document(await self._queries.cluster(self._ttl_s)))
