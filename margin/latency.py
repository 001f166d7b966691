"""Liquidation latency risk (DESIGN §3): how far a price may move before a liquidation lands.

``shock = z · σ · sqrt(T_c / YEAR_S)`` for an asset of annualized volatility ``σ`` held on a
chain whose liquidation takes ``T_c`` seconds. Collateral is then worth ``(1 − shock)`` of
its weighted value (never below zero), debt ``(1 + shock)``; a long position is marked at
``mark · (1 − shock)``, a short at ``mark · (1 + shock)`` (the adverse move for each).
"""

from __future__ import annotations

import math

YEAR_S = 31_536_000
"""Seconds in the 365-day year that volatilities are annualized over."""


def price_shock(z: float, volatility: float, latency_s: float) -> float:
    """Adverse relative move at confidence ``z`` over ``latency_s`` seconds."""
    return z * volatility * math.sqrt(latency_s / YEAR_S)


def collateral_factor(shock: float) -> float:
    """What is left of collateral after an adverse move (a shock ≥ 100% leaves nothing)."""
    return max(0.0, 1.0 - shock)


def liability_factor(shock: float) -> float:
    """What debt grows to after an adverse move."""
    return 1.0 + shock
