"""EWMA correlation at its edges: the sums step by step, bounds' edges, resumed half-states and
the refusals' messages (issue 15: the survivors of the correlation mutation run)."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import pytest

from oracles.correlation import CorrelationEstimator, EwmaCorrelation, PairSpec, PairState

T0 = 1_700_000_000.0
ETH_BTC = PairSpec(groups=("ETH", "BTC"), assets=("ETH", "BTC"), static=0.8)


def test_the_sums_follow_the_time_decayed_recursion_over_irregular_steps() -> None:
    # λ = 1/2 per 10 s: a 10 s step keeps 1/2 of the sums, a 20 s step 1/4 (exact in binary)
    pair = EwmaCorrelation(assets=("ETH", "BTC"), lambda_=0.5, interval_s=10, max_step_s=1_000)
    pair.update(100.0, 50.0, T0)
    pair.update(110.0, 45.0, T0 + 10)
    pair.update(99.0, 54.0, T0 + 30)
    ra = (math.log(110 / 100), math.log(99 / 110))
    rb = (math.log(45 / 50), math.log(54 / 45))
    keep, dts = (0.5, 0.25), (10.0, 20.0)
    var_a = var_b = cov = 0.0
    for k, dt, x, y in zip(keep, dts, ra, rb, strict=True):
        var_a = k * var_a + (1 - k) * x * x / dt
        var_b = k * var_b + (1 - k) * y * y / dt
        cov = k * cov + (1 - k) * x * y / dt
    weight = Fraction(1, 4) * Fraction(1, 2) + Fraction(3, 4)  # W₁ = Σ w
    weight_sq = Fraction(1, 16) * Fraction(1, 4) + Fraction(9, 16)  # W₂ = Σ w²
    s = pair.state
    assert (s.last_prices, s.last_at) == ((99.0, 54.0), T0 + 30)
    assert s.var_a == pytest.approx(var_a, rel=1e-12)
    assert s.var_b == pytest.approx(var_b, rel=1e-12)
    assert s.cov == pytest.approx(cov, rel=1e-12)
    assert s.weight == pytest.approx(float(weight), rel=1e-12)
    assert s.weight_sq == pytest.approx(float(weight_sq), rel=1e-12)
    assert pair.returns == pytest.approx(float(weight * weight / weight_sq), rel=1e-12)


def test_without_a_sampling_step_rounds_under_a_second_apart_count() -> None:
    pair = EwmaCorrelation(assets=("ETH", "BTC"))  # sample_s defaults to 0
    pair.update(100.0, 50.0, T0)
    pair.update(101.0, 50.5, T0 + 0.5)
    pair.update(100.0, 50.0, T0 + 1.0)
    assert pair.state.last_at == T0 + 1.0
    assert pair.returns == pytest.approx(2.0, rel=1e-6)
    assert pair.correlation == pytest.approx(1.0)


def test_a_return_over_exactly_the_longest_step_counts() -> None:
    pair = EwmaCorrelation(assets=("ETH", "BTC"), max_step_s=100)
    pair.update(100.0, 50.0, T0)
    pair.update(101.0, 49.0, T0 + 100)
    new = 1 - 0.94 ** (100 / 86_400)
    assert pair.state.weight == pytest.approx(new, rel=1e-9)
    assert pair.state.cov == pytest.approx(new * math.log(1.01) * math.log(0.98) / 100, rel=1e-9)
    assert pair.correlation == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "resumed",
    [
        PairState(assets=("ETH", "BTC"), last_prices=(100.0, 50.0), last_at=None),
        PairState(assets=("ETH", "BTC"), last_prices=None, last_at=T0 - 60),
    ],
    ids=["prices without a time", "a time without prices"],
)
def test_a_resumed_half_reference_starts_the_series_again_and_keeps_the_sums(
    resumed: PairState,
) -> None:
    sums = {"var_a": 4e-9, "var_b": 1e-9, "cov": 1e-9, "weight": 0.5, "weight_sq": 0.125}
    pair = EwmaCorrelation(assets=("ETH", "BTC"), state=replace(resumed, **sums))
    pair.update(120.0, 40.0, T0)
    assert pair.state == PairState(
        assets=("ETH", "BTC"), last_prices=(120.0, 40.0), last_at=T0, **sums
    )
    assert pair.correlation == pytest.approx(0.5)  # 1e-9 / √(4e-9 · 1e-9)
    assert pair.returns == pytest.approx(2.0)


def test_settings_on_the_edge_are_accepted() -> None:
    pair = EwmaCorrelation(assets=("A", "B"), interval_s=0.5)
    pair.update(1.0, 1.0, T0)
    pair.update(2.0, 2.0, T0 + 1)
    assert pair.correlation == pytest.approx(1.0)
    for static in (0.0, 1.0):
        spec = PairSpec(groups=("A", "B"), assets=("A", "B"), static=static)
        est = CorrelationEstimator(pairs=[spec], min_correlation=1.0)
        assert est.correlations() == {("A", "B"): 1.0}
    zero = PairSpec(groups=("A", "B"), assets=("A", "B"), static=0.0)
    assert CorrelationEstimator(pairs=[zero]).correlations() == {("A", "B"): 0.0}


def test_bad_settings_are_refused_with_the_whole_message() -> None:
    with pytest.raises(ValueError, match=r"^lambda_ must be in \(0, 1\) \(got 0\.0\)$"):
        EwmaCorrelation(assets=("A", "B"), lambda_=0.0)
    with pytest.raises(ValueError, match=r"^at must be finite \(got nan\)$"):
        EwmaCorrelation(assets=("A", "B")).update(1.0, 1.0, math.nan)
    over = PairSpec(groups=("ETH", "BTC"), assets=("ETH", "BTC"), static=1.5)
    with pytest.raises(ValueError, match=r"^ETH/BTC: static correlation must be in \[0, 1\]$"):
        CorrelationEstimator(pairs=[over])
    with pytest.raises(ValueError, match=r"^pairs must be unique$"):
        CorrelationEstimator(pairs=[ETH_BTC, ETH_BTC])


def test_a_pair_exactly_at_the_warm_up_count_uses_its_estimate() -> None:
    # one return gives exactly one effective return (W₁² / W₂ = w² / w²); a warm-up of
    # 1 / (1 − slack) puts the threshold exactly there: the edge is inclusive
    warmup = 1 / (1 - 1e-6)
    assert warmup * (1 - 1e-6) == 1.0
    est = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=warmup, sample_s=0)
    est.update({"ETH": 100.0, "BTC": 50.0}, T0)
    est.update({"ETH": 101.0, "BTC": 51.0}, T0 + 60)
    [estimate] = est.estimates()
    assert estimate.returns == 1.0
    assert (estimate.correlation, estimate.estimated) == (1.0, True)
