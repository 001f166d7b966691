"""Columnar storage of ``margin.engine``: accounts, holdings and positions as numpy columns.

Rows are appended, never moved or removed (a balance going to zero keeps its row), so a row
index is stable. Each account links its rows (``head`` → ``next`` → … → -1): an incremental
recompute finds an account's rows without scanning the table, and a balance update finds its
(account, token) row by walking a handful of links instead of keeping a dict per holding.
A holding row is 78 bytes (the raw uint256 exactly, the normalized amount, block, links, and
its read state: the flags a failed read puts on the account, and whether it has a good value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from margin.kernel import FLAG_DTYPE, HealthTable, PositionRows
from margin.tiers import IndexArray

INITIAL_CAPACITY = 1024
"""Rows (or accounts) allocated up front; capacity doubles when full."""
_WORD_BITS = 64
_WORD_MASK = (1 << _WORD_BITS) - 1
RAW_WORDS = 4
"""A uint256 raw balance is kept exactly as four little-endian uint64 words."""
PENDING_LIMIT = 4096
"""Dirty accounts tracked one by one; beyond this many, finding them scans the bitmap."""

Array = npt.NDArray[Any]


def grown(array: Array, capacity: int, fill: Any) -> Array:
    """A copy of ``array`` with ``capacity`` rows, the new ones set to ``fill``."""
    out = np.full((capacity, *array.shape[1:]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


def _capacity_for(needed: int, current: int) -> int:
    capacity = max(current, INITIAL_CAPACITY)
    while capacity < needed:
        capacity *= 2
    return capacity


def walk(head: int, links: npt.NDArray[np.int32]) -> list[int]:
    """Row indices of one linked list, newest first."""
    rows: list[int] = []
    row = head
    while row >= 0:
        rows.append(row)
        row = int(links[row])
    return rows


def gather(
    accts: IndexArray, heads: npt.NDArray[np.int32], links: npt.NDArray[np.int32]
) -> tuple[IndexArray, IndexArray]:
    """Rows of ``accts`` with each row's position in ``accts``, walking all their lists one
    link at a time (vectorized: as many steps as the longest list)."""
    rows: list[npt.NDArray[np.int32]] = []
    owners: list[IndexArray] = []
    current = heads[accts]
    owner = np.arange(len(accts), dtype=np.intp)
    while len(current):
        live = current >= 0
        if not live.all():  # a list ended: drop it (most lists of a batch are equally long)
            current, owner = current[live], owner[live]
            if not len(current):
                break
        rows.append(current)
        owners.append(owner)
        current = links[current]
    if not rows:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    return np.concatenate(rows).astype(np.intp), np.concatenate(owners)


class AccountTable:
    """Account ids ↔ dense indices, list heads, dirty marks, tiered buckets and results."""

    def __init__(self, groups: int) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.head = np.full(0, -1, dtype=np.int32)
        self.position_head = np.full(0, -1, dtype=np.int32)
        self.option_head = np.full(0, -1, dtype=np.int32)
        # dirty marks: a bitmap, plus the marked indices while few (an incremental recompute
        # must not scan every account to find the handful that changed)
        self.dirty = np.zeros(0, dtype=np.bool_)
        self.pending: set[int] = set()
        self.scan = False
        # bucket of (account, tiered group), -1 until the account holds that group
        self.bucket_of = np.full((0, max(groups, 1)), -1, dtype=np.intp)
        self.results = HealthTable.empty(0)

    def __len__(self) -> int:
        return len(self.ids)

    def ensure(self, account: str) -> int:
        """Index of ``account``, registering it (dirty, empty results) when new."""
        found = self.index.get(account)
        if found is not None:
            return found
        n = len(self.ids)
        self._reserve(n + 1)
        self.ids.append(account)
        self.index[account] = n
        self.mark(n)
        return n

    def ensure_many(self, accounts: Sequence[str]) -> IndexArray:
        """Indices of ``accounts`` (in order), registering the new ones in one batch."""
        get = self.index.get
        found = np.array([get(a, -1) for a in accounts], dtype=np.intp)
        missing = np.flatnonzero(found < 0)
        if len(missing):
            new = list(dict.fromkeys(accounts[i] for i in missing.tolist()))
            first = len(self.ids)
            self._reserve(first + len(new))
            self.ids.extend(new)
            self.index.update(zip(new, range(first, first + len(new)), strict=True))
            self.mark_many(np.arange(first, first + len(new), dtype=np.intp))
            found[missing] = [self.index[accounts[i]] for i in missing.tolist()]
        return found

    def _reserve(self, needed: int) -> None:
        if needed <= len(self.head):
            return
        capacity = _capacity_for(needed, len(self.head))
        self.head = grown(self.head, capacity, -1)
        self.position_head = grown(self.position_head, capacity, -1)
        self.option_head = grown(self.option_head, capacity, -1)
        self.dirty = grown(self.dirty, capacity, False)
        self.bucket_of = grown(self.bucket_of, capacity, -1)
        fresh = HealthTable.empty(capacity)
        for name, column in self.results.columns().items():
            getattr(fresh, name)[: len(column)] = column
        self.results = fresh

    def mark(self, account: int) -> None:
        """Mark one account dirty."""
        self.dirty[account] = True
        if not self.scan:
            self.pending.add(account)
            self.scan = len(self.pending) > PENDING_LIMIT

    def mark_many(self, accounts: IndexArray) -> None:
        """Mark accounts dirty."""
        self.dirty[accounts] = True
        if self.scan or len(self.pending) + len(accounts) > PENDING_LIMIT:
            self.scan = True
        else:
            self.pending.update(accounts.tolist())

    def dirty_indices(self) -> IndexArray:
        """Sorted indices of the dirty accounts."""
        if self.scan:
            return np.flatnonzero(self.dirty[: len(self.ids)])
        return np.array(sorted(self.pending), dtype=np.intp)

    def store(self, accounts: IndexArray | slice, table: HealthTable) -> None:
        """Write evaluated results for ``accounts`` and clear their dirty marks."""
        for name, column in table.columns().items():
            getattr(self.results, name)[accounts] = column
        self.dirty[accounts] = False
        if isinstance(accounts, slice) or (self.scan and not self.dirty.any()):
            self.pending.clear()
            self.scan = False
        elif not self.scan:
            self.pending.difference_update(accounts.tolist())


class HoldingTable:
    """One row per (account, token) ever seen."""

    def __init__(self) -> None:
        self.n = 0
        self.key = np.zeros(0, dtype=np.intp)  # 2 · account + side
        self.token = np.zeros(0, dtype=np.intp)
        self.amount = np.zeros(0, dtype=np.float64)
        self.raw = np.zeros((0, RAW_WORDS), dtype=np.uint64)
        self.block = np.zeros(0, dtype=np.int64)
        self.next = np.full(0, -1, dtype=np.int32)
        self.bucket = np.full(0, -1, dtype=np.intp)
        self.flags = np.zeros(0, dtype=FLAG_DTYPE)  # READ_FAILED / DEBT_UNKNOWN of the row
        self.valued = np.zeros(0, dtype=np.bool_)  # a read of it ever succeeded

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows."""
        needed = self.n + extra
        if needed <= len(self.key):
            return
        capacity = _capacity_for(needed, len(self.key))
        self.key = grown(self.key, capacity, 0)
        self.token = grown(self.token, capacity, 0)
        self.amount = grown(self.amount, capacity, 0.0)
        self.raw = grown(self.raw, capacity, 0)
        self.block = grown(self.block, capacity, 0)
        self.next = grown(self.next, capacity, -1)
        self.bucket = grown(self.bucket, capacity, -1)
        self.flags = grown(self.flags, capacity, 0)
        self.valued = grown(self.valued, capacity, False)

    def raw_int(self, row: int) -> int:
        """The exact raw balance of ``row``."""
        words = self.raw[row]
        return sum(int(words[i]) << (_WORD_BITS * i) for i in range(RAW_WORDS))

    def set_raw(self, row: int, raw: int) -> None:
        """Store ``raw`` (0 ≤ raw < 2**256) exactly."""
        self.raw[row] = [(raw >> (_WORD_BITS * i)) & _WORD_MASK for i in range(RAW_WORDS)]


