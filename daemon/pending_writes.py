"""What the engine has applied in memory but not yet stored: the unit the writer retries.

While the database is down the engine keeps applying events; everything a later write needs
to bring the store up to date accumulates here, and a failed write is put back under what
arrived meanwhile, so nothing is lost and nothing grows without bound:

- balances: the latest reading per (account, chain, token) — bounded by the watched pairs;
  a reorg drops the pending readings it orphaned and is carried to the store as the lowest
  ``dropped_above`` seen, so stored rows from orphaned blocks are deleted too;
- price rounds: the newest ``rounds_per_asset`` per asset (older ones are dropped and
  counted: the price history gets a gap, the current price is never lost);
- accounts (engine row indices) whose stored health row is out of date — bounded by the
  number of accounts. Their *current* rows are written, whatever happened in between, and
  the database derives transitions against what it stored, so an outage collapses a
  flip-flop into what actually changed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from chains.blocks import BlockRef
from chains.readings import ReadColumns
from chains.reads import Pair
from chains.watcher import BalanceUpdate, Reading
from margin.tiers import IndexArray
from oracles.model import AssetPrice

PENDING_ROUNDS_PER_ASSET = 1_000
"""Oracle rounds per asset kept while the store is down (at 1 round per 5 s: 83 minutes)."""


@dataclass(slots=True)
class _ChainBalances:
    """Pending balance updates of one chain, merged."""

    block: BlockRef
    readings: Mapping[Pair, Reading] = field(default_factory=dict)
    dropped_above: int | None = None
    sweeping: bool = False
    """The last update absorbed was a part of a sweep (``BalanceUpdate.partial``): the next
    update of the chain is the sweep's next part, other pairs at the same block."""

    def absorb(self, update: BalanceUpdate) -> None:
        """Merge a newer update: its reorg orphans older pending readings; its readings win.

        The watcher's columns (``ReadColumns``, immutable) are kept as they are while nothing
        else is pending, and a sweep's parts are joined: a first sweep (2,000,000 readings at
        a million accounts) reaches the store without a ``Reading`` or a dict entry per pair."""
        if update.dropped_above is not None:
            cut = update.dropped_above
            self.readings = {k: r for k, r in self.readings.items() if r.block_number <= cut}
            self.dropped_above = cut if self.dropped_above is None else min(cut, self.dropped_above)
        new = update.readings
        if not self.readings and isinstance(new, ReadColumns):
            self.readings = new
        elif (
            self.sweeping
            and isinstance(self.readings, ReadColumns)
            and isinstance(new, ReadColumns)
            and new.block_hash == self.readings.block_hash
        ):
            # The sweep's next part while the last is still pending (the store is slower
            # than the node): columns joined, still no object per pair.
            self.readings = self.readings.joined(new)
        else:
            merged = self.readings if isinstance(self.readings, dict) else dict(self.readings)
            merged.update(new)
            self.readings = merged
        self.sweeping = update.partial
        self.block = update.block

    def update(self, chain: str) -> BalanceUpdate:
        """The merged update, as the store takes it."""
        return BalanceUpdate(
            chain=chain, block=self.block, readings=self.readings, dropped_above=self.dropped_above
        )


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """Everything one write attempt takes out of ``PendingWrites``."""

    balances: list[BalanceUpdate]
    rounds: list[AssetPrice]
    accounts: IndexArray
    """Engine row indices, ascending."""


class PendingWrites:
    """Balances, price rounds and account rows applied in memory but not stored yet."""

    def __init__(self, *, rounds_per_asset: int = PENDING_ROUNDS_PER_ASSET) -> None:
        if rounds_per_asset < 1:
            raise ValueError(f"rounds_per_asset must be >= 1 (got {rounds_per_asset})")
        self.rounds_per_asset = rounds_per_asset
        self.dropped_rounds = 0
        """Price rounds dropped since start because more than ``rounds_per_asset`` waited."""
        self._balances: dict[str, _ChainBalances] = {}
        self._rounds: dict[str, deque[AssetPrice]] = {}
        self._accounts = np.zeros(0, dtype=bool)

    def __bool__(self) -> bool:
        return bool(self._balances or self._rounds or self.accounts)

    @property
    def accounts(self) -> int:
        """Accounts whose stored health row is out of date."""
        return int(np.count_nonzero(self._accounts))

    def account_indices(self) -> IndexArray:
        """The engine rows of those accounts, ascending."""
        return np.flatnonzero(self._accounts)

    @property
    def balances(self) -> int:
        """Readings waiting to be stored."""
        return sum(len(c.readings) for c in self._balances.values())

    @property
    def rounds(self) -> int:
        """Price rounds waiting to be stored."""
        return sum(len(q) for q in self._rounds.values())

    def add_balances(self, updates: Iterable[BalanceUpdate]) -> None:
        """Watcher updates, oldest first."""
        for update in updates:
            pending = self._balances.get(update.chain)
            if pending is None:
                pending = self._balances[update.chain] = _ChainBalances(update.block)
            pending.absorb(update)

    def add_rounds(self, rounds: Iterable[AssetPrice]) -> None:
        """Oracle rounds, oldest first; beyond ``rounds_per_asset`` the oldest are dropped."""
        for price in rounds:
            queue = self._rounds.setdefault(price.symbol, deque())
            queue.append(price)
            if len(queue) > self.rounds_per_asset:
                queue.popleft()
                self.dropped_rounds += 1

    def add_accounts(self, indices: IndexArray) -> None:
        """Engine rows whose stored health is (or may be) out of date."""
        if not len(indices):
            return
        needed = int(indices.max()) + 1
        if needed > len(self._accounts):
            grown = np.zeros(max(needed, 2 * len(self._accounts)), dtype=bool)
            grown[: len(self._accounts)] = self._accounts
            self._accounts = grown
        self._accounts[indices] = True

    def take(self, max_accounts: int | None = None) -> PendingBatch:
        """Everything pending, which is then empty (``put_back`` it if the write fails) — or,
        with ``max_accounts``, the balances, the rounds and at most that many accounts (the
        lowest rows); the other accounts stay pending."""
        accounts = np.flatnonzero(self._accounts)
        if max_accounts is not None and len(accounts) > max_accounts:
            accounts = accounts[:max_accounts]
            self._accounts[accounts] = False
        else:
            self._accounts[:] = False
        batch = PendingBatch(
            balances=[c.update(chain) for chain, c in self._balances.items()],
            rounds=[p for queue in self._rounds.values() for p in queue],
            accounts=accounts,
        )
        self._balances = {}
        self._rounds = {}
        return batch

    def put_back(self, batch: PendingBatch) -> None:
        """A batch whose write failed: it goes back *under* what arrived since it was taken
        (newer readings still win, newer reorgs still orphan its readings)."""
        newer_balances, newer_rounds = self._balances, self._rounds
        self._balances, self._rounds = {}, {}
        self.add_balances(batch.balances)
        self.add_balances(c.update(chain) for chain, c in newer_balances.items())
        self.add_rounds(batch.rounds)
        self.add_rounds(p for queue in newer_rounds.values() for p in queue)
        self.add_accounts(batch.accounts)
