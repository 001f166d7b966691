"""The ``aave_v3`` venue adapter: an Aave v3 market found from its PoolAddressesProvider.

Accounts are discovered from the Pool's events (Supply, Withdraw, Borrow, Repay,
LiquidationCall, ReserveUsedAsCollateralEnabled/Disabled, UserEModeSet, SwapBorrowRateMode,
RebalanceStableBorrowRate, MintUnbacked) and the aTokens' BalanceTransfer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from chains.blocks import BlockRef
from core.requester import Requester
from venues.aave.evaluate import KIND, evaluate_account, usd_prices
from venues.aave.reads import AaveReader
from venues.abi import topic
from venues.adapter import AssetNamer, has_code, register_kind
from venues.batch import PinnedCaller
from venues.drift import aave_at_consensus, flagged, uses
from venues.errors import VenueMathOverflow
from venues.logs import topic_address
from venues.model import PlanPricing, VenueAccount, VenueResult, VenueSpec

log = logging.getLogger(__name__)

USER_GROUP = 500  # accounts per read-and-evaluate group (~8 aggregate3 calls of 500)
GROUPS_READING = 2  # groups whose calls are in flight at once (others wait, in order)

# Event signature → index of the topic holding the account it touches.
POOL_EVENTS = {
    topic("Supply(address,address,address,uint256,uint16)"): (2,),
    topic("Withdraw(address,address,address,uint256)"): (2,),
    topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)"): (2,),
    topic("Repay(address,address,address,uint256,bool)"): (2,),
    topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)"): (3,),
    topic("ReserveUsedAsCollateralEnabled(address,address)"): (2,),
    topic("ReserveUsedAsCollateralDisabled(address,address)"): (2,),
    topic("UserEModeSet(address,uint8)"): (1,),
    topic("SwapBorrowRateMode(address,address,uint8)"): (2,),
    topic("RebalanceStableBorrowRate(address,address)"): (2,),
    topic("MintUnbacked(address,address,address,uint256,uint16)"): (2,),
}
A_TOKEN_EVENTS = {topic("BalanceTransfer(address,address,uint256,uint256)"): (1, 2)}


@register_kind(KIND)
class AaveV3Adapter:
    """Reads one Aave v3 market (``spec.address`` is its PoolAddressesProvider)."""

    def __init__(self, spec: VenueSpec, caller: PinnedCaller, requester: Requester) -> None:
        self.spec = spec
        self._requester = requester
        self.reader = AaveReader(venue=spec.name, provider=spec.address, caller=caller)
        self._names = AssetNamer(spec)

    async def setup(self, block: BlockRef) -> None:
        """Check the provider, Pool and oracle; learn the reserves."""
        provider = self.spec.address.lower()
        code = {provider: await has_code(self._requester, provider, block)}
        addresses = await self.reader.setup(block, code)
        log.info(
            "venue_ready venue=%s kind=%s pool=%s oracle=%s reserves=%d",
            self.spec.name,
            KIND,
            addresses.pool,
            addresses.oracle,
            len(self.reader.token_addresses),
        )

    def log_filter(self) -> tuple[list[str], list[str]]:
        """The Pool's and the aTokens' account events."""
        pool = self.reader.addresses.pool if self.reader.addresses else self.spec.address
        return [pool, *self.reader.token_addresses], [*POOL_EVENTS, *A_TOKEN_EVENTS]

    def accounts_in(self, entry: dict[str, Any]) -> list[str]:
        """Accounts a Pool or aToken log touches."""
        topics = entry.get("topics") or [""]
        indexes = POOL_EVENTS.get(topics[0]) or A_TOKEN_EVENTS.get(topics[0]) or ()
        found = [topic_address(entry, i) for i in indexes]
        return [a for a in found if a is not None and a != "0x" + "0" * 40]

    async def snapshot(
        self, accounts: Sequence[str], block: BlockRef, pricing: PlanPricing
    ) -> VenueResult:
        """Read and evaluate ``accounts`` at ``block``: the market first, then groups of
        ``USER_GROUP`` accounts, each evaluated as soon as it is read while the node answers
        the next group's calls (a pipeline: CPU here overlaps the node's work)."""
        market = await self.reader.read_market(block)
        prices = usd_prices(market, pricing)
        drift = aave_at_consensus(market, pricing)
        entries: dict[str, VenueAccount] = {}
        failed: set[str] = set()

        reading = asyncio.Semaphore(GROUPS_READING)

        async def group(chunk: Sequence[str]) -> None:
            async with reading:  # released before evaluating: the next group reads meanwhile
                users = await self.reader.read_users(chunk, market)
            for account, user in users.items():
                if user is None:
                    failed.add(account)
                    continue
                try:
                    entry = evaluate_account(
                        spec=self.spec,
                        account=account,
                        user=user,
                        snapshot=market,
                        pricing=pricing,
                        prices=prices,
                        asset_name=self._names.name,
                    )
                    if drift is not None and uses(entry, drift[1]):
                        moved = drift[0]
                        at_consensus = evaluate_account(
                            spec=self.spec,
                            account=account,
                            user=user,
                            snapshot=moved,
                            pricing=pricing,
                            prices=usd_prices(moved, pricing),
                            asset_name=self._names.name,
                        )
                        entry = flagged(entry, at_consensus)
                    entries[account] = entry
                except VenueMathOverflow as exc:
                    log.warning(
                        "venue_account_unevaluable venue=%s account=%s %s",
                        self.spec.name,
                        account,
                        exc,
                    )
                    failed.add(account)

        await asyncio.gather(
            *(group(accounts[i : i + USER_GROUP]) for i in range(0, len(accounts), USER_GROUP))
        )
        return VenueResult(
            venue=self.spec.name,
            kind=KIND,
            chain=self.spec.chain,
            block_number=block.number,
            block_hash=block.hash,
            accounts={a: entries[a] for a in accounts if a in entries},
            failed=frozenset(failed),
            drifting=frozenset() if drift is None else drift[1],
        )
