"""Multicall3 ``aggregate3`` calldata and return decoding by hand, for speed.

ABI layouts (all words 32 bytes):

calldata  = selector | 0x20 | n | n head offsets | n tuples
tuple     = target | allowFailure | 0x60 | len | data (padded)   (192 bytes for balanceOf)
returned  = 0x20 | n | n head offsets | n tuples (success | 0x40 | len | data (padded))

Offsets in both head arrays are relative to the first byte after the length word. Encoding
works on hex strings (the request body is hex anyway); a chunk of ``balanceOf`` calls is built
in one join from the pairs, nothing kept per pair (a cache of every pair's tuple cost ~450 bytes
per holding and was slower than the join: bench/RESULTS.md); decoding slices the returned bytes
instead of running a generic ABI decoder (~10x faster, see FIELD-NOTES).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from core.errors import NonRetryableError

AGGREGATE3_SELECTOR = "82ad56cb"
BALANCE_OF_SELECTOR = "70a08231"
DECIMALS_SELECTOR = "313ce567"
WORD_HEX = 64
ADDRESS_HEX = 40
CALL_RESULT_BYTES = 32  # a well-formed uint256 return; anything else is a failed read

_ALLOW_FAILURE = "0" * 63 + "1"
_BYTES_OFFSET = f"{0x60:064x}"
_BALANCE_OF_LEN = f"{4 + 32:064x}"  # calldata bytes: selector + one address word
_BALANCE_OF_PAD = "0" * 56  # 36 calldata bytes padded to 64
_RESULT_TUPLE_BYTES = 128  # success | 0x40 | 32 | word: a call that returned one word
_RESULT_TUPLE_HEAD = (1).to_bytes(32, "big") + (0x40).to_bytes(32, "big") + (32).to_bytes(32, "big")


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


@functools.lru_cache(maxsize=4096)
def _balance_of_prefix(token: str) -> str:
    """Everything of a ``balanceOf`` Call3 tuple before the account word, per token."""
    return (
        _address_word(token)
        + _ALLOW_FAILURE
        + _BYTES_OFFSET
        + _BALANCE_OF_LEN
        + BALANCE_OF_SELECTOR
    )


def balance_of_call(token: str, account: str) -> str:
    """The ``Call3`` tuple for ``token.balanceOf(account)`` (one concatenation: cold reads of
    100k pairs spend ~0.3 s in the generic ``encode_call``)."""
    return _balance_of_prefix(token) + _address_word(account) + _BALANCE_OF_PAD


_ACCOUNT_WORD_PAD = "0" * (WORD_HEX - ADDRESS_HEX)
_BALANCE_OF_TUPLE_HEX = len(balance_of_call("0x" + "0" * ADDRESS_HEX, "0x" + "0" * ADDRESS_HEX))


def encode_balance_of_aggregate3(pairs: Sequence[tuple[str, str]]) -> str:
    """``aggregate3`` calldata of ``token.balanceOf(account)`` for every ``(account, token)``
    pair: ``encode_aggregate3([balance_of_call(t, a) for a, t in pairs])``, built in one join
    (a canonical ``0x`` + 40 lower-case hex account is copied as it is)."""
    n = len(pairs)
    prefixes: dict[str, str] = {}
    parts: list[str] = ["0x", AGGREGATE3_SELECTOR, _word(0x20), _word(n)]
    if n:
        parts.append(_uniform_heads(n, _BALANCE_OF_TUPLE_HEX))
    append = parts.append
    for account, token in pairs:
        prefix = prefixes.get(token)
        if prefix is None:
            prefix = prefixes[token] = _balance_of_prefix(token) + _ACCOUNT_WORD_PAD
        append(prefix)
        if len(account) == ADDRESS_HEX + 2 and account.islower() and account[:2] == "0x":
            append(account[2:])
        else:
            append(_address_word(account)[-ADDRESS_HEX:])
        append(_BALANCE_OF_PAD)
    return "".join(parts)


@functools.lru_cache(maxsize=64)
def _uniform_heads(n: int, tuple_hex_len: int) -> str:
    """Head offsets of ``n`` tuples that all have the same hex length."""
    step = tuple_hex_len // 2
    return "".join(_word(n * 32 + i * step) for i in range(n))


def encode_aggregate3(tuples: Sequence[str]) -> str:
    """Assemble ``aggregate3(calls)`` calldata (0x-prefixed hex) from encoded tuples.

    When every tuple has the same length (all ``balanceOf`` tuples do) the head offsets come
    from a cache: a thousand word formats fewer per chunk.
    """
    n = len(tuples)
    head = "0x" + AGGREGATE3_SELECTOR + _word(0x20) + _word(n)
    lengths = {len(item) for item in tuples}
    if len(lengths) == 1:
        return head + _uniform_heads(n, lengths.pop()) + "".join(tuples)
    parts = [head]
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
    """Decode ``(bool success, bytes returnData)[]`` into one word per call; ``None`` marks a
    failed call.

    A call counts as failed when it reverted or returned anything but exactly 32 bytes (an
    address without code "succeeds" with empty data: that is not a zero balance).
    """
    raw = bytes.fromhex(result_hex.removeprefix("0x"))
    words = _uniform_words(raw, expected)
    if words is not None:
        return words
    size = len(raw)
    return [
        raw[data_at : data_at + CALL_RESULT_BYTES]
        if success and length == CALL_RESULT_BYTES and data_at + CALL_RESULT_BYTES <= size
        else None
        for success, data_at, length in _result_tuples(raw, expected)
    ]


def decode_aggregate3_data(result_hex: str, expected: int) -> list[bytes | None]:
    """Decode ``(bool success, bytes returnData)[]`` keeping each success's data whole (structs,
    tuples, dynamic arrays); ``None`` marks a call that reverted. Data that runs past the end
    of the return raises ``MalformedReturn``."""
    raw = bytes.fromhex(result_hex.removeprefix("0x"))
    words = _uniform_words(raw, expected)
    if words is not None:
        return words
    size = len(raw)
    out: list[bytes | None] = []
    for success, data_at, length in _result_tuples(raw, expected):
        if data_at + length > size:
            raise MalformedReturn("return data shorter than its offsets")
        out.append(raw[data_at : data_at + length] if success else None)
    return out


def _result_tuples(raw: bytes, expected: int) -> list[tuple[bool, int, int]]:
    """``(success, where its data starts, its length)`` of each returned tuple, offsets checked
    against the layout; a layout that does not fit raises ``MalformedReturn``."""
    try:
        if int.from_bytes(raw[0:32], "big") != 0x20:
            raise MalformedReturn("unexpected array offset")
        n = int.from_bytes(raw[32:64], "big")
        if n != expected:
            raise MalformedReturn(f"{n} results for {expected} calls")
        base = 64
        out: list[tuple[bool, int, int]] = []
        for i in range(n):
            head = base + 32 * i
            start = base + int.from_bytes(raw[head : head + 32], "big")
            success = raw[start + 31] == 1
            data_at = start + int.from_bytes(raw[start + 32 : start + 64], "big")
            length = int.from_bytes(raw[data_at : data_at + 32], "big")
            out.append((success, data_at + 32, length))
    except IndexError as exc:
        raise MalformedReturn("return data shorter than its offsets") from exc
    return out


@functools.lru_cache(maxsize=64)
def _uniform_layout(n: int) -> tuple[bytes, tuple[bytes, ...]]:
    """For ``n`` calls that all returned one word: the exact bytes before the tuples (offset,
    length, heads), and each of a tuple's first 96 bytes repeated ``n`` times."""
    heads = b"".join((n * 32 + i * _RESULT_TUPLE_BYTES).to_bytes(32, "big") for i in range(n))
    prefix = (0x20).to_bytes(32, "big") + n.to_bytes(32, "big") + heads
    return prefix, tuple(bytes([b]) * n for b in _RESULT_TUPLE_HEAD)


def _uniform_words(raw: bytes, n: int) -> list[bytes | None] | None:
    """The fast path of ``decode_aggregate3``: when every call succeeded with exactly one word,
    the layout is fixed and checked whole with one prefix comparison and 96 strided-slice
    comparisons (C loops), then words are sliced at a fixed stride. ``None``: not that case."""
    base = 64 + 32 * n
    if n == 0 or len(raw) != base + n * _RESULT_TUPLE_BYTES:
        return None
    prefix, columns = _uniform_layout(n)
    if not raw.startswith(prefix):
        return None
    for k, column in enumerate(columns):
        if raw[base + k :: _RESULT_TUPLE_BYTES] != column:
            return None
    return [raw[i : i + 32] for i in range(base + 96, len(raw), _RESULT_TUPLE_BYTES)]


def decode_uint(word: bytes | None) -> int | None:
    """A uint256 from a 32-byte word, passing failures (``None``) through."""
    return None if word is None else int.from_bytes(word, "big")
