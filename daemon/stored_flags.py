"""The flags the engine loop last stored for each account: its guess of what the store holds.

A market-wide move rewrites every account's health row, but its events and the liquidatable
listing wait only for the accounts whose flags moved. The store commits those rows and their
transitions first when it is told which they are (``HealthRows.moved_first``), and compares
the others with what it holds in a second transaction (``daemon.store.cycle``). This is where
the loop keeps what it needs to tell: the flags of every row it wrote successfully since it
started. A wrong guess (a restart, a shard taken over, a write that failed after its first
commit) costs time, never a transition: the store finds such a row's change in the second
transaction and appends its transition there.

    order, first = stored.order(rows, engine.results.flags)   # the write's rows, guessed
    ...                                                       # written (order), then
    stored.written()                                          # once the write succeeded
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from margin.kernel import FlagArray
from margin.tiers import IndexArray

UNSTORED = -1
"""The stored flags of an account not written since start (never equal to real flags)."""


class StoredFlags:
    """Per engine row, the flags of its last stored health row (``UNSTORED`` if none)."""

    __slots__ = ("_flags", "_writing")

    def __init__(self) -> None:
        self._flags: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._writing: tuple[IndexArray, npt.NDArray[np.int32]] | None = None

    def order(self, rows: IndexArray, flags: FlagArray) -> tuple[IndexArray, int]:
        """``rows`` (engine rows about to be written; ``flags``: every row's current flags)
        with the rows whose flags differ from the stored ones first; and how many those are.
        Their flags are remembered as the write in flight's (``written``)."""
        if len(self._flags) < len(flags):
            grown = np.full(len(flags), UNSTORED, dtype=np.int32)
            grown[: len(self._flags)] = self._flags
            self._flags = grown
        now = flags[rows].astype(np.int32)
        moved = self._flags[rows] != now
        ordered = np.concatenate([rows[moved], rows[~moved]])
        self._writing = (ordered, np.concatenate([now[moved], now[~moved]]))
        return ordered, int(moved.sum())

    def written(self) -> None:
        """The write of the rows ``order`` was last given is stored (a failed or refused
        write is not: its rows keep their older guess)."""
        if self._writing is not None:
            rows, flags = self._writing
            self._flags[rows] = flags
            self._writing = None
