"""The watcher's latest reading of every (account, token) pair, stored compactly.

A million accounts × 2 tokens held as ``dict[Pair, Reading]`` cost ~210 bytes per holding: a
key tuple, a ``Reading`` and a dict entry each. Here each account has one row (its address
string, shared with the config, is stored once) and each token two columns: the raw amount
and the block it was read at (a reference to the cycle's shared ``BlockRef``): ~50 bytes per
holding. ``Reading``s are built when asked for; the mapping reads like the dict it replaces.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, Sequence, ValuesView
from typing import TYPE_CHECKING, NamedTuple

from chains.blocks import BlockRef
from chains.reads import Pair

if TYPE_CHECKING:
    from chains.readings import TokenReads


class Reading(NamedTuple):
    """One balance as read: raw amount (``None`` = failed read) at a block.

    A named tuple, not a frozen dataclass: a first sweep builds one per pair (2,000,000 at a
    million accounts) and a frozen dataclass costs ~4x as much to construct."""

    raw: int | None
    block_number: int
    block_hash: str


class _Column:
    """One token's readings by account row: the raw amount and the block (``None``: none)."""

    __slots__ = ("blocks", "count", "raws")

    def __init__(self) -> None:
        self.raws: list[int | None] = []
        self.blocks: list[BlockRef | None] = []
        self.count = 0

    def grow(self, rows: int) -> None:
        missing = rows - len(self.raws)
        if missing > 0:
            self.raws.extend([None] * missing)
            self.blocks.extend([None] * missing)


class Holdings(Mapping[Pair, Reading]):
    """``Pair`` → ``Reading`` of one chain's watched pairs that have a reading."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._accounts: list[str] = []
        self._columns: dict[str, _Column] = {}

    # -- reading ---------------------------------------------------------------------------

    def __getitem__(self, pair: Pair) -> Reading:
        account, token = pair
        column = self._columns.get(token)
        row = self._rows.get(account)
        if column is None or row is None or row >= len(column.blocks):
            raise KeyError(pair)
        block = column.blocks[row]
        if block is None:
            raise KeyError(pair)
        return Reading(column.raws[row], block.number, block.hash)

    def __len__(self) -> int:
        return sum(c.count for c in self._columns.values())

    def count(self, token: str) -> int:
        """How many pairs of ``token`` have a reading."""
        column = self._columns.get(token)
        return 0 if column is None else column.count

    def __iter__(self) -> Iterator[Pair]:
        accounts = self._accounts
        for token, column in self._columns.items():
            for row, block in enumerate(column.blocks):
                if block is not None:
                    yield accounts[row], token

    def items(self) -> ItemsView[Pair, Reading]:
        """Every (pair, reading), token by token, read straight from the columns (the snapshot
        command prints 100,000s of them: a lookup per pair doubled its time)."""
        return _Items(self)

    def values(self) -> ValuesView[Reading]:
        """Every reading, in the order of ``items``."""
        return _Values(self)

    def _items(self) -> Iterator[tuple[Pair, Reading]]:
        accounts = self._accounts
        for token, column in self._columns.items():
            for row, (raw, block) in enumerate(zip(column.raws, column.blocks, strict=True)):
                if block is not None:
                    yield (accounts[row], token), Reading(raw, block.number, block.hash)

    def read_above(self, floor: int) -> list[Pair]:
        """The pairs read at a block above ``floor`` (a reorg orphaned them)."""
        accounts = self._accounts
        return [
            (accounts[row], token)
            for token, column in self._columns.items()
            for row, block in enumerate(column.blocks)
            if block is not None and block.number > floor
        ]

    # -- writing ---------------------------------------------------------------------------

    def record_token(
        self,
        token: str,
        accounts: Sequence[str],
        raws: Sequence[int | None],
        block: BlockRef,
        changed: TokenReads,
    ) -> None:
        """Store ``token``'s ``raws`` of ``accounts`` read at ``block``, appending to ``changed``
        the readings that are new or differ from the stored ones (``failed`` counts every
        failed read among them), without a tuple per pair: a first sweep goes through here
        2,000,000 times at a million accounts."""
        rows, all_accounts = self._rows, self._accounts
        column = self._columns.get(token)
        if column is None:
            column = self._columns[token] = _Column()
        col_raws, col_blocks = column.raws, column.blocks
        size = len(col_raws)
        out_accounts, out_raws = changed.accounts, changed.raws
        new = failed = 0
        for account, raw in zip(accounts, raws, strict=True):
            row = rows.get(account)
            if row is None:
                row = rows[account] = len(all_accounts)
                all_accounts.append(account)
            if row >= size:
                column.grow(max(len(all_accounts), 2 * size))
                size = len(col_raws)
            if col_blocks[row] is None:
                new += 1
            elif col_raws[row] == raw:
                col_blocks[row] = block
                continue
            col_raws[row] = raw
            col_blocks[row] = block
            out_accounts.append(account)
            out_raws.append(raw)
            if raw is None:
                failed += 1
        column.count += new
        changed.failed += failed

    def pop(self, pair: Pair) -> Reading:
        """Remove and return the reading of ``pair`` (``KeyError`` when it has none)."""
        reading = self[pair]
        account, token = pair
        column = self._columns[token]
        row = self._rows[account]
        column.raws[row] = None
        column.blocks[row] = None
        column.count -= 1
        return reading


class _Items(ItemsView[Pair, Reading]):
    _mapping: Holdings

    def __iter__(self) -> Iterator[tuple[Pair, Reading]]:
        return self._mapping._items()


class _Values(ValuesView[Reading]):
    _mapping: Holdings

    def __iter__(self) -> Iterator[Reading]:
        return (reading for _, reading in self._mapping._items())
