"""Aggregation of one asset's sources: table tests per rule, then hypothesis properties.

Everything here is pure: quotes are built by hand, time is a number, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from core.domain import PriceStatus
from oracles.aggregate import AssetAggregator
from oracles.model import (
    AcceptedPrice,
    AggregatorState,
    AssetPrice,
    DropReason,
    HoldReason,
    OracleParams,
    SourceKind,
    SourceQuote,
    exact_median,
)

T0 = 1_700_000_000.0
ROUND_S = 10.0  # seconds between rounds in these tests
MAX_AGE_S = 60.0
ETH = OracleParams(
    min_sources=2, max_deviation=0.02, max_jump=0.2, confirm_rounds=3, volatility_floor=0.5
)
# no shrinking: a failing example is reported as drawn (its inputs are named), and a
# mutant (`make mutate`) must not keep a run shrinking for minutes
PROPERTY_SETTINGS = settings(
    deadline=None, max_examples=150, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)

D = Decimal


def quote(
    source_id: str,
    price: str | Decimal,
    *,
    at: float = T0,
    kind: SourceKind = SourceKind.HTTP,
    conf: str | None = None,
) -> SourceQuote:
    return SourceQuote(
        source_id=source_id,
        kind=kind,
        price=D(price),
        observed_at=at,
        max_age_s=MAX_AGE_S,
        confidence=None if conf is None else D(conf),
    )


def quotes(prices: Sequence[str | Decimal], at: float) -> list[SourceQuote]:
    """Sources s0, s1, … quoting ``prices``, all observed at ``at``."""
    return [quote(f"s{i}", p, at=at) for i, p in enumerate(prices)]


class Rounds:
    """Drives an aggregator one round every ROUND_S seconds with fresh source timestamps."""

    def __init__(self, params: OracleParams = ETH, **kwargs: object) -> None:
        self.agg = AssetAggregator(symbol="ETH", params=params, **kwargs)  # type: ignore[arg-type]
        self.now = T0

    def run(
        self, prices: Sequence[str | Decimal], *, extra: Sequence[SourceQuote] = ()
    ) -> AssetPrice:
        self.now += ROUND_S
        return self.agg.round([*quotes(prices, self.now), *extra], self.now)


def assert_partition(result: AssetPrice, source_ids: set[str]) -> None:
    """Every quote of the round appears exactly once in used, anchors or dropped."""
    parts = [*result.used, *result.anchors, *result.dropped]
    assert sorted(parts) == sorted(source_ids)


# --- agreement -------------------------------------------------------------------------------


def test_three_agreeing_sources_give_ok_at_the_median() -> None:
    result = Rounds().run(["100", "101", "100.5"])
    assert result.status is PriceStatus.OK
    assert result.price == D("100.5")
    assert result.used == ("s0", "s1", "s2")
    assert result.dropped == {}
    assert result.held is False
    assert result.spread == pytest.approx(0.01)
    assert result.observed_at == T0 + ROUND_S
    assert result.price_low == result.price_high == result.price


def test_even_count_median_is_the_exact_mean_of_the_middle_two() -> None:
    result = Rounds().run(["3000.00000001", "3000.00000002", "3000.00000004", "3000.00000005"])
    assert result.price == D("3000.00000003")


@pytest.mark.parametrize("manipulated", ["150", "50", "100000000", "0.000001"])
def test_one_manipulated_source_is_dropped_and_the_price_does_not_move(manipulated: str) -> None:
    rounds = Rounds()
    before = rounds.run(["100", "100.5", "101", "100.5"])
    after = rounds.run(["100", "100.5", "101", manipulated])
    assert after.status is PriceStatus.OK
    assert after.dropped == {"s3": DropReason.OUTLIER}
    assert after.price == before.price == D("100.5")


@pytest.mark.parametrize(
    ("prices", "status", "price"),
    [
        (["100", "101.9"], PriceStatus.OK, D("100.95")),  # 1.9 % apart: the mean
        (["100", "102"], PriceStatus.OK, D("101")),  # exactly 2 %: still agree
        (["100", "102.01"], PriceStatus.DEGRADED, None),  # just over
        (["100", "130"], PriceStatus.DEGRADED, None),
    ],
)
def test_exactly_two_sources_must_agree_within_max_deviation(
    prices: list[str], status: PriceStatus, price: Decimal | None
) -> None:
    result = Rounds().run(prices)
    assert result.status is status
    assert result.price == price
    if status is PriceStatus.DEGRADED:
        assert result.hold_reason is HoldReason.SOURCES_DISAGREE
        assert result.dropped == {"s0": DropReason.DISAGREE, "s1": DropReason.DISAGREE}
        assert result.used == ()


def test_two_survivors_of_an_outlier_drop_must_also_agree() -> None:
    # median 102: 100 and 104 are each within 2 % of it but 4 % apart from each other.
    result = Rounds().run(["100", "104", "300", "1"])
    assert result.status is PriceStatus.DEGRADED
    assert result.dropped == {
        "s0": DropReason.DISAGREE,
        "s1": DropReason.DISAGREE,
        "s2": DropReason.OUTLIER,
        "s3": DropReason.OUTLIER,
    }


def test_min_sources_quorum_is_counted_after_the_outlier_drop() -> None:
    params = OracleParams(min_sources=3, max_deviation=0.02)
    rounds = Rounds(params)
    assert rounds.run(["100", "100", "100"]).status is PriceStatus.OK
    result = rounds.run(["100", "100", "150"])
    assert result.status is PriceStatus.DEGRADED
    assert result.hold_reason is HoldReason.NO_QUORUM
    assert result.dropped == {
        "s0": DropReason.NO_QUORUM,
        "s1": DropReason.NO_QUORUM,
        "s2": DropReason.OUTLIER,
    }
    assert result.round_price == D("100")
    assert result.price == D("100")
    assert result.held is True


# --- validity inside a round -----------------------------------------------------------------


def test_two_of_three_stale_holds_the_last_price_then_all_stale_is_stale() -> None:
    rounds = Rounds()
    first = rounds.run(["100", "100", "100"])
    now = rounds.now + ROUND_S
    old = now - MAX_AGE_S - 1
    stale_pair = [quote("s0", "90", at=old), quote("s1", "90", at=old), quote("s2", "101", at=now)]
    result = rounds.agg.round(stale_pair, now)
    assert result.status is PriceStatus.DEGRADED
    assert result.hold_reason is HoldReason.NO_QUORUM
    assert result.price == D("100")
    assert result.held is True
    assert result.observed_at == first.observed_at
    assert result.dropped == {
        "s0": DropReason.STALE,
        "s1": DropReason.STALE,
        "s2": DropReason.NO_QUORUM,
    }
    all_stale = rounds.agg.round([quote(f"s{i}", "100", at=old) for i in range(3)], now + 1)
    assert all_stale.status is PriceStatus.STALE
    assert all_stale.hold_reason is HoldReason.NO_VALID_SOURCE
    assert all_stale.price == D("100")


def test_without_any_good_round_the_price_is_none() -> None:
    failed = SourceQuote.failed("s0", SourceKind.CHAINLINK, DropReason.REVERTED)
    result = AssetAggregator(symbol="ETH", params=ETH).round([failed], T0)
    assert result.status is PriceStatus.STALE
    assert result.price is None
    assert result.held is False
    assert result.dropped == {"s0": DropReason.REVERTED}
    assert AssetAggregator(symbol="ETH", params=ETH).round([], T0).status is PriceStatus.STALE


def test_bounds_drop_a_source_outside_min_and_max_price() -> None:
    params = OracleParams(min_price=D("10"), max_price=D("100000"))
    result = Rounds(params).run(["3000", "3001", "9.99", "100000.01", "10", "100000"])
    assert result.dropped["s2"] is DropReason.OUT_OF_BOUNDS
    assert result.dropped["s3"] is DropReason.OUT_OF_BOUNDS
    # 10 and 100000 are in bounds (inclusive) but far from the median: outliers.
    assert result.dropped["s4"] is DropReason.OUTLIER
    assert result.dropped["s5"] is DropReason.OUTLIER
    assert result.price == D("3000.5")


def test_duplicate_source_ids_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="quoted twice"):
        AssetAggregator(symbol="ETH", params=ETH).round([quote("a", "1"), quote("a", "1")], T0)


# --- confidence bands ------------------------------------------------------------------------


def test_confidence_band_values_collateral_low_and_debt_high() -> None:
    pyth = SourceQuote.pyth(
        "pyth",
        price=300_000_000_000,
        conf=1_500_000_000,
        expo=-8,
        publish_time=int(T0),
        max_age_s=MAX_AGE_S,
    )  # 3000 ± 15 (0.5 %)
    agg = AssetAggregator(symbol="ETH", params=ETH)
    result = agg.round([pyth, quote("cex", "3000"), quote("feed", "3010")], T0)
    assert result.price == D("3000")
    assert result.price_low == D("2985")
    assert result.price_high == D("3015")


def test_confidence_band_is_rounded_outward() -> None:
    # median 3.01, widest conf/price = 0.01/3: half-width 0.010033… does not terminate.
    result = Rounds().run(["3.02"], extra=[quote("p", "3", conf="0.01")])
    assert result.price == D("3.01")
    assert result.price_low is not None
    assert result.price_high is not None
    exact_width = Fraction("3.01") * Fraction("0.01") / 3
    low, high = Fraction(result.price_low), Fraction(result.price_high)
    assert low < Fraction("3.01") - exact_width < low + Fraction(1, 10**35)
    assert high > Fraction("3.01") + exact_width > high - Fraction(1, 10**35)


def test_too_wide_confidence_drops_the_source_and_bands_can_be_turned_off() -> None:
    wide = quote("p", "3000", conf="61")  # 2.03 % > max_confidence_ratio 2 %
    result = Rounds().run(["3000", "3000"], extra=[wide])
    assert result.dropped == {"p": DropReason.CONFIDENCE_TOO_WIDE}
    no_bands = OracleParams(confidence_bands=False)
    result = Rounds(no_bands).run(["3000"], extra=[quote("p", "3000", conf="15")])
    assert result.price_low == result.price_high == D("3000")


# --- TWAP anchor -----------------------------------------------------------------------------


def anchor(price: str, at: float) -> SourceQuote:
    return quote("twap", price, at=at, kind=SourceKind.UNISWAP_V3_TWAP)


def test_anchor_within_tolerance_lets_the_price_through_and_never_sets_it() -> None:
    rounds = Rounds()
    result = rounds.run(["100", "101"], extra=[anchor("95", rounds.now + ROUND_S)])
    assert result.status is PriceStatus.OK
    assert result.price == D("100.5")
    assert result.anchors == ("twap",)
    alone = rounds.agg.round([anchor("50", rounds.now)], rounds.now + 1)
    assert alone.status is PriceStatus.STALE  # an anchor alone is no price
    assert alone.price == D("100.5")


def test_anchor_vetoes_a_price_outside_its_tolerance() -> None:
    rounds = Rounds()
    rounds.run(["100", "100"])
    result = rounds.run(["111", "111"], extra=[anchor("100", rounds.now + ROUND_S)])
    assert result.status is PriceStatus.DEGRADED
    assert result.hold_reason is HoldReason.ANCHOR_VETO
    assert result.price == D("100")
    assert result.round_price == D("111")
    assert result.dropped == {"s0": DropReason.ANCHOR_VETO, "s1": DropReason.ANCHOR_VETO}
    assert result.anchors == ("twap",)


def test_a_stale_anchor_cannot_veto() -> None:
    rounds = Rounds()
    rounds.run(["100", "100"])
    result = rounds.run(["111", "111"], extra=[anchor("100", T0 - 3600)])
    assert result.status is PriceStatus.OK
    assert result.dropped == {"twap": DropReason.STALE}


# --- jump breaker ----------------------------------------------------------------------------


def test_a_real_crash_passes_after_exactly_confirm_rounds_rounds() -> None:
    rounds = Rounds()
    assert rounds.run(["100", "100", "100"]).price == D("100")
    first = rounds.run(["70", "70.1", "69.9"])
    second = rounds.run(["70", "70.1", "69.9"])
    third = rounds.run(["70", "70.1", "69.9"])
    for held in (first, second):
        assert held.status is PriceStatus.TRIPPED
        assert held.hold_reason is HoldReason.JUMP_PENDING
        assert held.price == D("100")
        assert held.round_price == D("70")
        assert set(held.dropped.values()) == {DropReason.JUMP_UNCONFIRMED}
    assert first.pending is not None
    assert first.pending.confirmations == 1
    assert second.pending is not None
    assert second.pending.confirmations == 2
    assert third.status is PriceStatus.OK
    assert third.price == D("70")
    assert third.pending is None


def test_a_crash_that_keeps_falling_while_confirmed_passes_at_its_latest_level() -> None:
    rounds = Rounds()
    rounds.run(["100", "100", "100"])
    statuses = [rounds.run([p, p, p]).status for p in ("78", "74")]
    final = rounds.run(["71", "71", "71"])
    assert statuses == [PriceStatus.TRIPPED, PriceStatus.TRIPPED]
    assert final.status is PriceStatus.OK
    assert final.price == D("71")


def test_a_gradual_crash_within_max_jump_per_round_is_followed_round_by_round() -> None:
    rounds = Rounds()
    rounds.run(["100", "100"])
    for level in ("90", "81", "73", "66", "60"):  # −40 % in all, < 20 % per round
        result = rounds.run([level, level])
        assert result.status is PriceStatus.OK
        assert result.price == D(level)


def test_a_crash_that_starts_inside_max_jump_and_then_gaps() -> None:
    rounds = Rounds()
    rounds.run(["100", "100"])
    assert rounds.run(["85", "85"]).status is PriceStatus.OK  # −15 %: accepted at once
    gap = [rounds.run([p, p]) for p in ("65", "60", "58")]  # > 20 % below 85
    assert [r.status for r in gap] == [PriceStatus.TRIPPED, PriceStatus.TRIPPED, PriceStatus.OK]
    assert gap[-1].price == D("58")


def test_repeating_old_data_does_not_confirm_a_jump() -> None:
    agg = AssetAggregator(symbol="ETH", params=ETH)
    agg.round(quotes(["100", "100"], T0), T0)
    same = quotes(["70", "70"], T0 + 5)
    results = [agg.round(same, T0 + 10 + i) for i in range(10)]
    assert all(r.status is PriceStatus.TRIPPED for r in results)
    assert results[-1].pending is not None
    assert results[-1].pending.confirmations == 1


@pytest.mark.parametrize(
    ("interruption", "reason"),
    [
        (["130", "130"], "the other direction"),
        (["100", "130"], "no quorum"),
        (["100", "100"], "back to normal"),
    ],
)
def test_an_interrupted_jump_starts_counting_again(interruption: list[str], reason: str) -> None:
    rounds = Rounds()
    rounds.run(["100", "100"])
    rounds.run(["70", "70"])
    rounds.run(["70", "70"])
    rounds.run(interruption)
    after = [rounds.run(["70", "70"]) for _ in range(3)]
    assert [r.status for r in after] == [
        PriceStatus.TRIPPED,
        PriceStatus.TRIPPED,
        PriceStatus.OK,
    ], reason


def test_a_single_source_spike_never_passes() -> None:
    three, two = Rounds(), Rounds()
    three.run(["100", "100", "100"])
    two.run(["100", "100"])
    for _ in range(20):
        with_three = three.run(["100", "100", "50"])
        assert (with_three.status, with_three.price) == (PriceStatus.OK, D("100"))
        with_two = two.run(["100", "50"])
        assert (with_two.status, with_two.price) == (PriceStatus.DEGRADED, D("100"))


def test_recovery_needs_no_restart() -> None:
    rounds = Rounds()
    rounds.run(["100", "100", "100"])
    assert rounds.run(["100", "130", "70"]).status is PriceStatus.DEGRADED
    assert rounds.run([]).status is PriceStatus.STALE
    recovered = rounds.run(["101", "101", "101"])
    assert (recovered.status, recovered.price, recovered.held) == (PriceStatus.OK, D("101"), False)


def test_restored_last_good_price_arms_the_jump_breaker() -> None:
    last = AcceptedPrice(
        price=D("100"), price_low=D("100"), price_high=D("100"), observed_at=T0, accepted_at=T0
    )
    rounds = Rounds(state=AggregatorState(last_good=last))
    held = rounds.run(["50", "50"])
    assert held.status is PriceStatus.TRIPPED
    assert held.price == D("100")
    assert held.observed_at == T0


def test_confirm_rounds_one_disables_the_breaker() -> None:
    rounds = Rounds(OracleParams(confirm_rounds=1))
    rounds.run(["100", "100"])
    assert rounds.run(["50", "50"]).price == D("50")


def test_a_crash_raises_volatility_above_the_floor() -> None:
    rounds = Rounds()
    calm = [rounds.run(["100", "100"]).volatility for _ in range(5)]
    assert calm == [0.5] * 5
    for _ in range(3):
        crashed = rounds.run(["60", "60"])
    assert crashed.status is PriceStatus.OK
    assert crashed.volatility > 1.0


# --- properties ------------------------------------------------------------------------------

PRICES = st.decimals(min_value=D("0.0001"), max_value=D("1e9"), places=4)
BASES = st.decimals(min_value=D("0.01"), max_value=D("1e9"), places=4)
FACTOR_BP = st.integers(min_value=-5_000, max_value=5_000)  # ± 50 % in basis points


def scaled(base: Decimal, bp: int) -> Decimal:
    return base * (1 + D(bp) / 10_000)


@st.composite
def round_prices(draw: st.DrawFn, base: Decimal) -> list[Decimal | None]:
    """1–6 sources near ``base`` (some far off); ``None`` is a failed read."""
    near = st.integers(min_value=-150, max_value=150)
    spread = st.one_of(near, near, FACTOR_BP)
    count = draw(st.integers(min_value=0, max_value=6))
    return [
        None if draw(st.integers(0, 9)) == 0 else scaled(base, draw(spread)) for _ in range(count)
    ]


def run_round(agg: AssetAggregator, prices: Sequence[Decimal | None], now: float) -> AssetPrice:
    round_quotes = [
        SourceQuote.failed(f"s{i}", SourceKind.HTTP, DropReason.FETCH_FAILED)
        if p is None
        else quote(f"s{i}", p, at=now)
        for i, p in enumerate(prices)
    ]
    result = agg.round(round_quotes, now)
    assert_partition(result, {q.source_id for q in round_quotes})
    return result


@st.composite
def scenarios(draw: st.DrawFn) -> list[list[Decimal | None]]:
    """Rounds whose level moves in steps of up to ±60 %, each level held for 1–4 rounds."""
    level = draw(BASES)
    rounds: list[list[Decimal | None]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        level = scaled(level, draw(st.integers(min_value=-6_000, max_value=6_000)))
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            rounds.append(draw(round_prices(level)))
    return rounds


@PROPERTY_SETTINGS
@given(scenarios())
def test_ok_price_is_the_exact_median_of_the_used_sources(
    scenario: list[list[Decimal | None]],
) -> None:
    agg = AssetAggregator(symbol="ETH", params=ETH)
    accepted: Decimal | None = None
    for i, prices in enumerate(scenario):
        result = run_round(agg, prices, T0 + ROUND_S * i)
        assert result.volatility >= ETH.volatility_floor
        event(f"status {result.status}")
        if result.status is PriceStatus.OK:
            used = [prices[int(s[1:])] for s in result.used]
            used_prices = [p for p in used if p is not None]
            assert len(used_prices) >= ETH.min_sources
            assert result.price == exact_median(used_prices)
            assert min(used_prices) <= result.price <= max(used_prices)
            accepted = result.price
        else:
            assert result.price == accepted  # the last good price is held, unchanged


@PROPERTY_SETTINGS
@given(
    base=BASES,
    honest_bp=st.lists(st.integers(min_value=-66, max_value=66), min_size=2, max_size=6),
    outlier=PRICES,
    position=st.integers(min_value=0, max_value=6),
)
def test_one_outlier_never_moves_the_price_by_more_than_max_deviation(
    base: Decimal, honest_bp: list[int], outlier: Decimal, position: int
) -> None:
    # Honest sources within ±max_deviation/3 of one level all agree with each other.
    honest = [scaled(base, bp) for bp in honest_bp]
    with_outlier = list(honest)
    with_outlier.insert(position % (len(honest) + 1), outlier)
    clean = run_round(AssetAggregator(symbol="ETH", params=ETH), honest, T0)
    dirty = run_round(AssetAggregator(symbol="ETH", params=ETH), with_outlier, T0)
    assert clean.status is PriceStatus.OK
    assert dirty.status is PriceStatus.OK
    assert clean.price is not None
    assert dirty.price is not None
    assert abs(dirty.price - clean.price) <= D(repr(ETH.max_deviation)) * clean.price
    assert min(honest) <= dirty.price <= max(honest)


@PROPERTY_SETTINGS
@given(scenarios(), st.integers(min_value=1, max_value=4))
def test_a_jump_never_passes_in_fewer_than_confirm_rounds_rounds(
    scenario: list[list[Decimal | None]], confirm_rounds: int
) -> None:
    params = OracleParams(max_deviation=0.02, max_jump=0.2, confirm_rounds=confirm_rounds)
    agg = AssetAggregator(symbol="ETH", params=params)
    history: list[AssetPrice] = []
    accepted: Decimal | None = None
    for i, prices in enumerate(scenario):
        result = run_round(agg, prices, T0 + ROUND_S * i)
        if result.status is PriceStatus.OK and accepted is not None:
            assert result.price is not None
            if abs(result.price - accepted) > D("0.2") * accepted:
                before = (
                    history[len(history) - (confirm_rounds - 1) :] if confirm_rounds > 1 else []
                )
                assert len(before) == confirm_rounds - 1
                assert all(r.status is PriceStatus.TRIPPED for r in before)
                event("a jump was accepted")
        if result.status is PriceStatus.OK:
            accepted = result.price
        history.append(result)


@PROPERTY_SETTINGS
@given(
    honest=BASES,
    spikes=st.lists(PRICES, min_size=1, max_size=20),
    sources=st.integers(min_value=2, max_value=5),
)
def test_a_single_source_never_moves_the_price(
    honest: Decimal, spikes: list[Decimal], sources: int
) -> None:
    agg = AssetAggregator(symbol="ETH", params=ETH)
    assert run_round(agg, [honest] * sources, T0).price == honest
    for i, spike in enumerate(spikes, start=1):
        result = run_round(agg, [*[honest] * (sources - 1), spike], T0 + ROUND_S * i)
        assert result.price is not None
        if sources >= 3:
            assert result.price == honest  # the median of ≥ 2 equal honest values and one more
        else:  # a pair within max_deviation averages; otherwise it disagrees and holds
            assert abs(result.price - honest) <= D(repr(ETH.max_deviation)) / 2 * honest
