"""The jump breaker's and the anchor's edges, exactly on the bound and in the direction of a
move (added for mutants of ``oracles.aggregate`` that survived ``make mutate``; see
bench/RESULTS.md, mutation section). Pure: quotes by hand, time a number."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from core.domain import PriceStatus
from oracles.aggregate import AssetAggregator
from oracles.model import AggregatorState, DropReason, HoldReason, OracleParams
from tests.oracles.test_aggregate import ROUND_S, T0, Rounds, anchor, quotes

D = Decimal
# max_jump 20 %, anchor tolerance 5 %, three confirmations (the counts below are visible)
PARAMS = OracleParams(min_sources=2, max_deviation=0.02, max_jump=0.2, confirm_rounds=3,
                      anchor_tolerance=0.05)  # fmt: skip


def test_a_move_of_exactly_max_jump_is_accepted_at_once() -> None:
    rounds = Rounds(PARAMS)
    rounds.run(["100", "100"])
    up = rounds.run(["120", "120"])  # +20 % exactly: not beyond max_jump
    assert (up.status, up.price, up.pending) == (PriceStatus.OK, D("120"), None)
    down = rounds.run(["96", "96"])  # −20 % of 120 exactly
    assert (down.status, down.price, down.pending) == (PriceStatus.OK, D("96"), None)
    beyond = rounds.run(["76.79", "76.79"])  # a cent past −20 % of 96 (76.80)
    assert (beyond.status, beyond.hold_reason) == (PriceStatus.TRIPPED, HoldReason.JUMP_PENDING)


def test_a_price_exactly_at_the_anchor_tolerance_is_not_vetoed() -> None:
    rounds = Rounds(PARAMS)
    rounds.run(["100", "100"])
    at_edge = rounds.run(["105", "105"], extra=[anchor("100", rounds.now + ROUND_S)])
    assert (at_edge.status, at_edge.price) == (PriceStatus.OK, D("105"))
    past = rounds.run(["94.99", "94.99"], extra=[anchor("100", rounds.now + ROUND_S)])
    assert past.hold_reason is HoldReason.ANCHOR_VETO


def test_a_jump_the_other_way_starts_a_new_count_in_its_own_direction() -> None:
    rounds = Rounds(PARAMS)
    rounds.run(["100", "100"])
    down = [rounds.run([p, p]) for p in ("70", "68")]
    assert [(r.pending.direction, r.pending.confirmations) for r in down if r.pending] == [
        (-1, 1),
        (-1, 2),
    ]
    assert [r.pending.price for r in down if r.pending] == [D("70"), D("68")]  # the latest
    # when the jump was first seen: the round time of its first round, kept while it confirms
    assert [r.pending.first_seen_at for r in down if r.pending] == [T0 + 2 * ROUND_S] * 2
    up = rounds.run(["130", "130"])  # not a third confirmation of the fall: a new jump up
    assert up.status is PriceStatus.TRIPPED
    assert up.pending is not None
    assert (up.pending.direction, up.pending.confirmations) == (1, 1)
    assert up.price == D("100")


def test_the_direction_of_a_move_smaller_than_one_unit_of_price() -> None:
    # an asset around 0.50 USD: its jumps are fractions of a dollar, up is still up
    rounds = Rounds(PARAMS)
    rounds.run(["0.50", "0.50"])
    up = rounds.run(["0.65", "0.65"])
    assert up.pending is not None
    assert (up.pending.direction, up.pending.confirmations) == (1, 1)
    down = rounds.run(["0.35", "0.35"])
    assert down.pending is not None
    assert (down.pending.direction, down.pending.confirmations) == (-1, 1)


def test_a_source_exactly_max_deviation_from_the_median_is_not_an_outlier() -> None:
    rounds = Rounds(PARAMS)
    result = rounds.run(["100", "100", "102"])  # 102 is 2 % above the median: kept
    assert (result.status, result.price, result.dropped) == (PriceStatus.OK, D("100"), {})
    assert result.used == ("s0", "s1", "s2")
    beyond = rounds.run(["100", "100", "102.01"])
    assert beyond.dropped == {"s2": DropReason.OUTLIER}


def test_old_data_at_a_new_level_moves_the_pending_price_without_confirming() -> None:
    agg = AssetAggregator(symbol="ETH", params=PARAMS)
    agg.round(quotes(["100", "100"], T0), T0)
    first = agg.round(quotes(["70", "70"], T0 + 5), T0 + 10)
    again = agg.round(quotes(["69", "69"], T0 + 5), T0 + 20)  # same timestamps: old data
    assert first.pending is not None
    assert again.pending is not None
    assert (again.pending.price, again.pending.confirmations) == (D("69"), 1)


def test_the_symbol_and_a_resumed_status_are_kept() -> None:
    state = AggregatorState(status=PriceStatus.TRIPPED)
    agg = AssetAggregator(symbol="ETH", params=PARAMS, state=state)
    assert agg.state.status is PriceStatus.TRIPPED  # before any round: as persisted
    assert agg.round(quotes(["100", "100"], T0), T0).symbol == "ETH"


def test_accepted_prices_feed_the_volatility_with_the_configured_lambda_and_interval() -> None:
    params = OracleParams(min_sources=2, ewma_lambda=0.5, ewma_interval_s=60.0,
                          volatility_floor=0.0)  # fmt: skip
    agg = AssetAggregator(symbol="ETH", params=params)
    # the same recursion by hand: v1 = r1²/dt; v2 = w·v1 + (1 − w)·r2²/dt, w = 0.5 ** (10/60)
    r1, r2, dt = math.log(101 / 100), math.log(99 / 101), 10.0
    w = 0.5 ** (dt / 60.0)
    v2 = w * r1 * r1 / dt + (1 - w) * r2 * r2 / dt
    for i, p in enumerate(("100", "101", "99")):
        result = agg.round(quotes([p, p], T0 + 10 * i), T0 + 10 * i)
    assert result.volatility == pytest.approx(math.sqrt(v2 * 31_536_000), rel=1e-12)


def test_each_round_carries_its_time_and_the_state_to_resume_from() -> None:
    # an aggregator resumed from the second round's ``resume`` takes the third round as the
    # one that never stopped: the same volatility recursion by hand as above
    params = OracleParams(min_sources=2, ewma_lambda=0.5, ewma_interval_s=60.0,
                          volatility_floor=0.0)  # fmt: skip
    agg = AssetAggregator(symbol="ETH", params=params)
    agg.round(quotes(["100", "100"], T0), T0)
    second = agg.round(quotes(["101", "101"], T0 + 10), T0 + 10)
    assert second.round_at == T0 + 10
    assert second.resume == agg.state
    assert second.resume is not None
    assert second.resume.last_good is not None
    assert second.resume.last_good.price == D("101")
    resumed = AssetAggregator(symbol="ETH", params=params, state=second.resume)
    third = resumed.round(quotes(["99", "99"], T0 + 20), T0 + 20)
    r1, r2, dt = math.log(101 / 100), math.log(99 / 101), 10.0
    w = 0.5 ** (dt / 60.0)
    v2 = w * r1 * r1 / dt + (1 - w) * r2 * r2 / dt
    assert third.volatility == pytest.approx(math.sqrt(v2 * 31_536_000), rel=1e-12)
