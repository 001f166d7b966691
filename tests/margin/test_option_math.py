"""Black–Scholes greeks and the standard normal, checked against definitions from outside
``margin`` (mutation testing, bench/RESULTS.md "Mutation testing").

The greeks are the risk figures of the account document (dollar delta, gamma, vega). Here they
are compared with finite differences of the independent Black–Scholes value in
``tests/margin/portfolio_oracle.py`` (``math.erf`` only): delta = ∂V/∂S, gamma = ∂²V/∂S²,
vega = ∂V/∂σ. ``margin.normal``'s interpolated Φ is compared with ``math.erf`` directly, at its
table's nodes and between them, and φ with its closed form. The expired and zero-price branches
(intrinsic value, delta 1/0/−1, gamma and vega 0) are tables worked out by hand.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from margin.normal import TABLE_LIMIT, TABLE_STEPS_PER_UNIT, cdf, cdf_scalar, pdf, pdf_scalar
from margin.options import greeks, greeks_scalar, price, price_scalar, years_to_expiry
from tests.margin import portfolio_oracle as oracle

# (call, spot, strike, vol, tau): at, in and out of the money, short and long dated, low and
# high volatility, a small price (below 1 USD) and a large one.
LIVE = [
    (True, 2000.0, 2000.0, 0.6, 30 / 365),
    (False, 2000.0, 2000.0, 0.6, 30 / 365),
    (True, 2000.0, 1500.0, 0.8, 0.5),
    (False, 2000.0, 2600.0, 0.3, 1.5),
    (True, 40_000.0, 52_000.0, 0.45, 0.25),
    (False, 40_000.0, 31_000.0, 1.2, 2 / 365),
    (True, 0.5, 0.6, 0.9, 0.75),
    (False, 0.5, 0.45, 0.9, 0.75),
]


def _oracle_greeks(
    call: bool, spot: float, strike: float, vol: float, tau: float
) -> tuple[float, float, float]:
    """Central differences of the oracle's Black–Scholes value (relative steps)."""
    right = "call" if call else "put"

    def value(s: float, v: float) -> float:
        return oracle.black_scholes(right, s, strike, v, tau)

    h = spot * 1e-4
    delta = (value(spot + h, vol) - value(spot - h, vol)) / (2 * h)
    gamma = (value(spot + h, vol) - 2 * value(spot, vol) + value(spot - h, vol)) / (h * h)
    k = vol * 1e-5
    vega = (value(spot, vol + k) - value(spot, vol - k)) / (2 * k)
    return delta, gamma, vega


@pytest.mark.parametrize(("call", "spot", "strike", "vol", "tau"), LIVE)
def test_greeks_are_the_derivatives_of_the_value(
    call: bool, spot: float, strike: float, vol: float, tau: float
) -> None:
    want_delta, want_gamma, want_vega = _oracle_greeks(call, spot, strike, vol, tau)
    # the oracle's delta is also closed form: the differences must agree with it first
    assert want_delta == pytest.approx(
        oracle.bs_delta("call" if call else "put", spot, strike, vol, tau), abs=1e-7
    )
    scalar = greeks_scalar(call, spot, strike, vol, tau)
    d, g, v = greeks(
        np.array([call]), np.array([spot]), np.array([strike]), np.array([vol]), np.array([tau])
    )
    for got in (scalar, (float(d[0]), float(g[0]), float(v[0]))):
        assert got[0] == pytest.approx(want_delta, abs=1e-7)
        assert got[1] == pytest.approx(want_gamma, rel=1e-4)
        assert got[2] == pytest.approx(want_vega, rel=1e-6)


def test_vectorised_greeks_equal_the_scalar_ones_on_a_mixed_batch() -> None:
    """Live, expired, zero-price rows side by side: each row gets its own branch."""
    rows = [
        *LIVE,
        (True, 2000.0, 1800.0, 0.6, 0.0),
        (False, 2000.0, 2200.0, 0.6, -0.1),
        (True, 0.0, 1800.0, 0.6, 0.5),
        (False, 0.0, 1800.0, 0.6, 0.5),
    ]
    call, spot, strike, vol, tau = (np.array(c) for c in zip(*rows, strict=True))
    d, g, v = greeks(call, spot, strike, vol, tau)
    for i, row in enumerate(rows):
        want = greeks_scalar(*row)
        assert (float(d[i]), float(g[i]), float(v[i])) == pytest.approx(want, rel=1e-9), row


