"""Exact conversions of raw integer amounts (token balances, engine value units) to decimals,
and the one text form of a decimal: positional, without trailing zeros (no float on the way)."""

from __future__ import annotations

from decimal import Decimal


def scaled(raw: int, decimals: int) -> Decimal:
    """``raw / 10**decimals`` as an exact ``Decimal``, whatever its number of digits (a token
    balance, a feed answer, engine value units)."""
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    return Decimal(f"{raw}E{-decimals}")


def plain_decimal(value: Decimal) -> str:
    """A decimal in positional notation without trailing zeros (``"3000.12"``, ``"0"``),
    exactly."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_units(raw: int, decimals: int) -> str:
    """Render ``raw / 10**decimals`` exactly, without trailing zeros (``"1.5"``, ``"0"``):
    ``plain_decimal(scaled(raw, decimals))``, on the digits of the integer (a snapshot prints
    one per balance; no ``Decimal`` is built)."""
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    digits = str(abs(raw))
    if decimals == 0:
        return "0" if raw == 0 else ("-" if raw < 0 else "") + digits
    digits = digits.rjust(decimals + 1, "0")
    whole, fraction = digits[:-decimals], digits[-decimals:].rstrip("0")
    if raw == 0:
        return "0"
    return ("-" if raw < 0 else "") + whole + ("." + fraction if fraction else "")
