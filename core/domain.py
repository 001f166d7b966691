"""Words of the domain that every stage shares: what a token is to an account (``Role``) and
the state of an asset's price (``PriceStatus``). Config, the oracle, the margin engine, the
store and every document use these same two enums."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """What a watched token is to an account: collateral or a debt (liability)."""

    COLLATERAL = "collateral"
    LIABILITY = "liability"


class PriceStatus(enum.StrEnum):
    """Status of an asset's price after an oracle round (see ``oracles.aggregate`` for the
    rules)."""

    OK = "OK"
    DEGRADED = "DEGRADED"
    TRIPPED = "TRIPPED"
    STALE = "STALE"