class BucketTable:
    """Tiered buckets: one per (account, tiered group) the account has ever held."""

    def __init__(self) -> None:
        self.n = 0
        self.account = np.zeros(0, dtype=np.intp)
        self.group = np.zeros(0, dtype=np.intp)

    def append(self, accounts: IndexArray, group: int) -> IndexArray:
        """New buckets of ``group`` for ``accounts``; their indices."""
        needed = self.n + len(accounts)
        if needed > len(self.account):
            capacity = _capacity_for(needed, len(self.account))
            self.account = grown(self.account, capacity, 0)
            self.group = grown(self.group, capacity, 0)
        ids = np.arange(self.n, needed, dtype=np.intp)
        self.account[ids] = accounts
        self.group[ids] = group
        self.n = needed
        return ids


class PositionTable:
    """One row per (account, asset) ever posted; a closed position keeps its row at size 0."""

    def __init__(self) -> None:
        self.n = 0
        self.index: dict[tuple[int, int], int] = {}
        self.account = np.zeros(0, dtype=np.intp)
        self.asset = np.zeros(0, dtype=np.intp)
        self.chain = np.zeros(0, dtype=np.intp)
        self.size = np.zeros(0, dtype=np.float64)
        self.entry = np.zeros(0, dtype=np.float64)
        self.schedule = np.zeros(0, dtype=np.intp)
        self.next = np.full(0, -1, dtype=np.int32)

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows."""
        needed = self.n + extra
        if needed <= len(self.account):
            return
        capacity = _capacity_for(needed, len(self.account))
        self.account = grown(self.account, capacity, 0)
        self.asset = grown(self.asset, capacity, 0)
        self.chain = grown(self.chain, capacity, 0)
        self.size = grown(self.size, capacity, 0.0)
        self.entry = grown(self.entry, capacity, 0.0)
        self.schedule = grown(self.schedule, capacity, 0)
        self.next = grown(self.next, capacity, -1)

    def select(self, rows: IndexArray | slice, accounts: IndexArray) -> PositionRows:
        """The kernel's view of ``rows``, with ``accounts`` as their (local) accounts."""
        return PositionRows(
            account=accounts,
            asset=self.asset[rows],
            chain=self.chain[rows],
            size=self.size[rows],
            entry=self.entry[rows],
            schedule=self.schedule[rows],
        )


