"""The ``venues:`` part of the config: lending protocol deployments read straight from the chain.

    venues:
      - name: aave-eth                    # unique
        kind: aave_v3
        chain: mainnet                    # a configured chain
        pool_addresses_provider: "0x…"    # everything else is read from the chain
        assets: {"0x<underlying>": ETH}   # optional; default: the ERC-20 symbol when it
                                          # names a configured asset
        drift_threshold: 0.02
      - name: morpho-base
        kind: morpho_blue
        chain: base
        morpho: "0x…"
        markets: []                       # market ids; empty = every market created

Kept apart from ``daemon.config.model`` (which embeds it). ``VenueConfig.spec`` is the
``venues.model.VenueSpec`` an adapter is built from.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from daemon.config.types import Address, KeyedError, StrictModel
from venues.model import VenueSpec

VENUE_KINDS = ("aave_v3", "morpho_blue")
DEFAULT_DRIFT_THRESHOLD = 0.02
"""Venue oracle vs our consensus: a relative gap beyond 2 % flags ``ORACLE_DRIFT``."""
DEFAULT_VENUE_LOG_RANGE_BLOCKS = 10_000
_MARKET_ID = re.compile(r"\A0x[0-9a-fA-F]{64}\Z")
_ENTRY_KEY = {"aave_v3": "pool_addresses_provider", "morpho_blue": "morpho"}


def _market_id(value: str) -> str:
    if not _MARKET_ID.match(value):
        raise ValueError("a Morpho market id is 0x followed by 64 hex digits")
    return value.lower()


MarketId = Annotated[str, AfterValidator(_market_id)]


class VenueConfig(StrictModel):
    """One venue: a protocol deployment whose own rules decide liquidation."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: Literal["aave_v3", "morpho_blue"]
    chain: str
    pool_addresses_provider: Address | None = None
    """``aave_v3``: the market's PoolAddressesProvider (Pool and AaveOracle are read from it)."""
    morpho: Address | None = None
    """``morpho_blue``: the Morpho contract."""
    assets: dict[Address, str] = Field(default_factory=dict)
    """Underlying token address → configured asset symbol (else the ERC-20 symbol is tried)."""
    drift_threshold: float = Field(default=DEFAULT_DRIFT_THRESHOLD, gt=0, lt=1)
    """Relative gap between the venue's oracle and our consensus that flags ``ORACLE_DRIFT``."""
    markets: list[MarketId] = Field(default_factory=list)
    """``morpho_blue``: market ids to watch; empty = every market created (CreateMarket)."""
    from_block: int = Field(default=0, ge=0)
    """First block scanned for the venue's events (its deployment block saves the scan)."""
    log_range_blocks: int = Field(default=DEFAULT_VENUE_LOG_RANGE_BLOCKS, ge=1)
    """Initial eth_getLogs span for discovery; adapts to the node's limits."""

    @property
    def address(self) -> str:
        """The venue's entry contract (validated to be set for its kind)."""
        address = self.pool_addresses_provider or self.morpho
        assert address is not None
        return address

    def spec(self, known_assets: frozenset[str]) -> VenueSpec:
        """The adapter's ``VenueSpec``; ``known_assets`` are the configured asset symbols."""
        return VenueSpec(
            name=self.name,
            kind=self.kind,
            chain=self.chain,
            address=self.address,
            assets=dict(self.assets),
            known_assets=known_assets,
            markets=tuple(self.markets),
            from_block=self.from_block,
            log_range_blocks=self.log_range_blocks,
        )


def venue_reference_problem(
    venues: list[VenueConfig], chain_names: list[str], asset_symbols: list[str]
) -> KeyedError | None:
    """The first cross-reference problem of ``venues:``: a duplicate name, an unknown chain,
    an ``assets`` mapping naming no configured asset."""
    seen: list[str] = []
    for i, venue in enumerate(venues):
        if venue.name in seen:
            return KeyedError(f"venues[{i}].name", "duplicate venue name", venue.name)
        seen.append(venue.name)
        wanted = _ENTRY_KEY[venue.kind]
        if getattr(venue, wanted) is None:
            return KeyedError(f"venues[{i}].{wanted}", f"is required for kind {venue.kind}")
        for other in _ENTRY_KEY.values():
            if other != wanted and getattr(venue, other) is not None:
                return KeyedError(
                    f"venues[{i}].{other}", f"does not apply to kind {venue.kind} (use {wanted})"
                )
        if venue.markets and venue.kind != "morpho_blue":
            return KeyedError(f"venues[{i}].markets", "apply to kind morpho_blue only")
        if venue.chain not in chain_names:
            return KeyedError(f"venues[{i}].chain", "names no configured chain", venue.chain)
        for address, symbol in venue.assets.items():
            if symbol not in asset_symbols:
                return KeyedError(
                    f"venues[{i}].assets.{address}", "names no configured asset", symbol
                )
    return None
