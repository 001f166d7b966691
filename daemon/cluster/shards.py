"""Which shard an account belongs to: a stable hash of its 20 address bytes.

    shard = int.from_bytes(blake2b(address_bytes, digest_size=8).digest(), "big") % shards

BLAKE2b (``hashlib``, no dependency) of the 20 raw bytes, not of the text: the same address
in any letter case lands in the same shard, on every replica, Python version and machine (no
``hash()`` randomization). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

SHARD_DIGEST_BYTES = 8


def shard_of(address: str, shards: int) -> int:
    """The shard of ``address`` (``0x`` + 40 hex digits, any case) among ``shards``."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    raw = bytes.fromhex(address[2:] if address[:2].lower() == "0x" else address)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    digest = hashlib.blake2b(raw, digest_size=SHARD_DIGEST_BYTES).digest()
    return int.from_bytes(digest, "big") % shards


class ShardMap:
    """The shards of one deployment and the subset this replica runs; remembers each
    address's shard (the engine asks for every row it writes)."""

    def __init__(self, shards: int, held: Collection[int] | None = None) -> None:
        self.shards = shards
        self.held: frozenset[int] | None = None if held is None else frozenset(held)
        """``None``: every shard (cluster mode off)."""
        self._cache: dict[str, int] = {}

    def shard(self, address: str) -> int:
        """``shard_of(address)``, cached."""
        found = self._cache.get(address)
        if found is None:
            found = self._cache[address] = shard_of(address, self.shards)
        return found

    def owns(self, address: str) -> bool:
        """True when this replica runs ``address``'s shard."""
        return self.held is None or self.shard(address.lower()) in self.held


def fair_share(shards: int, alive: int) -> int:
    """At most this many shards per replica while ``alive`` replicas are alive:
    ``ceil(shards / alive)`` (all of them when alone)."""
    return -(-shards // max(1, alive))