class OptionTable:
    """One row per option line an account was ever given; replaced lines are reused, and a
    line no longer posted keeps its row at size 0 (rows never move)."""

    def __init__(self) -> None:
        self.n = 0
        self.account = np.zeros(0, dtype=np.intp)
        self.asset = np.zeros(0, dtype=np.intp)
        self.chain = np.zeros(0, dtype=np.intp)
        self.call = np.zeros(0, dtype=np.bool_)
        self.size = np.zeros(0, dtype=np.float64)
        self.strike = np.ones(0, dtype=np.float64)
        self.expiry = np.zeros(0, dtype=np.float64)
        self.vol = np.ones(0, dtype=np.float64)
        self.contract = np.zeros(0, dtype=np.intp)  # interned (asset, right, strike, expiry, vol)
        self.next = np.full(0, -1, dtype=np.int32)

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows."""
        needed = self.n + extra
        if needed <= len(self.account):
            return
        capacity = _capacity_for(needed, len(self.account))
        self.account = grown(self.account, capacity, 0)
        self.asset = grown(self.asset, capacity, 0)
        self.chain = grown(self.chain, capacity, 0)
        self.call = grown(self.call, capacity, False)
        self.size = grown(self.size, capacity, 0.0)
        self.strike = grown(self.strike, capacity, 1.0)
        self.expiry = grown(self.expiry, capacity, 0.0)
        self.vol = grown(self.vol, capacity, 1.0)
        self.contract = grown(self.contract, capacity, 0)
        self.next = grown(self.next, capacity, -1)