def test_vectorised_prices_equal_the_oracles_on_a_mixed_batch() -> None:
    """Black–Scholes value row by row against the independent one: live rows (a spot below
    1 USD among them), expired at exactly τ = 0 (at the money too: intrinsic 0, not 0/0),
    expired long ago, and a price of zero."""
    rows = [
        *LIVE,
        (True, 0.8, 0.8, 0.9, 0.5),  # below 1 USD, at the money: ≈ 0.8 · (2Φ(0.318) − 1)
        (True, 2000.0, 2000.0, 0.6, 0.0),
        (False, 2000.0, 2000.0, 0.6, 0.0),
        (True, 2000.0, 1800.0, 0.6, 0.0),
        (False, 2000.0, 2200.0, 0.6, -0.1),
        (True, 0.0, 1800.0, 0.6, 0.5),
        (False, 0.0, 1800.0, 0.6, 0.5),
    ]
    call, spot, strike, vol, tau = (np.array(c) for c in zip(*rows, strict=True))
    got = price(call, spot, strike, vol, tau)
    for i, (c, s, k, v, t) in enumerate(rows):
        want = oracle.black_scholes("call" if c else "put", s, k, v, t)
        # Φ is interpolated to 1e-11: a value is as close as that times spot and strike
        assert float(got[i]) == pytest.approx(want, rel=0, abs=1e-10 * (s + k) + 1e-15), rows[i]
    assert float(got[len(LIVE)]) == pytest.approx(0.8 * (2 * _phi(0.45 * math.sqrt(0.5)) - 1))
    assert got[len(LIVE) + 1 : len(LIVE) + 3].tolist() == [0.0, 0.0]


# (call, spot, strike, tau, delta): expired (τ ≤ 0) or priced at zero; gamma and vega are 0.
EXPIRED = [
    (True, 2100.0, 2000.0, 0.0, 1.0),  # call in the money
    (True, 1900.0, 2000.0, 0.0, 0.0),  # call out of the money
    (True, 2000.0, 2000.0, 0.0, 0.0),  # call at the money: not in the money
    (False, 1900.0, 2000.0, -1.0, -1.0),  # put in the money
    (False, 2100.0, 2000.0, -1.0, 0.0),  # put out of the money
    (False, 2000.0, 2000.0, 0.0, 0.0),  # put at the money
    (True, 0.0, 2000.0, 0.5, 0.0),  # a price of zero (a −100 % scenario), not yet expired
    (False, 0.0, 2000.0, 0.5, -1.0),
]


@pytest.mark.parametrize(("call", "spot", "strike", "tau", "delta"), EXPIRED)
def test_expired_or_zero_price_greeks(
    call: bool, spot: float, strike: float, tau: float, delta: float
) -> None:
    assert greeks_scalar(call, spot, strike, 0.6, tau) == (delta, 0.0, 0.0)
    d, g, v = greeks(
        np.array([call]), np.array([spot]), np.array([strike]), np.array([0.6]), np.array([tau])
    )
    assert (float(d[0]), float(g[0]), float(v[0])) == (delta, 0.0, 0.0)


@pytest.mark.parametrize(
    ("call", "strike", "value"), [(True, 2000.0, 0.0), (False, 2000.0, 2000.0)]
)
def test_a_price_of_zero_values_an_option_at_its_intrinsic_value(
    call: bool, strike: float, value: float
) -> None:
    """A −100 % scenario: the call is worthless, the put worth its strike (τ > 0)."""
    assert price_scalar(call, 0.0, strike, 0.6, 0.5) == value
    got = price(np.array([call]), np.array([0.0]), np.array([strike]), np.array([0.6]),
                np.array([0.5]))  # fmt: skip
    assert float(got[0]) == value


def test_years_to_expiry_counts_365_day_years() -> None:
    assert years_to_expiry(1_700_000_000 + 31_536_000, 1_700_000_000) == 1.0
    assert years_to_expiry(1_700_000_000, 1_700_000_000 + 86_400) == pytest.approx(-1 / 365)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def test_the_interpolated_normal_cdf_agrees_with_erf_everywhere() -> None:
    """Within 1e-11 (the module's bound) at the nodes, between them, in the tails and beyond
    the table; 0 and 1 beyond ±TABLE_LIMIT."""
    nodes = np.linspace(-TABLE_LIMIT, TABLE_LIMIT, int(2 * TABLE_LIMIT * TABLE_STEPS_PER_UNIT) + 1)
    h = 1.0 / TABLE_STEPS_PER_UNIT
    rng = random.Random(15)
    xs = np.concatenate(
        [
            nodes,
            nodes[:-1] + h / 2,
            nodes[:-1] + h / 3,
            np.array([rng.uniform(-12.0, 12.0) for _ in range(5000)]),
            np.array([-1e6, -40.0, -10.5, 10.5, 40.0, 1e6]),
        ]
    )
    got = cdf(xs)
    want = np.array([_phi(float(x)) for x in xs])
    assert np.max(np.abs(got - want)) < 1e-11
    assert cdf(np.array([-11.0, -1e300, 11.0, 1e300])).tolist() == [0.0, 0.0, 1.0, 1.0]
    # the scalar form is erf itself
    assert [cdf_scalar(float(x)) for x in xs[:200]] == pytest.approx(
        [_phi(float(x)) for x in xs[:200]], abs=1e-15
    )


@pytest.mark.parametrize(
    ("x", "density"),
    [
        (0.0, 0.3989422804014327),  # 1/√(2π)
        (1.0, 0.24197072451914337),
        (-1.0, 0.24197072451914337),
        (2.5, 0.01752830049356854),
        (-6.0, 6.075882849823286e-09),
    ],
)
def test_the_normal_density(x: float, density: float) -> None:
    assert pdf_scalar(x) == pytest.approx(density, rel=1e-14)
    assert float(pdf(np.array([x]))[0]) == pytest.approx(density, rel=1e-14)
