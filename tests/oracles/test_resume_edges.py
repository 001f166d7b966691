"""The resumable state documents' edges (``oracles.resume``): every field through JSON and back,
the correlation pair's document written out field by field, and each refusal naming its
part. Added for mutants that survived the fifth mutation pass (bench/RESULTS.md, "Fifth pass").
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from core.domain import PriceStatus
from core.errors import OracleStateInvalid
from oracles.correlation import PairState
from oracles.model import AcceptedPrice, AggregatorState, PendingJump
from oracles.resume import (
    pair_state_from_json,
    pair_state_to_json,
    state_from_json,
    state_to_json,
)
from oracles.volatility import VolatilityState

D = Decimal


def through_json(document: dict[str, Any]) -> Any:
    return json.loads(json.dumps(document, allow_nan=False))


def test_a_pending_rise_with_one_confirmation_and_a_timed_volatility_round_trip() -> None:
    state = AggregatorState(
        last_good=AcceptedPrice(
            price=D("2000"),
            price_low=D("1999.5"),
            price_high=D("2000.5"),
            observed_at=1_700_000_000.0,
            accepted_at=1_700_000_001.0,
        ),
        pending=PendingJump(
            direction=1,
            price=D("3200"),
            confirmations=1,
            evidence_at=1_700_000_005.0,
            first_seen_at=1_700_000_006.0,
        ),
        volatility=VolatilityState(
            variance_per_s=1.2e-08, last_price=2000.0, last_at=1_700_000_001.0
        ),
        status=PriceStatus.TRIPPED,
    )
    document = through_json(state_to_json(state))
    assert document["volatility"] == {
        "variance_per_s": 1.2e-08,
        "last_price": 2000.0,
        "last_at": 1_700_000_001.0,
    }
    assert state_from_json(document) == state


@pytest.mark.parametrize("part", ["last_good", "pending", "volatility"])
def test_a_part_that_is_not_an_object_is_named(part: str) -> None:
    with pytest.raises(OracleStateInvalid, match=rf"^{part}: expected an object, got list$"):
        state_from_json({"version": 1, part: []})


def test_a_document_that_is_not_an_object_is_named() -> None:
    with pytest.raises(OracleStateInvalid, match=r"^state: expected an object, got str$"):
        state_from_json("{}")
    with pytest.raises(
        OracleStateInvalid, match=r"^correlation state: expected an object, got list$"
    ):
        pair_state_from_json([])


def test_a_pair_state_is_written_field_by_field_and_read_back() -> None:
    # the module docstring's example document, then a pair that has no reference yet
    state = PairState(
        assets=("ETH", "WBTC"),
        last_prices=(2000.0, 60000.0),
        last_at=1_700_000_001.0,
        var_a=1.2e-08,
        var_b=9e-09,
        cov=7e-09,
        weight=0.0012,
        weight_sq=1.4e-08,
    )
    document = through_json(pair_state_to_json(state))
    assert document == {
        "version": 1,
        "assets": ["ETH", "WBTC"],
        "last_prices": [2000.0, 60000.0],
        "last_at": 1_700_000_001.0,
        "var_a": 1.2e-08,
        "var_b": 9e-09,
        "cov": 7e-09,
        "weight": 0.0012,
        "weight_sq": 1.4e-08,
    }
    assert pair_state_from_json(document) == state
    fresh = PairState(assets=("BTC", "ETH"))
    document = through_json(pair_state_to_json(fresh))
    assert document["last_prices"] is None
    assert document["last_at"] is None
    assert pair_state_from_json(document) == fresh
    far = PairState(assets=("A", "B"), last_prices=(float("inf"), 1.0), last_at=2.0)
    assert through_json(pair_state_to_json(far))["last_prices"] == ["inf", 1.0]
    assert pair_state_from_json(through_json(pair_state_to_json(far))) == far


GOOD_PAIR: dict[str, Any] = {
    "version": 1,
    "assets": ["ETH", "BTC"],
    "last_prices": None,
    "last_at": None,
    "var_a": 0.0,
    "var_b": 0.0,
    "cov": 0.0,
    "weight": 0.0,
    "weight_sq": 0.0,
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"version": 2}, r"^unknown state version 2 \(expected 1\)$"),
        ({"assets": ["ETH"]}, r"^assets: expected two asset names, got \['ETH'\]$"),
        ({"assets": ["ETH", 1]}, r"^assets: expected two asset names, got \['ETH', 1\]$"),
        ({"assets": "ETH/BTC"}, r"^assets: expected two asset names, got 'ETH/BTC'$"),
        ({"last_prices": [1.0]}, r"^last_prices: expected two numbers or null, got \[1.0\]$"),
        ({"last_prices": "x"}, r"^last_prices: expected two numbers or null, got 'x'$"),
        ({"last_prices": [1.0, None]}, r"^b: expected a number, got null$"),
        ({"var_a": -1e-9}, r"^correlation sums must be finite, variances >= 0$"),
        ({"var_b": -1e-9}, r"^correlation sums must be finite, variances >= 0$"),
        ({"cov": "nan"}, r"^correlation sums must be finite, variances >= 0$"),
        ({"weight_sq": "inf"}, r"^correlation sums must be finite, variances >= 0$"),
    ],
)
def test_a_bad_pair_document_is_refused_by_name(change: dict[str, Any], problem: str) -> None:
    pair_state_from_json(GOOD_PAIR)  # the base document is good
    with pytest.raises(OracleStateInvalid, match=problem):
        pair_state_from_json({**GOOD_PAIR, **change})
    missing = {k: v for k, v in GOOD_PAIR.items() if k != "assets"}
    with pytest.raises(OracleStateInvalid, match=r"^missing field 'assets'$"):
        pair_state_from_json(missing)


PENDING: dict[str, Any] = {
    "direction": 1,
    "price": "3200",
    "confirmations": 1,
    "evidence_at": 1.0,
    "first_seen_at": 1.0,
}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"last_good": {"price": 2000}}, r"^price: expected a decimal string, got int$"),
        ({"last_good": {"price": "abc"}}, r"^price: 'abc' is not a decimal$"),
        (
            {"pending": {**PENDING, "confirmations": "1"}},
            r"^confirmations: expected an integer, got '1'$",
        ),
        (
            {"pending": {**PENDING, "direction": True}},
            r"^direction: expected an integer, got True$",
        ),
        (
            {"volatility": {"variance_per_s": True}},
            r"^variance_per_s: expected a number, got True$",
        ),
    ],
)
def test_a_bad_field_is_refused_with_its_name_and_value(
    document: dict[str, Any], problem: str
) -> None:
    with pytest.raises(OracleStateInvalid, match=problem):
        state_from_json({"version": 1, **document})
