"""The ``morpho_blue`` venue adapter: a Morpho Blue contract and its markets.

Markets are the configured ids, or every market created (``CreateMarket`` logs). Accounts and
the markets they use are discovered from Supply, SupplyCollateral, Borrow, Repay, Withdraw,
WithdrawCollateral and Liquidate logs (topic 1 is the market id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from chains.blocks import BlockRef
from core.requester import Requester
from venues.abi import topic
from venues.adapter import AssetNamer, has_code, register_kind
from venues.batch import PinnedCaller
from venues.drift import flagged, morpho_at_consensus, uses
from venues.errors import VenueMathOverflow
from venues.logs import topic_address
from venues.model import PlanPricing, VenueAccount, VenueResult, VenueSpec
from venues.morpho.evaluate import KIND, accrue_all, evaluate_account
from venues.morpho.reads import MorphoReader

log = logging.getLogger(__name__)

CREATE_MARKET = topic("CreateMarket(bytes32,(address,address,address,address,uint256))")
# Event signature → index of the topic holding the account it touches.
ACCOUNT_EVENTS = {
    topic("Supply(bytes32,address,address,uint256,uint256)"): 3,
    topic("Withdraw(bytes32,address,address,address,uint256,uint256)"): 2,
    topic("Borrow(bytes32,address,address,address,uint256,uint256)"): 2,
    topic("Repay(bytes32,address,address,uint256,uint256)"): 3,
    topic("SupplyCollateral(bytes32,address,address,uint256)"): 3,
    topic("WithdrawCollateral(bytes32,address,address,address,uint256)"): 2,
    topic("Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)"): 3,
}


@register_kind(KIND)
class MorphoBlueAdapter:
    """Reads Morpho Blue (``spec.address`` is the Morpho contract)."""

    def __init__(self, spec: VenueSpec, caller: PinnedCaller, requester: Requester) -> None:
        self.spec = spec
        self._requester = requester
        self.reader = MorphoReader(venue=spec.name, morpho=spec.address, caller=caller)
        self._only = {m.lower() for m in spec.markets}
        self._names = AssetNamer(spec)
        self.pairs: dict[str, set[str]] = {}  # account → market ids it has used
        self.created: set[str] = set()  # markets seen in CreateMarket logs

    async def setup(self, block: BlockRef) -> None:
        """Check the Morpho contract and the configured markets."""
        address = self.spec.address.lower()
        await self.reader.check(block, await has_code(self._requester, address, block))
        await self.reader.learn(sorted(self._only), block)
        log.info(
            "venue_ready venue=%s kind=%s morpho=%s markets=%s",
            self.spec.name,
            KIND,
            address,
            len(self._only) or "all",
        )

    def log_filter(self) -> tuple[list[str], list[str]]:
        """Morpho's market and account events."""
        return [self.spec.address], [CREATE_MARKET, *ACCOUNT_EVENTS]

    def accounts_in(self, entry: dict[str, Any]) -> list[str]:
        """Accounts a Morpho log touches; ``CreateMarket`` logs teach the market's params."""
        topics = entry.get("topics") or [""]
        market_id = str(topics[1]).lower() if len(topics) > 1 else ""
        if self._only and market_id not in self._only:
            return []
        if topics[0] == CREATE_MARKET:
            self.created.add(market_id)  # its params are read (once) with the next snapshot
            return []
        index = ACCOUNT_EVENTS.get(topics[0])
        account = topic_address(entry, index) if index is not None else None
        if account is None:
            return []
        self.pairs.setdefault(account, set()).add(market_id)
        return [account]

    async def snapshot(
        self, accounts: Sequence[str], block: BlockRef, pricing: PlanPricing
    ) -> VenueResult:
        """Read and evaluate ``accounts`` at ``block``."""
        every = sorted(self._only or self.created | set(self.reader.markets))
        pairs = {a: sorted(self.pairs.get(a) or every) for a in accounts}
        snap = await self.reader.read(pairs, block)
        markets = accrue_all(snap)
        drift = morpho_at_consensus(markets, pricing)
        entries: dict[str, VenueAccount] = {}
        failed: set[str] = set()
        for account, positions in snap.positions.items():
            entry = None
            if positions is not None:
                try:
                    entry = evaluate_account(
                        spec=self.spec,
                        account=account,
                        positions=positions,
                        snapshot=snap,
                        markets=markets,
                        pricing=pricing,
                        asset_name=self._names.name,
                    )
                    if entry is not None and drift is not None and uses(entry, drift[1]):
                        at_consensus = evaluate_account(
                            spec=self.spec,
                            account=account,
                            positions=positions,
                            snapshot=snap,
                            markets=drift[0],
                            pricing=pricing,
                            asset_name=self._names.name,
                        )
                        if at_consensus is not None:
                            entry = flagged(entry, at_consensus)
                except VenueMathOverflow as exc:
                    log.warning(
                        "venue_account_unevaluable venue=%s account=%s %s",
                        self.spec.name,
                        account,
                        exc,
                    )
            if entry is None:
                failed.add(account)
            else:
                entries[account] = entry
        return VenueResult(
            venue=self.spec.name,
            kind=KIND,
            chain=self.spec.chain,
            block_number=block.number,
            block_hash=block.hash,
            accounts=entries,
            failed=frozenset(failed),
            drifting=frozenset() if drift is None else drift[1],
        )
