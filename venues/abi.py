"""Hand-rolled ABI pieces for venue reads: selectors, argument words, return slicing.

The hot path builds calldata by string formatting and decodes returns by slicing (see
``chains.multicall`` for why); eth_abi stays for the rare dynamic types (strings).
"""

from __future__ import annotations

import functools

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

WORD = 32
UINT256_MAX = 2**256 - 1


@functools.cache
def selector(signature: str) -> str:
    """4-byte selector of ``signature`` (``"balanceOf(address)"``) as 8 hex chars."""
    return keccak(text=signature)[:4].hex()


@functools.cache
def topic(signature: str) -> str:
    """Event topic 0 of ``signature`` as 0x-hex."""
    return "0x" + keccak(text=signature).hex()


def address_word(address: str) -> str:
    """An address as one ABI word (64 hex chars)."""
    return address.lower().removeprefix("0x").rjust(64, "0")


def uint_word(value: int) -> str:
    """A uint256 as one ABI word (64 hex chars)."""
    return f"{value:064x}"


def bytes32_word(value: str) -> str:
    """A 0x-hex bytes32 as one ABI word."""
    return value.lower().removeprefix("0x").rjust(64, "0")


def calldata(signature: str, *words: str) -> str:
    """Calldata hex (no 0x) of a function whose arguments are all static words."""
    return selector(signature) + "".join(words)


def words(data: bytes | None, count: int) -> tuple[int, ...] | None:
    """The first ``count`` words of a return as ints; ``None`` if it is missing or short
    (an address without code "succeeds" with no data: that is a failed read, not zeros)."""
    if data is None or len(data) < count * WORD:
        return None
    return tuple(int.from_bytes(data[i : i + WORD], "big") for i in range(0, count * WORD, WORD))


def word(data: bytes | None) -> int | None:
    """A single-word return as an int, or ``None`` (see ``words``)."""
    if data is None or len(data) < WORD:
        return None
    return int.from_bytes(data[:WORD], "big")


def as_address(value: int) -> str:
    """A word holding an address, as lower-case 0x-hex."""
    return "0x" + f"{value:040x}"[-40:]


def address_array(data: bytes | None) -> list[str] | None:
    """Decode an ``address[]`` return; ``None`` when the layout is wrong."""
    if data is None or len(data) < 2 * WORD:
        return None
    offset = int.from_bytes(data[:WORD], "big")
    if offset + WORD > len(data):
        return None
    n = int.from_bytes(data[offset : offset + WORD], "big")
    start = offset + WORD
    if start + n * WORD > len(data):
        return None
    return [
        as_address(int.from_bytes(data[i : i + WORD], "big"))
        for i in range(start, start + n * WORD, WORD)
    ]


def text(data: bytes | None) -> str | None:
    """A ``string`` return (or a ``bytes32`` one, as old tokens answer ``symbol()``)."""
    if data is None:
        return None
    if len(data) == WORD:
        return data.rstrip(b"\0").decode("utf-8", "replace") or None
    try:
        (value,) = abi_decode(["string"], data)
    except Exception:  # noqa: BLE001 - any malformed return is "no symbol", not a crash
        return None
    return str(value) or None
