"""VaR and ES of the portfolio model against a reference normal distribution, not our own
constants: Python's ``statistics.NormalDist`` (the quantile and density), and the expected
shortfall's definition — the mean of the quantiles beyond the level — integrated numerically.

DESIGN §3 writes the constants rounded (``2.3263``, ``φ(1.96) / 0.025``): the engine must agree
with the exact figures within that rounding (2.1·10⁻⁵ and 7.1·10⁻⁵ relative)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from tests.margin.portfolio_kit import World

A = "0x" + "a" * 40
YEAR_S = 31_536_000
STANDARD = NormalDist()


def _tail_mean(level: float, steps: int = 400_000) -> float:
    """E[X | X > q_level] for a standard normal X, as (1 / (1 − level)) ∫ q_u du over
    u ∈ (level, 1): the midpoint rule on u = 1 − (1 − level)·t², which takes the integrable
    singularity at u = 1 out of the integrand (du = 2(1 − level) t dt)."""
    width = 1.0 - level
    total = 0.0
    for i in range(steps):
        t = (i + 0.5) / steps
        total += STANDARD.inv_cdf(1.0 - width * t * t) * 2.0 * t
    return total / steps


def test_the_tail_mean_is_the_density_over_the_tail() -> None:
    # The closed form the engine uses (φ(q) / (1 − α)) is the definition, integrated.
    q = STANDARD.inv_cdf(0.975)
    assert _tail_mean(0.975) == pytest.approx(STANDARD.pdf(q) / 0.025, rel=1e-5)


def test_var_and_es_of_one_group_match_the_reference_normal() -> None:
    # 20,000 USD of ETH on a chain of 3,600 s, σ = 0.6: σ_p = 20,000 · 0.6 · √(3,600 / year).
    world = World(volatility={"ETH": 0.6, "stETH": 0.6})
    world.hold(A, "eth-slow", 20_000)
    sigma_p = 20_000 * 0.6 * math.sqrt(3600 / YEAR_S)
    risk = world.engine.account_risk(A)
    assert risk.groups["ETH"].horizon_s == 3600
    assert risk.var_99 == pytest.approx(STANDARD.inv_cdf(0.99) * sigma_p, rel=2.5e-5)
    assert risk.es_975 == pytest.approx(_tail_mean(0.975) * sigma_p, rel=8e-5)
    # And not merely close by luck: the 97.5 % VaR or the 99 % ES would be off by far more.
    assert abs(risk.es_975 / sigma_p - STANDARD.inv_cdf(0.975)) > 0.3
