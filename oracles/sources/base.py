"""What every price source looks like, and the raw-RPC surface the on-chain sources need."""

from __future__ import annotations

from typing import Any, Protocol

from oracles.model import DropReason, SourceKind, SourceQuote

WORD_BYTES = 32


class PriceSource(Protocol):
    """One configured source of one asset; ``fetch`` returns a quote, failed or not."""

    @property
    def source_id(self) -> str:
        """Unique within its asset; how the source is named in every round's output."""

    @property
    def kind(self) -> SourceKind:
        """Which kind of source this is (anchors never enter the median)."""

    @property
    def poll_interval_s(self) -> float:
        """Seconds between two fetches when polled in the background."""

    @property
    def timeout_s(self) -> float:
        """Budget of one fetch; the poller cuts it off after that."""

    async def fetch(self) -> SourceQuote:
        """Read the source once. Faults of the source become failed quotes, never raises."""


class SourceFault(Exception):
    """A source-level fault, turned into a failed quote by the source that raised it."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")

    def quote(self, source_id: str, kind: SourceKind) -> SourceQuote:
        """The failed quote reporting this fault."""
        return SourceQuote.failed(source_id, kind, self.reason, self.detail)


def words(result: Any, expected: int, what: str) -> list[bytes]:
    """Split an ``eth_call`` hex result into 32-byte words; at least ``expected`` of them.

    A short answer (``0x`` from an address without code, a non-hex string) is ``MALFORMED``.
    """
    if not isinstance(result, str) or not result.startswith("0x"):
        raise SourceFault(DropReason.MALFORMED, f"{what} returned a non-hex result")
    try:
        raw = bytes.fromhex(result[2:])
    except ValueError:
        raise SourceFault(DropReason.MALFORMED, f"{what} returned a non-hex result") from None
    if len(raw) < expected * WORD_BYTES:
        shown = "no data (no contract at the address?)" if not raw else f"{len(raw)} bytes"
        raise SourceFault(DropReason.MALFORMED, f"{what} returned {shown}")
    return [raw[i : i + WORD_BYTES] for i in range(0, len(raw) - WORD_BYTES + 1, WORD_BYTES)]


def uint(word: bytes) -> int:
    """An unsigned ABI word."""
    return int.from_bytes(word, "big")


def sint(word: bytes) -> int:
    """A signed (two's complement) ABI word: int256, or a smaller intN sign-extended."""
    return int.from_bytes(word, "big", signed=True)


def eth_call(to: str, calldata_hex: str, block: str = "latest") -> tuple[str, list[Any]]:
    """``(method, params)`` of an ``eth_call`` for ``Requester.batch``."""
    return "eth_call", [{"to": to, "data": calldata_hex}, block]
