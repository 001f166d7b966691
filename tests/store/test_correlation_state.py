"""The correlation estimator's state through the real store (PostgreSQL and SQLite): saved,
loaded exactly (a resumed estimator decides as one that never stopped), overwritten by a later
save, and an unreadable document left out instead of stopping the start."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from daemon.store.correlation_state import load_correlation_state, save_correlation_state
from daemon.store.engine import write_transaction
from daemon.store.schema import correlation_state
from daemon.store.writer import HealthStore
from oracles.correlation import CorrelationEstimator, PairSpec, PairState
from oracles.resume import pair_state_from_json, pair_state_to_json

T0 = 1_700_000_000.0
PAIRS = [
    PairSpec(groups=("ETH", "BTC"), assets=("ETH", "WBTC"), static=0.8),
    PairSpec(groups=("ETH", "USD"), assets=("ETH", "USDC"), static=0.0),
    PairSpec(groups=("BTC", "USD"), assets=("WBTC", "USDC"), static=0.0),
]


def run(est: CorrelationEstimator, rounds: range, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    walk = np.exp(np.cumsum(rng.normal(0, 0.002, (200, 3)), axis=0))
    for i in rounds:
        eth, btc, usd = walk[i] * (2000.0, 60_000.0, 1.0)
        held = i % 7 == 3  # WBTC held now and then: its pairs skip those rounds
        prices = {"ETH": float(eth), "WBTC": None if held else float(btc), "USDC": float(usd)}
        est.update(prices, T0 + 60 * i)


async def test_a_saved_estimator_resumes_exactly(store: HealthStore) -> None:
    est = CorrelationEstimator(pairs=PAIRS, warmup_returns=20)
    run(est, range(100))
    await save_correlation_state(store.engine, est.state, T0 + 6_000)
    loaded = await load_correlation_state(store.engine)
    assert loaded == est.state
    resumed = CorrelationEstimator(pairs=PAIRS, warmup_returns=20, state=loaded)
    run(est, range(100, 200))
    run(resumed, range(100, 200))
    assert resumed.estimates() == est.estimates()
    assert all(e.estimated for e in est.estimates())


async def test_a_later_save_replaces_the_earlier_one(store: HealthStore) -> None:
    est = CorrelationEstimator(pairs=PAIRS)
    run(est, range(10))
    await save_correlation_state(store.engine, est.state, T0)
    run(est, range(10, 20))
    await save_correlation_state(store.engine, est.state, T0 + 600)
    assert await load_correlation_state(store.engine) == est.state


async def test_an_unreadable_document_is_left_out(
    store: HealthStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = PairState(assets=("ETH", "USDC"), last_prices=(2000.0, 1.0), last_at=T0)
    await save_correlation_state(store.engine, {"ETH/USD": good}, T0)
    async with write_transaction(store.engine) as conn:
        await conn.execute(
            correlation_state.insert(),
            [{"pair": "ETH/BTC", "state": {"version": 99}, "updated_at": T0}],
        )
    with caplog.at_level(logging.WARNING):
        assert await load_correlation_state(store.engine) == {"ETH/USD": good}
    assert "correlation.state_discarded pair=ETH/BTC" in caplog.text


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"version": 2}, "version"),
        ({"assets": ["ETH"]}, "assets"),
        ({"last_prices": [1.0]}, "last_prices"),
        ({"var_a": "nan"}, "finite"),
        ({"var_b": -1.0}, "variances"),
        ({"cov": None}, "cov"),
    ],
)
def test_bad_documents_name_the_problem(change: dict[str, object], match: str) -> None:
    from core.errors import OracleStateInvalid

    doc = pair_state_to_json(PairState(assets=("A", "B"), last_prices=(1.0, 2.0), last_at=T0))
    with pytest.raises(OracleStateInvalid, match=match):
        pair_state_from_json({**doc, **change})


def test_the_json_round_trip_is_exact() -> None:
    state = PairState(
        assets=("ETH", "USDC"),
        last_prices=(2000.123456789, 0.99987654321),
        last_at=T0 + 0.1,
        var_a=math.pi * 1e-9,
        var_b=math.e * 1e-12,
        cov=-1.0 / 3 * 1e-10,
        weight=1.23456789e-4,
        weight_sq=9.87654321e-9,
    )
    assert pair_state_from_json(pair_state_to_json(state)) == state
