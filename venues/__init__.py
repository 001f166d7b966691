"""Venues: positions that live in other protocols, read straight from them.

A venue is a protocol deployment whose own rules decide liquidation (``aave_v3``: a Pool on
one chain; ``morpho_blue``: a Morpho contract and its markets). An adapter (``adapter``)
discovers accounts from the venue's events, reads risk parameters and positions pinned to
one block in ``aggregate3`` batches (``batch``), computes the venue's health with the
venue's own integer arithmetic, and proposes liquidation plans (``model``). The protocol
math is pure and lives beside the reads: ``aave.account``/``aave.liquidation``,
``morpho.math``/``morpho.market``. ``VenueWatcher`` (``watcher``) keeps one venue current
block by block; a failed read keeps the last values, marked stale.
"""
