"""Table tests of the shared pieces: exact amount formatting and the error hierarchy
(URL redaction: ``tests/core/test_redaction.py``)."""

from __future__ import annotations

import random

import pytest

from core.amounts import format_units, plain_decimal, scaled
from core.errors import ConfigError, CrossmarginError, NonRetryableError


@pytest.mark.parametrize(
    ("raw", "decimals", "expected"),
    [
        (0, 18, "0"),
        (1, 18, "0.000000000000000001"),
        (1_500_000, 6, "1.5"),
        (10**18, 18, "1"),
        (123, 0, "123"),
        (-2_500_000, 6, "-2.5"),
        (
            2**256 - 1,
            18,
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935",
        ),
    ],
)
def test_format_units_is_exact(raw: int, decimals: int, expected: str) -> None:
    assert format_units(raw, decimals) == expected


def test_format_units_equals_the_decimal_rendering() -> None:
    # The digit-string path against the one text form of a Decimal, on edge and random values.
    rng = random.Random(14)
    cases = [(sign * raw, decimals) for sign in (1, -1) for raw in (0, 1, 9, 10, 100, 10**18)
             for decimals in (0, 1, 2, 6, 18, 30)]  # fmt: skip
    cases += [(rng.randrange(-(2**256), 2**256) // 10 ** rng.randrange(0, 60), rng.randrange(0, 40))
              for _ in range(5_000)]  # fmt: skip
    for raw, decimals in cases:
        assert format_units(raw, decimals) == plain_decimal(scaled(raw, decimals)), (raw, decimals)
    with pytest.raises(ValueError, match="decimals must be >= 0"):
        format_units(1, -1)


def test_config_error_names_key_and_value() -> None:
    err = ConfigError("chains[0].chain_id", "must be positive", -1)
    assert isinstance(err, NonRetryableError)
    assert isinstance(err, CrossmarginError)
    assert str(err) == "config error at chains[0].chain_id: must be positive (got -1)"
