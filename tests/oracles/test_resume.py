"""An aggregator stopped and restarted from its stored state decides exactly as one that never
stopped (pure: quotes by hand, time as numbers, the state through JSON as the store keeps it).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from core.domain import PriceStatus
from core.errors import OracleStateInvalid
from oracles.aggregate import AssetAggregator
from oracles.model import (
    AcceptedPrice,
    AggregatorState,
    AssetPrice,
    DropReason,
    OracleParams,
    PendingJump,
    SourceKind,
    SourceQuote,
)
from oracles.resume import state_from_json, state_to_json
from oracles.volatility import VolatilityState

T0 = 1_700_000_000.0
MAX_AGE_S = 60.0
D = Decimal
ETH = OracleParams(
    min_sources=2, max_deviation=0.02, max_jump=0.2, confirm_rounds=3, volatility_floor=0.5
)


def through_json(state: AggregatorState) -> AggregatorState:
    """What a restarted daemon gets back: the document serialised as the store does (JSON)."""
    return state_from_json(json.loads(json.dumps(state_to_json(state))))


def restarted(agg: AssetAggregator, symbol: str, params: OracleParams) -> AssetAggregator:
    return AssetAggregator(symbol=symbol, params=params, state=through_json(agg.state))


def quote(source_id: str, price: str | Decimal, at: float, **extra: Any) -> SourceQuote:
    return SourceQuote(
        source_id=source_id,
        kind=extra.pop("kind", SourceKind.HTTP),
        price=D(price),
        observed_at=at,
        max_age_s=MAX_AGE_S,
        **extra,
    )


# --- the scenario of the issue ---------------------------------------------------------------


def test_a_restart_during_a_trip_stays_tripped_until_the_sources_confirm() -> None:
    agg = AssetAggregator(symbol="ETH", params=ETH)
    ok = agg.round([quote(f"s{i}", "2000", T0) for i in range(3)], T0)
    assert ok.status is PriceStatus.OK

    def manipulated(now: float, data_at: float) -> AssetPrice:
        """Two of three sources +60 %, their data observed at ``data_at``."""
        two = [quote("s0", "3200", data_at), quote("s1", "3200", data_at)]
        return agg.round([*two, quote("s2", "2000", now)], now)

    # Fresh data twice (two confirmations), the same data again in between (not one).
    for now, data_at, confirmations in ((10, 10, 1), (20, 10, 1), (30, 30, 2)):
        tripped = manipulated(T0 + now, T0 + data_at)
        assert (tripped.status, tripped.price) == (PriceStatus.TRIPPED, D("2000"))
        assert tripped.pending is not None
        assert tripped.pending.confirmations == confirmations

    agg = restarted(agg, "ETH", ETH)
    again = manipulated(T0 + 40, T0 + 30)  # the data has not changed since
    assert (again.status, again.price) == (PriceStatus.TRIPPED, D("2000"))
    assert again.pending is not None
    assert again.pending.confirmations == 2
    assert again.volatility == tripped.volatility
    # The third fresh confirmation accepts the move, as it would have without the restart.
    confirmed = manipulated(T0 + 50, T0 + 50)
    assert (confirmed.status, confirmed.price) == (PriceStatus.OK, D("3200"))


def test_the_state_document_round_trips_exactly() -> None:
    state = AggregatorState(
        last_good=AcceptedPrice(
            price=D("3000.123456789012345678901234567890"),
            price_low=D("3.0E+3"),
            price_high=D("3000.5000"),
            observed_at=1_700_000_000.123456,
            accepted_at=0.1 + 0.2,
        ),
        pending=PendingJump(
            direction=-1,
            price=D("1E-18"),
            confirmations=2,
            evidence_at=1e16,
            first_seen_at=5e-324,
        ),
        volatility=VolatilityState(variance_per_s=float("inf"), last_price=1e308, last_at=None),
        status=PriceStatus.TRIPPED,
    )
    back = through_json(state)
    assert back == state
    assert back.last_good is not None
    assert str(back.last_good.price_low) == "3.0E+3"
    json.dumps(state_to_json(state), allow_nan=False)  # valid JSON for jsonb, too
    assert through_json(AggregatorState()) == AggregatorState()


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"version": 2}, "unknown state version 2"),
        ([], "expected an object"),
        ({"version": 1, "status": "MELTED"}, "unknown status"),
        ({"version": 1, "last_good": {"price": "1"}}, "missing field 'price_low'"),
        (
            {"version": 1, "last_good": {"price": 2000, "price_low": "1", "price_high": "1"}},
            "expected a decimal string",
        ),
        ({"version": 1, "last_good": {**dict.fromkeys(("price", "price_low"), "NaN")}}, "finite"),
        (
            {
                "version": 1,
                "pending": {
                    "direction": 0,
                    "price": "1",
                    "confirmations": 1,
                    "evidence_at": 1,
                    "first_seen_at": 1,
                },
            },
            "out of range",
        ),
        ({"version": 1, "volatility": {"variance_per_s": "lots"}}, "expected a number"),
    ],
)
def test_an_unknown_document_is_one_clear_error(document: object, problem: str) -> None:
    with pytest.raises(OracleStateInvalid, match=problem):
        state_from_json(document)


# --- the property ----------------------------------------------------------------------------

LEVEL_BP = st.integers(min_value=-6_000, max_value=6_000)  # a level move, in basis points
NEAR_BP = st.integers(min_value=-80, max_value=80)  # a source around the level


@st.composite
def params(draw: st.DrawFn) -> OracleParams:
    return OracleParams(
        min_sources=draw(st.integers(min_value=1, max_value=3)),
        max_deviation=0.02,
        max_jump=draw(st.sampled_from([0.1, 0.2, 0.5])),
        confirm_rounds=draw(st.integers(min_value=1, max_value=4)),
        volatility_floor=draw(st.sampled_from([0.0, 0.5])),
        anchor_tolerance=0.1,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[float, list[SourceQuote]]]:
    """Rounds (time, quotes): levels moving by up to ±60 %, sources near them or far off,
    failed reads, confidences, an anchor, and data that stops changing (a source repeating
    its timestamp: not a new confirmation)."""
    level = draw(st.decimals(min_value=D("0.01"), max_value=D("1e6"), places=4))
    now = T0
    seen: dict[str, float] = {}
    rounds = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        level = level * (1 + D(draw(LEVEL_BP)) / 10_000)
        for _ in range(draw(st.integers(min_value=1, max_value=5))):
            now += draw(st.sampled_from([0.0, 1.0, 5.0, 10.0, 10.0, 30.0, 3_600.0]))
            quotes = []
            for i in range(draw(st.integers(min_value=0, max_value=4))):
                sid = f"s{i}"
                if draw(st.integers(0, 9)) == 0:
                    quotes.append(SourceQuote.failed(sid, SourceKind.HTTP, DropReason.FETCH_FAILED))
                    continue
                spread = draw(st.one_of(NEAR_BP, NEAR_BP, NEAR_BP, LEVEL_BP))
                price = level * (1 + D(spread) / 10_000)
                repeat = sid in seen and draw(st.integers(0, 2)) == 0
                at = seen[sid] if repeat else now
                seen[sid] = at
                conf = draw(st.sampled_from([None, None, D("0.001"), D("0.01")]))
                quotes.append(
                    quote(sid, price, at, confidence=None if conf is None else conf * price)
                )
            if draw(st.booleans()):
                anchor = level * (1 + D(draw(NEAR_BP)) / 1_000)
                quotes.append(quote("twap", anchor, now, kind=SourceKind.UNISWAP_V3_TWAP))
            rounds.append((now, quotes))
    return rounds


def straight(p: OracleParams, rounds: list[tuple[float, list[SourceQuote]]]) -> list[AssetPrice]:
    agg = AssetAggregator(symbol="ETH", params=p)
    return [agg.round(quotes, now) for now, quotes in rounds]


# no shrinking: a failing example is reported as drawn (its inputs are named), and a
# mutant (`make mutate`) must not keep a run shrinking for minutes
@settings(deadline=None, max_examples=300, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(p=params(), rounds=scenarios(), data=st.data())
def test_restarting_between_any_two_rounds_changes_nothing(
    p: OracleParams, rounds: list[tuple[float, list[SourceQuote]]], data: st.DataObject
) -> None:
    expected = straight(p, rounds)
    restarts = data.draw(st.lists(st.booleans(), min_size=len(rounds), max_size=len(rounds)))
    agg = AssetAggregator(symbol="ETH", params=p)
    got = []
    for (now, quotes), restart in zip(rounds, restarts, strict=True):
        if restart:
            agg = restarted(agg, "ETH", p)
        got.append(agg.round(quotes, now))
    for result in expected:
        event(f"status {result.status}")
        if result.pending is not None and result.pending.confirmations > 1:
            event("a jump with more than one confirmation was pending")
    # Whole rounds: price, status, band, pending jump, volatility and the state itself.
    assert got == expected
    assert [r.price for r in got] == [r.price for r in expected]
    assert [r.status for r in got] == [r.status for r in expected]
