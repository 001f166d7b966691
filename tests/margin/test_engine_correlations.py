"""ρ between risk groups set on a running engine (``correlation_source: ewma``): the accounts
exposed to the changed groups are marked and recomputed, their M is the independent
implementation's at the new ρ (incremental equals full), stress passes see it, and a ρ outside
[0, 1] is refused without changing anything."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from margin.model import MarginInputError
from margin.scenarios import correlation_matrix
from tests.margin.portfolio_kit import World, eth_usd_groups

CENT = 0.011
HEDGED = "0x00000000000000000000000000000000000000a1"  # ETH collateral, USDC debt, BTC
ETH_ONLY = "0x00000000000000000000000000000000000000a2"


def world() -> World:
    w = World(params=eth_usd_groups(correlations=(("ETH", "USD", 0.0), ("BTC", "ETH", 0.5))))
    w.hold(HEDGED, "eth-main", 20_000.0)
    w.hold(HEDGED, "usdc-debt", 9_000.0)
    w.hold(HEDGED, "btc", 8_000.0)
    w.hold(ETH_ONLY, "eth-fast", 5_000.0)
    w.engine.recompute_all()
    return w


def maintenance(w: World, account: str) -> float:
    return float(w.engine.account_health(account).maintenance)


def test_new_correlations_mark_the_exposed_accounts_and_price_them() -> None:
    w = world()
    assert maintenance(w, HEDGED) == pytest.approx(w.expected(HEDGED).maintenance, abs=CENT)
    before = maintenance(w, HEDGED)
    marked = w.engine.set_correlations({("USD", "ETH"): 0.7})  # either order
    ids = {w.engine.accounts[i] for i in marked}
    assert ids == {HEDGED, ETH_ONLY}  # both hold an asset of ETH or USD
    w.engine.recompute_dirty()
    w.params = w.engine.portfolio
    assert w.params.correlation("ETH", "USD") == 0.7
    assert w.params.correlation("ETH", "BTC") == 0.5  # pairs not given keep their value
    after = maintenance(w, HEDGED)
    assert after == pytest.approx(w.expected(HEDGED).maintenance, abs=CENT)
    assert after > before
    incremental = w.engine.results.select(slice(0, len(w.engine.accounts)))
    full = w.engine.recompute_all()
    assert np.array_equal(full.maintenance, incremental.maintenance)
    # ETH alone has one group: its M does not depend on ρ
    assert maintenance(w, ETH_ONLY) == pytest.approx(w.expected(ETH_ONLY).maintenance, abs=CENT)


def test_unchanged_correlations_mark_nothing() -> None:
    w = world()
    assert len(w.engine.set_correlations({("ETH", "USD"): 0.0, ("ETH", "BTC"): 0.5})) == 0
    assert len(w.engine.set_correlations({("ETH", "ETH"): 0.3})) == 0  # a group with itself


def test_stress_passes_use_the_correlations_in_force() -> None:
    w = world()
    w.engine.set_correlations({("ETH", "USD"): 1.0, ("ETH", "BTC"): 1.0, ("USD", "BTC"): 1.0})
    w.engine.recompute_dirty()
    table, _ = w.engine.evaluate_under(price_shocks={})
    i = w.engine.account_index(HEDGED)
    assert table.maintenance[i] == w.engine.results.maintenance[i]
    risk = w.engine.account_risk(HEDGED)
    assert float(w.engine.account_health(HEDGED).maintenance) == pytest.approx(
        sum(g.loss for g in risk.groups.values()), abs=CENT
    )  # ρ = 1 everywhere: losses add up
    snapshot = w.engine.snapshot()
    assert snapshot.portfolio.correlation("USD", "BTC") == 1.0


@pytest.mark.parametrize("rho", [-0.1, 1.5, float("nan")])
def test_a_correlation_outside_the_unit_interval_is_refused(rho: float) -> None:
    w = world()
    params = w.engine.portfolio
    with pytest.raises(MarginInputError, match="correlations"):
        w.engine.set_correlations({("ETH", "USD"): rho})
    assert w.engine.portfolio == params
    assert len(w.engine.dirty_accounts()) == 0
    assert np.all(np.isfinite(w.engine.results.maintenance))


def test_replace_keeps_the_configured_params_apart() -> None:
    params = eth_usd_groups()
    w = World(params=params)
    w.engine.set_correlations({("ETH", "USD"): 0.2})
    assert params.correlation("ETH", "USD") == 1.0  # the configured object is not changed
    assert w.engine.portfolio == replace(params, correlations=(("ETH", "USD", 0.2),))


def test_the_matrix_is_the_pairwise_lookup() -> None:
    groups = ["ETH", "USD", "BTC", "SOL", "ARB"]
    params = eth_usd_groups(
        correlations=(("ETH", "USD", 0.1), ("BTC", "ETH", 0.8), ("SOL", "ARB", 0.0)),
        default_correlation=0.6,
    )
    matrix = correlation_matrix(params, groups)
    for i, a in enumerate(groups):
        for j, b in enumerate(groups):
            assert matrix[i, j] == params.correlation(a, b)
    assert matrix[2, 0] == matrix[0, 2] == 0.8
    assert matrix[3, 3] == 1.0
