"""EWMA correlation between groups: closed forms, clipping, warm-up, holds and irregular steps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from oracles.correlation import (
    CorrelationEstimator,
    EwmaCorrelation,
    PairSpec,
    PairState,
    group_pairs,
)
from oracles.volatility import SECONDS_PER_YEAR

T0 = 1_700_000_000.0
DAY_S = 86_400.0
ETH_BTC = PairSpec(groups=("ETH", "BTC"), assets=("ETH", "BTC"), static=0.8)


def correlated_prices(
    rho: float, steps: list[float], seed: int, sigma: tuple[float, float] = (0.8, 0.6)
) -> tuple[np.ndarray, np.ndarray]:
    """Two geometric random walks whose log returns over each step (seconds) have
    correlation ``rho`` and variances ``σ² · dt / year``."""
    rng = np.random.default_rng(seed)
    dt = np.asarray(steps)
    z1, z2 = rng.standard_normal(len(dt)), rng.standard_normal(len(dt))
    scale = np.sqrt(dt / SECONDS_PER_YEAR)
    r_a = sigma[0] * scale * z1
    r_b = sigma[1] * scale * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
    start = np.array([1.0])
    return (
        2_000.0 * np.exp(np.concatenate([start * 0, np.cumsum(r_a)])),
        60_000.0 * np.exp(np.concatenate([start * 0, np.cumsum(r_b)])),
    )


def feed(pair: EwmaCorrelation, a: np.ndarray, b: np.ndarray, times: np.ndarray) -> None:
    for pa, pb, at in zip(a, b, times, strict=True):
        pair.update(float(pa), float(pb), float(at))


def test_daily_samples_follow_the_riskmetrics_recursion() -> None:
    pair = EwmaCorrelation(assets=("ETH", "BTC"), lambda_=0.94, max_step_s=2 * DAY_S)
    eth = [100.0, 102.0, 99.0, 101.0, 97.0, 98.0]
    btc = [50.0, 50.5, 49.0, 49.2, 49.9, 48.0]
    for day, (a, b) in enumerate(zip(eth, btc, strict=True)):
        pair.update(a, b, T0 + day * DAY_S)
    ra = [math.log(y / x) for x, y in itertools.pairwise(eth)]
    rb = [math.log(y / x) for x, y in itertools.pairwise(btc)]
    saa = sbb = sab = 0.0
    for x, y in zip(ra, rb, strict=True):
        saa, sbb, sab = (
            0.94 * saa + 0.06 * x * x,
            0.94 * sbb + 0.06 * y * y,
            0.94 * sab + 0.06 * x * y,
        )
    assert pair.correlation == pytest.approx(sab / math.sqrt(saa * sbb), rel=1e-12)
    # Kish: 5 returns with weights 0.06·0.94^k
    weights = [0.06 * 0.94**k for k in range(5)]
    assert pair.returns == pytest.approx(sum(weights) ** 2 / sum(w * w for w in weights))


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.7, 0.95])
def test_estimate_matches_the_generating_correlation(rho: float) -> None:
    steps = [60.0] * 6_000
    a, b = correlated_prices(rho, steps, seed=11)
    pair = EwmaCorrelation(assets=("ETH", "BTC"))
    feed(pair, a, b, T0 + np.concatenate([[0.0], np.cumsum(steps)]))
    assert pair.correlation == pytest.approx(rho, abs=0.04)
    assert pair.returns == pytest.approx(6_000, rel=0.02)  # a young window counts every return


@pytest.mark.parametrize("seed", [3, 4])
def test_irregular_steps_are_unbiased(seed: int) -> None:
    # long steps carry more variance; the estimate must not depend on how rounds are spaced
    steps = list(np.random.default_rng(seed).uniform(1.0, 900.0, 6_000))
    a, b = correlated_prices(0.6, steps, seed=seed)
    pair = EwmaCorrelation(assets=("ETH", "BTC"))
    feed(pair, a, b, T0 + np.concatenate([[0.0], np.cumsum(steps)]))
    assert pair.correlation == pytest.approx(0.6, abs=0.04)


def test_perfectly_correlated_returns_give_one() -> None:
    a, _ = correlated_prices(0.0, [30.0] * 200, seed=5)
    est = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=50, sample_s=0)
    for i, price in enumerate(a):
        est.update({"ETH": float(price), "BTC": 30.0 * float(price)}, T0 + 30 * i)
    [estimate] = est.estimates()
    assert estimate.estimated
    assert estimate.correlation == pytest.approx(1.0, abs=1e-12)
    assert estimate.correlation <= 1.0


def test_anti_correlated_returns_are_clipped_at_min_correlation() -> None:
    a, _ = correlated_prices(0.0, [30.0] * 200, seed=6)
    est = CorrelationEstimator(pairs=[ETH_BTC], min_correlation=0.25, warmup_returns=50, sample_s=0)
    for i, price in enumerate(a):
        est.update({"ETH": float(price), "BTC": 1e6 / float(price)}, T0 + 30 * i)
    assert est._pairs["ETH/BTC"].correlation == pytest.approx(-1.0)
    assert est.correlations() == {("ETH", "BTC"): 0.25}
    assert est.estimates()[0].estimated


def test_static_value_until_warm_and_never_below_min_correlation() -> None:
    spec = PairSpec(groups=("ETH", "BTC"), assets=("ETH", "BTC"), static=0.1)
    est = CorrelationEstimator(pairs=[spec], min_correlation=0.3, warmup_returns=20, sample_s=0)
    a, b = correlated_prices(0.9, [10.0] * 40, seed=8)
    seen = []
    for i in range(41):
        est.update({"ETH": float(a[i]), "BTC": float(b[i])}, T0 + 10 * i)
        seen.append(est.estimates()[0])
    cold = [e for e in seen if not e.estimated]
    assert len(cold) == 20  # the first price sets the reference, then 19 returns
    assert all(e.correlation == 0.3 for e in cold)  # static 0.1 lifted to the minimum
    assert seen[-1].estimated
    assert seen[-1].correlation > 0.6


def test_a_flat_series_falls_back_to_the_static_value() -> None:
    est = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=5, sample_s=0)
    a, _ = correlated_prices(0.0, [10.0] * 50, seed=9)
    for i, price in enumerate(a):
        est.update({"ETH": float(price), "BTC": 1.0}, T0 + 10 * i)
    [estimate] = est.estimates()
    assert not estimate.estimated
    assert estimate.correlation == 0.8
    assert est._pairs["ETH/BTC"].correlation is None


def test_held_rounds_are_skipped_and_the_gap_counts_as_one_return() -> None:
    spec = PairSpec(groups=("ETH", "BTC"), assets=("ETH", "BTC"), static=0.5)
    held = CorrelationEstimator(pairs=[spec], warmup_returns=1, sample_s=0)
    synchronous = EwmaCorrelation(assets=("ETH", "BTC"))
    a, b = correlated_prices(0.5, [5.0] * 60, seed=10)
    for i in range(61):
        at = T0 + 5 * i
        eth = None if 20 <= i < 30 else float(a[i])  # ETH held for ten rounds
        held.update({"ETH": eth, "BTC": float(b[i])}, at)
        if eth is not None:
            synchronous.update(float(a[i]), float(b[i]), at)
    assert held.state["ETH/BTC"] == synchronous.state
    # the move made while held is counted, over the 55 s since the last common round
    gap = EwmaCorrelation(assets=("ETH", "BTC"))
    for i in (19, 30):
        gap.update(float(a[i]), float(b[i]), T0 + 5 * i)
    sign = math.copysign(1.0, math.log(a[30] / a[19]) * math.log(b[30] / b[19]))
    assert gap.correlation == pytest.approx(sign)


def test_rounds_closer_than_the_sampling_step_are_spanned() -> None:
    sampled = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=1, sample_s=60)
    every_minute = EwmaCorrelation(assets=("ETH", "BTC"))
    a, b = correlated_prices(0.5, [5.0] * 240, seed=13)
    for i in range(241):
        sampled.update({"ETH": float(a[i]), "BTC": float(b[i])}, T0 + 5 * i)
        if i % 12 == 0:
            every_minute.update(float(a[i]), float(b[i]), T0 + 5 * i)
    assert sampled.state["ETH/BTC"] == every_minute.state
    assert sampled.estimates()[0].returns == pytest.approx(20, rel=1e-6)


def test_estimates_are_rounded_up_to_six_decimals() -> None:
    est = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=1, sample_s=0)
    a, b = correlated_prices(0.5, [10.0] * 30, seed=14)
    for i in range(31):
        est.update({"ETH": float(a[i]), "BTC": float(b[i])}, T0 + 10 * i)
    raw = est._pairs["ETH/BTC"].correlation
    assert raw is not None
    [used] = est.correlations().values()
    assert raw <= used < raw + 1e-6
    assert used * 1_000_000 == pytest.approx(round(used * 1_000_000), abs=1e-6)


def test_a_return_over_a_long_gap_restarts_the_clock_without_counting() -> None:
    pair = EwmaCorrelation(assets=("ETH", "BTC"), max_step_s=3_600)
    pair.update(100.0, 50.0, T0)
    pair.update(101.0, 50.5, T0 + 60)
    pair.update(102.0, 50.0, T0 + 120)
    before = pair.state
    pair.update(150.0, 20.0, T0 + 120 + 7_200)  # two hours later, a big opposite move
    after = pair.state
    keep = 0.94 ** (7_200 / DAY_S)
    assert after.last_prices == (150.0, 20.0)
    assert after.last_at == T0 + 7_320
    assert after.cov == pytest.approx(keep * before.cov, rel=1e-12)
    assert after.var_a == pytest.approx(keep * before.var_a, rel=1e-12)
    assert pair.correlation == pytest.approx(
        before.cov / math.sqrt(before.var_a * before.var_b), rel=1e-12
    )
    assert pair.returns == pytest.approx(2.0, rel=1e-6)
    pair.update(151.5, 20.2, T0 + 7_380)  # then on, from the new reference
    assert pair.returns == pytest.approx(3.0, rel=1e-4)


def test_missing_asset_and_stale_round_times_change_nothing() -> None:
    est = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=1, sample_s=0)
    est.update({"ETH": 100.0, "BTC": 50.0}, T0)
    est.update({"ETH": 101.0, "BTC": 51.0}, T0 + 10)
    before = est.state
    est.update({"ETH": 150.0}, T0 + 20)  # BTC unpriced this round
    est.update({"ETH": 90.0, "BTC": 40.0}, T0 + 10)  # not after the reference
    est.update({"ETH": 90.0, "BTC": 40.0}, T0 + 5)
    assert est.state == before


def test_state_round_trips_through_a_restart() -> None:
    a, b = correlated_prices(0.4, [60.0] * 100, seed=12)
    est = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=10)
    for i in range(80):
        est.update({"ETH": float(a[i]), "BTC": float(b[i])}, T0 + 60 * i)
    resumed = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=10, state=est.state)
    for i in range(80, 101):
        for e in (est, resumed):
            e.update({"ETH": float(a[i]), "BTC": float(b[i])}, T0 + 60 * i)
    assert resumed.estimates() == est.estimates()


def test_state_of_another_representative_asset_starts_fresh() -> None:
    old = PairState(assets=("stETH", "BTC"), last_prices=(1.0, 2.0), last_at=T0, var_a=1.0,
                    var_b=1.0, cov=0.5, weight=1.0, weight_sq=0.01)  # fmt: skip
    est = CorrelationEstimator(pairs=[ETH_BTC], warmup_returns=1, state={"ETH/BTC": old})
    assert est.state["ETH/BTC"] == PairState(assets=("ETH", "BTC"))
    assert est.correlations() == {("ETH", "BTC"): 0.8}


def test_group_pairs_lists_every_pair_once_with_its_static_value() -> None:
    pairs = group_pairs(
        [("ETH", "ETH"), ("BTC", "WBTC"), ("USD", "USDC")],
        {frozenset(("BTC", "ETH")): 0.8},
        0.6,
    )
    assert [(p.name, p.assets, p.static) for p in pairs] == [
        ("ETH/BTC", ("ETH", "WBTC"), 0.8),
        ("ETH/USD", ("ETH", "USDC"), 0.6),
        ("BTC/USD", ("WBTC", "USDC"), 0.6),
    ]


@settings(deadline=None, max_examples=200, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    min_correlation=st.floats(min_value=0.0, max_value=1.0),
    static=st.floats(min_value=0.0, max_value=1.0),
    rounds=st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(min_value=1e-9, max_value=1e12)),
            st.one_of(st.none(), st.floats(min_value=1e-9, max_value=1e12)),
            st.floats(min_value=-100.0, max_value=1e6),
        ),
        max_size=40,
    ),
)
def test_correlation_in_use_is_finite_and_within_bounds(
    min_correlation: float, static: float, rounds: list[tuple[float | None, float | None, float]]
) -> None:
    spec = PairSpec(groups=("A", "B"), assets=("A", "B"), static=static)
    est = CorrelationEstimator(
        pairs=[spec], min_correlation=min_correlation, warmup_returns=1, sample_s=0
    )
    at = T0
    for a, b, dt in rounds:
        at += dt
        est.update({"A": a, "B": b}, at)
        [rho] = est.correlations().values()
        assert math.isfinite(rho)
        assert min_correlation <= rho <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_correlation": -0.1}, "min_correlation"),
        ({"min_correlation": 1.1}, "min_correlation"),
        ({"warmup_returns": 0}, "warmup_returns"),
        ({"lambda_": 1.0}, "lambda_"),
        ({"interval_s": 0.0}, "interval_s"),
        ({"sample_s": -1.0}, "sample_s"),
        ({"sample_s": 60.0, "max_step_s": 60.0}, "max_step_s"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CorrelationEstimator(pairs=[ETH_BTC], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("price", [0.0, -1.0, math.inf, math.nan])
def test_bad_prices_are_rejected(price: float) -> None:
    with pytest.raises(ValueError, match="price"):
        EwmaCorrelation(assets=("A", "B")).update(price, 1.0, T0)
