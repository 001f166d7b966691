"""The keeper HTTP API (aiohttp), documented by the OpenAPI document at ``/openapi.json``.

- ``app``: ``build_app`` (routes, JSON error middleware, body limit) and ``ApiServer``;
- ``routes``: the handlers; ``params``: query/path parsing; ``auth``: the bearer token;
- ``positions``: the PUT body and what positions may name (``PositionMarkets``);
- ``schemas``: store records → JSON; ``openapi``/``components``: the OpenAPI document;
- ``view``: ``DaemonView``, what the running daemon provides (chains, prices, readiness).
"""
