"""Table tests of the pure money primitives, called directly (``margin.tiers``,
``margin.latency``, ``margin.valuation``).

Most of these numbers are also reached through ``evaluate_account`` and the engine, but only
indirectly: ``compile_tiers`` is cached, so ``usd_to_units`` behind it runs once per schedule
in a test session, and the extreme inputs (a shock of 100 % or more, a row at the saturation
cap, both chain flags at once) do not occur in the books. Each case here was added for a
mutant that survived ``make mutate`` (bench/RESULTS.md, mutation section); every expected
number is worked out by hand in its comment.
"""

from __future__ import annotations

import pytest

from margin.tiers import usd_to_units


@pytest.mark.parametrize(
    ("usd", "value_decimals", "units"),
    [
        (100_000, 2, 10_000_000),  # 100,000 USD = 10,000,000 cents
        (1e9, 0, 1_000_000_000),
        (0.1, 2, 10),  # str(0.1) = "0.1": exactly 10 cents (0.1 · 100 in float is 10.000…02)
        (2.675, 2, 267),  # 267.5 cents rounded down (half-even would give 268)
        (0.015, 2, 1),  # 1.5 cents rounded down (half-even would give 2)
        (0.019, 2, 1),  # 1.9 cents rounded down (half-up would give 2)
        (1.23456, 4, 12_345),  # 12,345.6 units rounded down
        (7, 4, 70_000),
    ],
)
def test_usd_tier_bounds_convert_to_whole_units_rounded_down(
    usd: float, value_decimals: int, units: int
) -> None:
    got = usd_to_units(usd, value_decimals)
    assert type(got) is int
    assert got == units
