"""One watcher update's readings as columns: per token, the accounts read and their raws.

A chain's first sweep is every pair (2,000,000 at a million accounts × 2 tokens). Held as
``dict[Pair, Reading]`` that was 2,000,000 key tuples, ``Reading``s and dict entries built by
the watcher only for the engine and the store to take them apart again (~200 B per pair: the
start-up's memory peak). ``ReadColumns`` keeps what a sweep produces — every reading of an
update is at the update's one block — as two lists per token that share the watcher's address
strings and raw integers. It still reads as the mapping it replaces (``Reading``s are built
when asked for); the engine (``daemon.risk_inputs.apply_readings``) and the store
(``daemon.store.chain_state``) take the columns directly.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping
from dataclasses import dataclass, field

from chains.holdings import Reading
from chains.reads import Pair


@dataclass(slots=True)
class TokenReads:
    """One token's readings: ``raws[i]`` of ``accounts[i]`` (``None``: the read failed)."""

    accounts: list[str] = field(default_factory=list)
    raws: list[int | None] = field(default_factory=list)
    failed: int = 0
    """How many of ``raws`` are ``None`` (0: every read succeeded, the common case)."""


class ReadColumns(Mapping[Pair, Reading]):
    """``Pair`` → ``Reading`` of one update, all read at block ``number`` (``block_hash``).

    Immutable once built (consumers keep it without copying); each pair appears once."""

    __slots__ = ("_index", "block_hash", "block_number", "tokens")

    def __init__(self, block_number: int, block_hash: str, tokens: Mapping[str, TokenReads]):
        self.block_number = block_number
        self.block_hash = block_hash
        self.tokens: Mapping[str, TokenReads] = {t: c for t, c in tokens.items() if c.accounts}
        self._index: dict[str, dict[str, int]] | None = None

    def __len__(self) -> int:
        return sum(len(c.accounts) for c in self.tokens.values())

    def __iter__(self) -> Iterator[Pair]:
        for token, column in self.tokens.items():
            for account in column.accounts:
                yield account, token

    def __getitem__(self, pair: Pair) -> Reading:
        if self._index is None:  # only for lookups (tests, small updates): built once
            self._index = {
                token: {account: i for i, account in enumerate(column.accounts)}
                for token, column in self.tokens.items()
            }
        account, token = pair
        row = self._index.get(token, {}).get(account)
        if row is None:
            raise KeyError(pair)
        return Reading(self.tokens[token].raws[row], self.block_number, self.block_hash)

    def joined(self, other: ReadColumns) -> ReadColumns:
        """These readings and ``other``'s, of other pairs at the same block (the parts of one
        sweep), as one."""
        if (other.block_number, other.block_hash) != (self.block_number, self.block_hash):
            raise ValueError("ReadColumns.joined: readings of two blocks")
        tokens = dict(self.tokens)
        for token, column in other.tokens.items():
            mine = tokens.get(token)
            tokens[token] = (
                column
                if mine is None
                else TokenReads(
                    accounts=mine.accounts + column.accounts,
                    raws=mine.raws + column.raws,
                    failed=mine.failed + column.failed,
                )
            )
        return ReadColumns(self.block_number, self.block_hash, tokens)

    def items(self) -> ItemsView[Pair, Reading]:
        """Every (pair, reading), token by token, straight from the columns."""
        return _Items(self)

    def _items(self) -> Iterator[tuple[Pair, Reading]]:
        number, block_hash = self.block_number, self.block_hash
        for token, column in self.tokens.items():
            for account, raw in zip(column.accounts, column.raws, strict=True):
                yield (account, token), Reading(raw, number, block_hash)


class _Items(ItemsView[Pair, Reading]):
    _mapping: ReadColumns

    def __iter__(self) -> Iterator[tuple[Pair, Reading]]:
        return self._mapping._items()
