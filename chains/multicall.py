"""Multicall3 ``aggregate3`` calldata and return decoding by hand, for speed.

ABI layouts (all words 32 bytes):

calldata  = selector | 0x20 | n | n head offsets | n tuples
tuple     = target | allowFailure | 0x60 | len | data (padded)   (192 bytes for balanceOf)
returned  = 0x20 | n | n head offsets | n tuples (success | 0x40 | len | data (padded))

Offsets in both head arrays are relative to the first byte after the length word. Encoding
works on hex strings (the request body is hex anyway) and caches the per-call tuple; decoding
slices the returned bytes instead of running a generic ABI decoder (~10x faster, see FIELD-NOTES).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import NonRetryableError

AGGREGATE3_SELECTOR = "82ad56cb"
BALANCE_OF_SELECTOR = "70a08231"
DECIMALS_SELECTOR = "313ce567"
WORD_HEX = 64
CALL_RESULT_BYTES = 32  # a well-formed uint256 return; anything else is a failed read

_ALLOW_FAILURE = "0" * 63 + "1"
_BYTES_OFFSET = f"{0x60:064x}"


def _word(value: int) -> str:
    return f"{value:064x}"


def _address_word(address: str) -> str:
    return address.lower().removeprefix("0x").rjust(WORD_HEX, "0")


def encode_call(target: str, calldata_hex: str) -> str:
    """Encode one ``Call3`` tuple (allowFailure = true) as hex without 0x."""
    data = calldata_hex.removeprefix("0x")
    length = len(data) // 2
    padded = data + "0" * (-len(data) % WORD_HEX)
    return _address_word(target) + _ALLOW_FAILURE + _BYTES_OFFSET + _word(length) + padded


def balance_of_call(token: str, account: str) -> str:
    """The ``Call3`` tuple for ``token.balanceOf(account)``."""
    return encode_call(token, BALANCE_OF_SELECTOR + _address_word(account))


def encode_aggregate3(tuples: Sequence[str]) -> str:
    """Assemble ``aggregate3(calls)`` calldata (0x-prefixed hex) from encoded tuples."""
    n = len(tuples)
    parts = ["0x", AGGREGATE3_SELECTOR, _word(0x20), _word(n)]
    offset = n * 32
    for item in tuples:
        parts.append(_word(offset))
        offset += len(item) // 2
    parts.extend(tuples)
    return "".join(parts)


class MalformedReturn(NonRetryableError):
    """The aggregate3 return data does not follow the ABI layout."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"malformed aggregate3 return: {problem}")


def decode_aggregate3(result_hex: str, expected: int) -> list[bytes | None]:
    """Decode ``(bool success, bytes returnData)[]``; ``None`` marks a failed call.

    A call counts as failed when it reverted or returned anything but exactly 32 bytes (an
    address without code "succeeds" with empty data: that is not a zero balance).
    """
    raw = bytes.fromhex(result_hex.removeprefix("0x"))
    try:
        if int.from_bytes(raw[0:32], "big") != 0x20:
            raise MalformedReturn("unexpected array offset")
        n = int.from_bytes(raw[32:64], "big")
        if n != expected:
            raise MalformedReturn(f"{n} results for {expected} calls")
        base = 64
        out: list[bytes | None] = []
        for i in range(n):
            head = base + 32 * i
            start = base + int.from_bytes(raw[head : head + 32], "big")
            success = raw[start + 31] == 1
            data_at = start + int.from_bytes(raw[start + 32 : start + 64], "big")
            length = int.from_bytes(raw[data_at : data_at + 32], "big")
            if success and length == CALL_RESULT_BYTES and data_at + 64 <= len(raw):
                out.append(raw[data_at + 32 : data_at + 64])
            else:
                out.append(None)
    except IndexError as exc:
        raise MalformedReturn("return data shorter than its offsets") from exc
    return out


def decode_uint(word: bytes | None) -> int | None:
    """A uint256 from a 32-byte word, passing failures (``None``) through."""
    return None if word is None else int.from_bytes(word, "big")
