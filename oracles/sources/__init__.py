"""Price sources: the I/O half of the oracle. Each turns one remote answer into a ``SourceQuote``.

Every source has the same small surface (``PriceSource``): identity, its own poll interval,
timeout and freshness budget, and ``fetch()``, which never raises for a fault of the source
itself: a revert, an HTTP error or a garbage answer comes back as a failed quote carrying its
``DropReason`` and a redacted detail. ``oracles.service.OracleService`` polls them.

- ``chainlink``: AggregatorV3 feeds (and L2 sequencer-uptime feeds) over a chain's RPC pool;
- ``http``: JSON price APIs, with presets for real exchange response shapes;
- ``pyth``: Pyth Hermes, price with confidence;
- ``twap``: Uniswap v3 ``observe()`` TWAP, an anchor that can veto but never set a price.
"""
