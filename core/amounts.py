"""Exact conversion of raw integer token amounts to decimal strings (no float on the way)."""

from __future__ import annotations


def format_units(raw: int, decimals: int) -> str:
    """Render ``raw / 10**decimals`` exactly, without trailing zeros (``"1.5"``, ``"0"``)."""
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    sign = "-" if raw < 0 else ""
    whole, frac = divmod(abs(raw), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole}"
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}"
