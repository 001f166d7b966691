"""``freeze_long_lived``: what is alive leaves the collector's passes, garbage does not."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from daemon.heap import freeze_long_lived


class Node:
    """A container the collector tracks (it can be part of a reference cycle)."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Whatever a test froze goes back to the collector's generations afterwards."""
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_the_living_are_frozen_and_a_cycle_already_garbage_is_collected_first() -> None:
    kept = [Node() for _ in range(1_000)]
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: only the collector can reclaim it
    cycle = weakref.ref(a)
    del a, b
    frozen = freeze_long_lived()
    assert cycle() is None  # collected before the freeze, not kept forever
    assert frozen == gc.get_freeze_count() >= len(kept)
    scanned = {id(o) for o in gc.get_objects()}  # the generations a collection looks at
    assert not any(id(node) in scanned for node in kept)
