"""Properties of the portfolio model (hypothesis), and the engine against the independent oracle
(``tests/margin/portfolio_oracle.py``) on random books."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from margin.options import Right, price, price_scalar
from margin.scenarios import RiskGroup
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import CHAINS, World, eth_usd_groups, option

SETTINGS = settings(
    deadline=None, max_examples=60, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)
A, B = "0x" + "a" * 40, "0x" + "b" * 40
ETH_TOKENS = [f"eth-{c}" for c in CHAINS]
CENT = 0.01
OTHER_TOKENS = ["steth", "usdc", "usdc-debt", "usdc-debt-arb", "btc"]

usd = st.integers(0, 5_000_000).map(lambda cents: cents / 100)


@st.composite
def books(draw: st.DrawFn, *, written_only: bool = False) -> dict[str, object]:
    """A random account: holdings, perps and options (``written_only``: every option short)."""
    holdings = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [*ETH_TOKENS, "steth", "usdc", "usdc-debt", "usdc-debt-arb", "btc"]
                ),
                usd,
            ),
            max_size=6,
            unique_by=lambda h: h[0],
        )
    )
    perps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["ETH", "BTC", "stETH"]),
                st.sampled_from(list(CHAINS)),
                st.floats(-50, 50, allow_nan=False).map(lambda x: round(x, 3)),
                st.floats(100, 60_000),
            ),
            max_size=3,
            unique_by=lambda p: p[0],
        )
    )
    options = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["ETH", "BTC"]),
                st.sampled_from(list(CHAINS)),
                st.floats(-20, -0.5) if written_only else st.floats(-20, 20),
                st.sampled_from(list(Right)),
                st.floats(0.5, 1.5),  # strike / spot
                st.floats(-2, 120),  # days to expiry
                st.floats(0.1, 2.0),
            ),
            max_size=4,
        )
    )
    return {"holdings": holdings, "perps": perps, "options": options}


def load(world: World, account: str, book: dict[str, object]) -> None:
    for token, value in book["holdings"]:  # type: ignore[attr-defined]
        world.hold(account, token, value)
    for asset, chain, size, entry in book["perps"]:  # type: ignore[attr-defined]
        world.perp(account, asset, chain, size, entry)
    lines = [
        option(
            account,
            asset=asset,
            chain=chain,
            size=size,
            right=right,
            strike=round(world.prices[asset] * moneyness, 2),
            days=days,
            vol=vol,
            now=world.now,
        )
        for asset, chain, size, right, moneyness, days, vol in book["options"]  # type: ignore[attr-defined]
    ]
    world.options(account, lines)


def lines_of(book: dict[str, object]) -> int:
    return sum(len(book[k]) for k in ("holdings", "perps", "options"))  # type: ignore[arg-type]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    rho = draw(st.sampled_from([0.0, 0.3, 0.8, 1.0]))
    params = eth_usd_groups(
        price_steps=draw(st.integers(1, 6)),
        extreme_multiple=draw(st.sampled_from([1.0, 2.0, 3.0])),
        extreme_weight=draw(st.sampled_from([0.0, 0.35, 1.0])),
        vol_up=draw(st.sampled_from([0.0, 0.5])),
        vol_down=draw(st.sampled_from([0.0, 0.3])),
        correlations=(("ETH", "BTC", rho),),
        default_correlation=draw(st.sampled_from([0.0, 0.5, 1.0])),
        volatility_floors=(("ETH", 0.5), ("BTC", 0.4)),
    )
    volatility = {"ETH": draw(st.floats(0.2, 1.5)), "BTC": draw(st.floats(0.2, 1.5))}
    return World(params=params, volatility=volatility)


@SETTINGS
@given(worlds(), books())
def test_engine_equals_the_independent_implementation(
    world: World, book: dict[str, object]
) -> None:
    load(world, A, book)
    health = world.engine.account_health(A)
    risk = world.engine.account_risk(A)
    expected = world.expected(A)
    slack = CENT * (2 + 2 * lines_of(book))  # each line and M round to a cent
    assert float(health.collateral_value) == _near(expected.collateral, slack)
    assert float(health.liability_value) == _near(expected.liability, slack)
    assert float(risk.options_value) == _near(expected.options_value, slack)
    assert float(health.unrealized_pnl) == _near(expected.pnl + expected.options_value, slack)
    assert float(health.maintenance) == _near(expected.maintenance, slack)
    for group, loss in expected.loss.items():
        figures = risk.groups.get(group)
        assert (0.0 if figures is None else figures.loss) == _near(loss, slack)
        if figures is not None:
            assert figures.loss_latency == _near(expected.loss_latency[group], slack)
            assert figures.horizon_s == expected.horizon[group]
            assert figures.delta == _near(expected.delta[group], slack)
    assert risk.var_99 == _near(expected.var_99, slack + 1e-6 * expected.var_99)
    requirement = expected.maintenance + expected.liability
    if math.isfinite(expected.health) and requirement > 1:
        # a cent of rounding on each side moves the ratio by about slack · (1 + health) / den
        tolerance = slack * (1 + expected.health) / requirement + 1e-9
        assert health.health == _near(expected.health, tolerance)


def _near(x: float, tolerance: float) -> object:
    return pytest.approx(x, abs=tolerance)


@SETTINGS
@given(
    st.sampled_from(ETH_TOKENS),
    st.sampled_from(list(CHAINS)),
    usd.filter(lambda v: v > 0),
    st.floats(0.0, 2.0),
)
def test_a_hedge_inside_a_group_needs_no_more_than_either_leg(
    token: str, chain: str, value: float, ratio: float
) -> None:
    """Spot long on one chain, a perp short of ``ratio`` times its size on another."""
    size = -round(value / 2000 * ratio, 3)
    legs = []
    for parts in (("spot",), ("perp",), ("spot", "perp")):
        world = World()
        if "spot" in parts:
            world.hold(A, token, value)
        if "perp" in parts:
            world.perp(A, "ETH", chain, size, 2000)
        legs.append(float(world.engine.account_health(A).maintenance))
    spot, perp, both = legs
    assert both <= max(spot, perp) + CENT


@SETTINGS
@given(books(written_only=True), st.floats(0.01, 0.45), st.floats(0.01, 0.45))
def test_requirement_is_monotone_in_the_scan_range(
    book: dict[str, object], r1: float, r2: float
) -> None:
    """Linear exposures and written options: the loss is convex in the move, so a wider grid
    never finds less (a long option's loss peaks inside the grid, where no such rule holds)."""
    low, high = sorted((r1, r2))
    results = []
    for r in (low, high):
        groups = (
            RiskGroup(name="ETH", assets=("ETH", "stETH"), scan_range=r),
            RiskGroup(name="USD", assets=("USDC",), scan_range=r / 5),
        )
        world = World(params=eth_usd_groups(groups=groups, default_scan_range=r))
        load(world, A, book)
        results.append(float(world.engine.account_health(A).maintenance))
    assert results[0] <= results[1] + CENT


@SETTINGS
@given(books(), st.sampled_from([0.0, 1.0]))
def test_rho_one_adds_losses_and_rho_zero_adds_squares(book: dict[str, object], rho: float) -> None:
    world = World(params=eth_usd_groups(default_correlation=rho))
    load(world, A, book)
    losses = [g.loss for g in world.engine.account_risk(A).groups.values()]
    combined = sum(losses) if rho == 1.0 else math.sqrt(sum(x * x for x in losses))
    maintenance = float(world.engine.account_health(A).maintenance)
    assert maintenance == _near(combined, CENT)


@SETTINGS
@given(
    usd.filter(lambda v: v > 1),
    st.sampled_from(ETH_TOKENS),
    st.sampled_from(ETH_TOKENS),
    st.floats(0, 1),
)
def test_splitting_across_chains_changes_only_the_latency_horizon(
    value: float, first: str, second: str, share: float
) -> None:
    assume(first != second)
    whole, split = World(volatility={"ETH": 0.8}), World(volatility={"ETH": 0.8})
    part = round(value * share, 2)
    whole.hold(A, first, value)
    whole.hold(A, "usdc-debt", value / 2)
    split.hold(A, first, part)
    split.hold(A, second, round(value - part, 2))
    split.hold(A, "usdc-debt", value / 2)
    a, b = whole.engine.account_health(A), split.engine.account_health(A)
    assert float(a.collateral_value) == _near(float(b.collateral_value), 2 * CENT)
    assert float(a.maintenance) == _near(float(b.maintenance), 2 * CENT)
    assert a.health == _near(b.health, 1e-5 * a.health)
    risk = split.engine.account_risk(A).groups["ETH"]
    live = [tok for tok, amount in ((first, part), (second, round(value - part, 2))) if amount > 0]
    assert risk.horizon_s == max(CHAINS[tok.removeprefix("eth-")] for tok in live)


@settings(deadline=None, max_examples=300)
@given(
    st.floats(1, 1e5),
    st.floats(0.2, 5.0),
    st.floats(0.05, 3.0),
    st.floats(-0.1, 3.0),
)
def test_put_call_parity(spot: float, moneyness: float, vol: float, tau: float) -> None:
    """r = 0: C − P = S − K, in the scalar and the vectorised valuation, expired or not."""
    strike = spot * moneyness
    call, put = (
        price_scalar(True, spot, strike, vol, tau),
        price_scalar(False, spot, strike, vol, tau),
    )
    assert call - put == _near(spot - strike, 1e-9 * max(spot, strike))
    both = price(
        np.array([True, False]),
        np.array([spot, spot]),
        np.array([strike, strike]),
        np.array([vol, vol]),
        np.array([tau, tau]),
    )
    assert both[0] - both[1] == _near(spot - strike, 1e-9 * max(spot, strike))
    assert both[0] == _near(call, 1e-10 * max(spot, strike))


def test_vectorised_black_scholes_equals_the_math_module() -> None:
    rng = random.Random(5)
    rows = [
        (
            rng.random() < 0.5,
            rng.uniform(10, 5e4),
            rng.uniform(0.3, 3),
            rng.uniform(0.05, 3),
            rng.uniform(-0.01, 2),
        )
        for _ in range(2000)
    ]
    call, spot, m, vol, tau = (np.array(c) for c in zip(*rows, strict=True))
    got = price(call, spot, spot * m, vol, tau)
    want = [oracle.black_scholes("call" if c else "put", s, s * k, v, t) for c, s, k, v, t in rows]
    assert np.max(np.abs(got - np.array(want)) / spot) < 1e-10


@SETTINGS
@given(st.lists(books(), min_size=1, max_size=4), st.integers(0, 3), st.floats(-1e5, 1e7))
def test_incremental_recompute_equals_full(
    batch: list[dict[str, object]], changed: int, clock_step: float
) -> None:
    world = World()
    accounts = [f"0x{i + 1:040x}" for i in range(len(batch))]
    for account, book in zip(accounts, batch, strict=True):
        load(world, account, book)
    world.engine.recompute_all()
    target = accounts[changed % len(accounts)]
    world.engine.set_options(target, [option(target, size=-3, right=Right.PUT, now=world.now)])
    world.engine.set_clock(world.now + clock_step)
    world.engine.recompute_dirty(full_fraction=math.inf)
    incremental = world.engine.results.select(slice(None))
    full = world.engine.recompute_all()
    for name, column in incremental.columns().items():
        np.testing.assert_array_equal(column, getattr(full, name), err_msg=name)
