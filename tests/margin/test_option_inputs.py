"""An option line's inputs are checked when it is built, each refusal naming the line and the
field (a ``PUT /v1/positions`` body reaches the engine as ``OptionPosition``s). Added for
mutants of ``OptionPosition.__post_init__`` that survived ``make mutate``: the bounds' edges
and the messages."""

from __future__ import annotations

import math

import pytest

from margin.model import MarginInputError
from margin.options import OptionPosition, Right

A = "0x" + "a" * 40
GOOD: dict[str, object] = {
    "account": A,
    "asset": "ETH",
    "chain": "main",
    "size": -2.0,
    "right": Right.PUT,
    "strike": 1800.0,
    "expiry": 1_700_000_000,
    "implied_vol": 0.6,
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("size", math.nan, "size nan"),
        ("size", math.inf, "size inf"),
        ("strike", 0.0, r"strike must be > 0 \(got 0.0\)"),
        ("strike", -5.0, r"strike must be > 0 \(got -5.0\)"),
        ("strike", math.inf, r"strike must be > 0 \(got inf\)"),
        ("strike", math.nan, r"strike must be > 0 \(got nan\)"),
        ("implied_vol", 0.0, r"implied_vol must be in \(0, 10\] \(got 0.0\)"),
        ("implied_vol", 10.5, r"implied_vol must be in \(0, 10\] \(got 10.5\)"),
        ("implied_vol", 11.0, r"implied_vol must be in \(0, 10\] \(got 11.0\)"),
        ("implied_vol", math.inf, r"implied_vol must be in \(0, 10\] \(got inf\)"),
        ("implied_vol", math.nan, r"implied_vol must be in \(0, 10\] \(got nan\)"),
        ("expiry", -1, "expiry -1"),
    ],
)
def test_a_bad_option_is_refused_naming_the_line_and_the_field(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(MarginInputError, match=f"^option {A}/ETH: {message}$"):
        OptionPosition(**{**GOOD, field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strike", 0.5),  # a strike below 1 USD (a cheap token)
        ("implied_vol", 10.0),  # the bound itself: 1,000 %
        ("implied_vol", 1e-6),
        ("expiry", 0),  # the epoch: long expired, valued at intrinsic
        ("size", 0.0),  # a closed line
    ],
)
def test_the_edges_of_the_bounds_are_accepted(field: str, value: object) -> None:
    option = OptionPosition(**{**GOOD, field: value})  # type: ignore[arg-type]
    assert getattr(option, field) == value
