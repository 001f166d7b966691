"""The recent outcomes of one RPC endpoint: a fixed-size sliding window of good/bad results.

Pure and O(1) per outcome (one ring write and a running count), because every request on the
balance-read hot path records one. ``chains.rpc_endpoint`` judges an endpoint's error rate on
it, which catches an endpoint that fails at random — one that never fails several times in a
row, so a consecutive-failure count alone never parks it.
"""

from __future__ import annotations


class OutcomeWindow:
    """The last ``size`` outcomes (``bad`` = failed or too slow) and how many of them are bad."""

    __slots__ = ("_next", "_ring", "bad", "count", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an outcome window needs at least one slot")
        self.size = size
        self._ring = bytearray(size)
        self._next = 0
        self.bad = 0  # bad outcomes among the last ``count``
        self.count = 0  # outcomes held, up to ``size``

    def add(self, bad: bool) -> None:
        """Remember one outcome, forgetting the oldest once the window is full."""
        i = self._next
        self.bad += bad - self._ring[i]
        self._ring[i] = bad
        self._next = 0 if i + 1 == self.size else i + 1
        if self.count < self.size:
            self.count += 1

    def clear(self) -> None:
        """Forget every outcome (a re-activated endpoint is judged afresh)."""
        self._ring = bytearray(self.size)
        self._next = self.bad = self.count = 0

    @property
    def rate(self) -> float | None:
        """Share of bad outcomes in the window, ``None`` before the first outcome."""
        return self.bad / self.count if self.count else None

    def exceeds(self, rate: float, min_count: int) -> bool:
        """Whether at least ``min_count`` outcomes are held and ``rate`` or more are bad."""
        return self.count >= min_count and self.bad >= rate * self.count
