"""An independent, straightforward portfolio-margin implementation, read off DESIGN §3.

It imports nothing from ``margin``: loops, dicts and the ``math`` module only, one account at a
time, in USD floats. Tests compare the numpy engine with it (on random books, and through the
real daemon), so it is written the way a reader checks the definition, not the way it runs fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

YEAR = 31_536_000.0


@dataclass
class Setup:
    """Everything the definition reads besides the account: groups, grid, correlations."""

    groups: dict[str, tuple[list[str], float]] = field(default_factory=dict)  # name → (assets, R0)
    default_scan_range: float = 0.15
    price_steps: int = 4
    extreme_multiple: float = 2.0
    extreme_weight: float = 0.35
    vol_up: float = 0.5
    vol_down: float = 0.3
    correlations: dict[tuple[str, str], float] = field(default_factory=dict)
    default_correlation: float = 1.0
    z: float = 2.33
    prices: dict[str, float] = field(default_factory=dict)
    volatility: dict[str, float] = field(default_factory=dict)
    floors: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)  # chain → seconds
    now: float = 0.0


@dataclass
class Book:
    """One account: holdings (asset, chain, signed USD value: debt negative), perps (asset,
    chain, size, entry) and options (asset, chain, size, right, strike, expiry, iv)."""

    holdings: list[tuple[str, str, float]] = field(default_factory=list)
    perps: list[tuple[str, str, float, float]] = field(default_factory=list)
    options: list[tuple[str, str, float, str, float, float, float]] = field(default_factory=list)


@dataclass
class Answer:
    """What the definition says about one account."""

    collateral: float
    liability: float
    pnl: float
    options_value: float
    maintenance: float
    maintenance_latency: float
    health: float
    health_latency: float
    shortfall: float
    loss: dict[str, float]
    loss_latency: dict[str, float]
    delta: dict[str, float]
    horizon: dict[str, float]
    var_99: float
    es_975: float


def phi_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(right: str, spot: float, strike: float, vol: float, tau: float) -> float:
    if tau <= 0 or spot <= 0:
        return max(0.0, spot - strike) if right == "call" else max(0.0, strike - spot)
    d1 = (math.log(spot / strike) + vol * vol * tau / 2) / (vol * math.sqrt(tau))
    d2 = d1 - vol * math.sqrt(tau)
    if right == "call":
        return spot * phi_cdf(d1) - strike * phi_cdf(d2)
    return strike * phi_cdf(-d2) - spot * phi_cdf(-d1)


def bs_delta(right: str, spot: float, strike: float, vol: float, tau: float) -> float:
    if tau <= 0 or spot <= 0:
        if right == "call":
            return 1.0 if spot > strike else 0.0
        return -1.0 if spot < strike else 0.0
    d1 = (math.log(spot / strike) + vol * vol * tau / 2) / (vol * math.sqrt(tau))
    return phi_cdf(d1) if right == "call" else phi_cdf(d1) - 1.0


def group_of(setup: Setup, asset: str) -> str:
    for name, (assets, _) in setup.groups.items():
        if asset in assets:
            return name
    return asset


def scan_range(setup: Setup, group: str) -> float:
    if group in setup.groups:
        assets, base = setup.groups[group]
    else:
        assets, base = [group], setup.default_scan_range
    sigma = max(setup.volatility.get(a, 0.0) for a in assets)
    floor = max(setup.floors.get(a, 0.0) for a in assets)
    if floor <= 0:
        return base
    return base * max(1.0, sigma / floor)


def group_sigma(setup: Setup, group: str) -> float:
    assets = setup.groups[group][0] if group in setup.groups else [group]
    return max(setup.volatility.get(a, 0.0) for a in assets)


def rho(setup: Setup, a: str, b: str) -> float:
    if a == b:
        return 1.0
    if (a, b) in setup.correlations:
        return setup.correlations[(a, b)]
    if (b, a) in setup.correlations:
        return setup.correlations[(b, a)]
    return setup.default_correlation


def combine(setup: Setup, losses: dict[str, float]) -> float:
    total = 0.0
    for g, lg in losses.items():
        for h, lh in losses.items():
            total += rho(setup, g, h) * lg * lh
    return math.sqrt(max(total, 0.0))


def evaluate(setup: Setup, book: Book) -> Answer:
    """The definition, literally."""
    collateral = sum(v for _, _, v in book.holdings if v > 0)
    liability = -sum(v for _, _, v in book.holdings if v < 0)
    pnl = sum(size * (setup.prices[a] - entry) for a, _, size, entry in book.perps)
    options_value = 0.0
    for a, _, size, right, strike, expiry, iv in book.options:
        tau = (expiry - setup.now) / YEAR
        options_value += size * black_scholes(right, setup.prices[a], strike, iv, tau)
    # exposures and horizons per group
    exposure: dict[str, float] = {}
    horizon: dict[str, float] = {}

    def touch(asset: str, chain: str, amount: float, live: bool) -> str:
        g = group_of(setup, asset)
        exposure[g] = exposure.get(g, 0.0) + amount
        horizon.setdefault(g, 0.0)
        if live:
            horizon[g] = max(horizon[g], setup.latency[chain])
        return g

    for a, c, v in book.holdings:
        touch(a, c, v, v != 0)
    for a, c, size, _ in book.perps:
        touch(a, c, size * setup.prices[a], size != 0)
    options_by_group: dict[str, list[tuple[str, float, str, float, float, float]]] = {}
    for a, c, size, right, strike, expiry, iv in book.options:
        g = touch(a, c, 0.0, size != 0)
        tau = (expiry - setup.now) / YEAR
        options_by_group.setdefault(g, []).append((a, size, right, strike, iv, tau))

    def group_pnl(g: str, s: float, v: float) -> float:
        total = exposure[g] * s
        for a, size, right, strike, iv, tau in options_by_group.get(g, []):
            spot = setup.prices[a]
            shocked = black_scholes(right, spot * (1 + s), strike, iv * (1 + v), tau)
            total += size * (shocked - black_scholes(right, spot, strike, iv, tau))
        return total

    n = setup.price_steps
    loss: dict[str, float] = {}
    loss_lat: dict[str, float] = {}
    delta: dict[str, float] = {}
    for g in exposure:
        r = scan_range(setup, g)
        worst = 0.0
        for j in range(-n, n + 1):
            s = max(-1.0, r * j / n)
            for v in (-setup.vol_down, 0.0, setup.vol_up):
                worst = max(worst, -group_pnl(g, s, v))
        for sign in (-1, 1):
            s = max(-1.0, sign * setup.extreme_multiple * r)
            worst = max(worst, -setup.extreme_weight * group_pnl(g, s, 0.0))
        loss[g] = worst
        shock = setup.z * group_sigma(setup, g) * math.sqrt(horizon[g] / YEAR)
        worst_lat = 0.0
        for j in range(-n, n + 1):
            worst_lat = max(worst_lat, -group_pnl(g, max(-1.0, shock * j / n), 0.0))
        loss_lat[g] = worst_lat
        d = exposure[g]
        for a, size, right, strike, iv, tau in options_by_group.get(g, []):
            spot = setup.prices[a]
            d += size * bs_delta(right, spot, strike, iv, tau) * spot
        delta[g] = d
    m = combine(setup, loss)
    m_lat = combine(setup, loss_lat)
    equity = collateral + pnl + options_value
    requirement = liability + m
    health = math.inf if requirement == 0 else max(0.0, equity) / requirement
    health_lat = math.inf if requirement == 0 else max(0.0, equity - m_lat) / requirement
    t = max(horizon.values(), default=0.0)
    var_sum = 0.0
    for g in delta:
        for h in delta:
            sg, sh = group_sigma(setup, g), group_sigma(setup, h)
            var_sum += rho(setup, g, h) * delta[g] * delta[h] * sg * sh
    sigma_p = math.sqrt(max(var_sum, 0.0) * t / YEAR)
    return Answer(
        collateral=collateral,
        liability=liability,
        pnl=pnl,
        options_value=options_value,
        maintenance=m,
        maintenance_latency=m_lat,
        health=health,
        health_latency=health_lat,
        shortfall=max(0.0, requirement - equity),
        loss=loss,
        loss_latency=loss_lat,
        delta=delta,
        horizon=horizon,
        var_99=2.3263 * sigma_p,
        es_975=sigma_p * math.exp(-(1.96**2) / 2) / math.sqrt(2 * math.pi) / 0.025,
    )
