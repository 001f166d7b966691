"""The venue adapter interface, the registry by ``kind``, and what adapters share.

An adapter is built from a ``VenueSpec`` and a ``PinnedCaller`` (block-pinned aggregate3 on
the venue's chain). ``setup`` checks the venue's contracts and raises ``VenueSetupError``
naming the venue when they are wrong; ``log_filter``/``accounts_in`` let a ``VenueWatcher``
discover accounts from the venue's own events; ``snapshot`` reads the given accounts at one
block and evaluates them with the venue's integer arithmetic (reads and pure math are apart:
``read`` then ``evaluate``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from chains.blocks import BlockRef
from core.requester import Requester
from venues.batch import PinnedCaller
from venues.errors import VenueSetupError
from venues.model import PlanPricing, VenueResult, VenueSpec

log = logging.getLogger(__name__)


class VenueAdapter(Protocol):
    """What every venue kind implements."""

    spec: VenueSpec

    async def setup(self, block: BlockRef) -> None:
        """Check the venue's contracts at ``block`` and read what never changes."""
        ...

    def log_filter(self) -> tuple[list[str], list[str]]:
        """(contract addresses, event topic-0s) whose logs touch accounts."""
        ...

    def accounts_in(self, entry: dict[str, Any]) -> list[str]:
        """The accounts (lower-case) a log of ``log_filter`` touches."""
        ...

    async def snapshot(
        self, accounts: Sequence[str], block: BlockRef, pricing: PlanPricing
    ) -> VenueResult:
        """Read ``accounts`` at ``block`` and evaluate them (raises ``VenueReadFailed`` or an
        RPC error when the venue cannot be read at all)."""
        ...


AdapterFactory = Callable[[VenueSpec, PinnedCaller, Requester], VenueAdapter]
_KINDS: dict[str, AdapterFactory] = {}


def register_kind(kind: str) -> Callable[[AdapterFactory], AdapterFactory]:
    """Class decorator: make an adapter available under ``kind``."""

    def decorate(factory: AdapterFactory) -> AdapterFactory:
        _KINDS[kind] = factory
        return factory

    return decorate


def venue_kinds() -> list[str]:
    """The registered kinds, sorted."""
    _load_builtin_kinds()
    return sorted(_KINDS)


def create_adapter(
    spec: VenueSpec,
    *,
    requester: Requester,
    multicall_address: str,
    override_code: bytes | None,
) -> VenueAdapter:
    """The adapter of ``spec.kind`` (``VenueSetupError`` for an unknown kind)."""
    _load_builtin_kinds()
    factory = _KINDS.get(spec.kind)
    if factory is None:
        raise VenueSetupError(spec.name, f"unknown kind {spec.kind!r}; known: {sorted(_KINDS)}")
    caller = PinnedCaller(
        name=spec.name,
        requester=requester,
        multicall_address=multicall_address,
        override_code=override_code,
    )
    return factory(spec, caller, requester)


def _load_builtin_kinds() -> None:
    # Imported here: the adapters import this module to register themselves.
    import venues.aave.adapter
    import venues.morpho.adapter  # noqa: F401


async def has_code(requester: Requester, address: str, block: BlockRef) -> bool:
    """Whether ``address`` holds contract code at ``block``."""
    code = await requester.request("eth_getCode", [address, {"blockHash": block.hash}])
    return code not in (None, "0x", "0x0")


class AssetNamer:
    """Maps a venue's underlying tokens to configured asset names: the venue's ``assets``
    mapping first, else the token's ERC-20 symbol when it names a configured asset. Warns
    once per token that maps to nothing (it is then valued only in the venue's own health)."""

    def __init__(self, spec: VenueSpec) -> None:
        self._venue = spec.name
        self._explicit = {k.lower(): v for k, v in spec.assets.items()}
        self._known = spec.known_assets
        self._warned: set[str] = set()

    def name(self, asset: str, symbol: str | None) -> str | None:
        """The configured asset ``asset`` maps to, or ``None`` (warned once)."""
        explicit = self._explicit.get(asset)
        if explicit is not None:
            return explicit
        if symbol is not None and symbol in self._known:
            return symbol
        if asset not in self._warned:
            self._warned.add(asset)
            log.warning(
                "venue_asset_unmapped venue=%s asset=%s symbol=%s valued_in=venue_health_only",
                self._venue,
                asset,
                symbol,
            )
        return None
