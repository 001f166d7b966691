"""The pure reorg-linking rules of ``HeadRing`` on hand-built block chains."""

from __future__ import annotations

from chains.blocks import BlockRef, NewBlock, Reorg
from chains.heads import HeadRing


def chain(length: int, fork: str = "a", start: int = 0, parent: str = "genesis") -> list[BlockRef]:
    blocks = []
    for number in range(start, start + length):
        block = BlockRef(
            number=number, hash=f"{fork}{number}", parent_hash=parent, timestamp=number
        )
        blocks.append(block)
        parent = block.hash
    return blocks


class Node:
    """A block store the ring may fetch parents from (what a node answers by hash)."""

    def __init__(self, *branches: list[BlockRef]) -> None:
        self.by_hash = {b.hash: b for branch in branches for b in branch}

    async def fetch(self, block_hash: str) -> BlockRef | None:
        return self.by_hash.get(block_hash)


async def test_linear_growth_emits_one_new_block_each() -> None:
    blocks = chain(5)
    ring, node = HeadRing(8), Node(blocks)
    events = [e for b in blocks for e in await ring.advance(b, node.fetch)]
    assert events == [NewBlock(b) for b in blocks]
    assert await ring.advance(blocks[-1], node.fetch) == []  # same head again: nothing


async def test_gap_is_filled_in_order() -> None:
    blocks = chain(6)
    ring, node = HeadRing(8), Node(blocks)
    await ring.advance(blocks[0], node.fetch)
    events = await ring.advance(blocks[5], node.fetch)
    assert events == [NewBlock(b) for b in blocks[1:]]
    assert ring.tip == blocks[5]


async def test_parent_mismatch_is_a_reorg_to_the_common_ancestor() -> None:
    main = chain(6)
    side = chain(3, fork="b", start=4, parent=main[3].hash)  # replaces 4, 5 and adds 6
    ring, node = HeadRing(16), Node(main, side)
    for b in main:
        await ring.advance(b, node.fetch)
    events = await ring.advance(side[-1], node.fetch)
    assert events == [Reorg(ancestor=main[3], orphaned=(main[4], main[5]), head=side[-1])]
    assert events[0].depth == 2
    assert [ring.at(n) for n in (3, 4, 5, 6)] == [main[3], *side]


async def test_head_going_backwards_is_a_reorg_without_new_blocks() -> None:
    main = chain(6)
    ring, node = HeadRing(16), Node(main)
    for b in main:
        await ring.advance(b, node.fetch)
    events = await ring.advance(main[3], node.fetch)  # anvil_rollback(2)
    assert events == [Reorg(ancestor=main[3], orphaned=(main[4], main[5]), head=main[3])]
    assert ring.tip == main[3]


async def test_reorg_deeper_than_ring_resets_with_unknown_ancestor() -> None:
    main = chain(10)
    side = chain(10, fork="b", start=1, parent=main[0].hash)
    ring, node = HeadRing(4), Node(main, side)
    for b in main:
        await ring.advance(b, node.fetch)
    (event,) = await ring.advance(side[-1], node.fetch)
    assert isinstance(event, Reorg)
    assert event.ancestor is None
    assert ring.tip == side[-1]
