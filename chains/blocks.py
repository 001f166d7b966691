"""Blocks and head events: what the head tracker emits and what reads are pinned to.

Reorgs are data, not exceptions: consumers ``match`` on ``NewBlock`` / ``Reorg``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block as far as watching needs it: number, hash, parent hash, timestamp (unix s)."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int

    @classmethod
    def from_rpc(cls, block: dict[str, Any]) -> BlockRef:
        """Build from an ``eth_getBlockBy*`` result (hex quantities)."""
        return cls(
            number=int(block["number"], 16),
            hash=block["hash"],
            parent_hash=block["parentHash"],
            timestamp=int(block["timestamp"], 16),
        )


@dataclass(frozen=True, slots=True)
class NewBlock:
    """The canonical chain grew to ``block``."""

    block: BlockRef


@dataclass(frozen=True, slots=True)
class Reorg:
    """The canonical chain changed below the previous head.

    ``ancestor`` is the newest block both chains share, or ``None`` when the reorg is deeper
    than the tracked ring (consumers must then treat everything they read as suspect).
    ``orphaned`` lists the dropped blocks, oldest first; ``head`` is the new canonical head.
    """

    ancestor: BlockRef | None
    orphaned: tuple[BlockRef, ...]
    head: BlockRef

    @property
    def depth(self) -> int:
        """How many blocks were dropped from the old canonical chain."""
        return len(self.orphaned)


HeadEvent = NewBlock | Reorg
