"""EWMA correlation between risk groups, estimated from synchronous oracle returns.

The portfolio model aggregates group losses with ρ (DESIGN §3 "Portfolio model"); with
``margin.portfolio.correlation_source: ewma`` ρ comes from here. A group's return series is its
**representative asset**'s: the first asset listed in the group that the oracle prices (a lone
asset represents itself), so list a group's deepest, best-priced asset first. The choice is
fixed by the configuration, never made round by round: a return is always one asset's.

Per pair of groups, with ``a`` and ``b`` their representative assets and the same time-decayed
recursion as ``oracles.volatility`` (rates per second, decay ``w = λ ** (dt / interval_s)``,
so the memory is ~1/(1 − λ) intervals whatever the round rate and irregular steps are unbiased):

    rₐ = ln(pₐ / pₐ'), r_b = ln(p_b / p_b')         over the pair's step dt
    Sₐₐ ← w·Sₐₐ + (1 − w)·rₐ²/dt,   S_bb likewise,   Sₐ_b ← w·Sₐ_b + (1 − w)·rₐ·r_b/dt
    ρ   = Sₐ_b / √(Sₐₐ · S_bb),  clipped to [min_correlation, 1]

The three sums share their weights, so ρ is a weighted sample correlation (zero-mean, as
RiskMetrics) and lies in [−1, 1] by Cauchy–Schwarz; no seed or bias correction is needed.

**Synchronous returns.** Prices come from one oracle round (every asset at the round time).
An asset whose price is held (breaker, no quorum, stale) or missing in a round gives no return
to any of its pairs for that round: the pair's clock does not move, it keeps the last round in
which both its assets were fresh as its reference, and the next round where both are fresh
again yields one return over the whole gap (a move made while held is counted once, with its
true duration — as ``oracles.volatility`` counts a move after an ignored step). A round at or
before the pair's reference time is ignored.

**Long gaps.** A return over more than ``max_step_s`` (default an hour: a long hold, a daemon
stopped for a while) is not counted: weighted by its duration, that single product of two
returns would outweigh hours of returns before it and swing ρ on one draw. The pair's clock
restarts at that round (its prices become the reference) and the sums still decay for the time
that passed.

**Sampling step.** Sources refresh at their own pace, so over one 5-second round one asset has
often moved and the other not yet: short synchronous returns see too little co-movement and
bias ρ towards 0 (the Epps effect). A pair therefore takes a return only once ``sample_s``
(default 60 s) has passed since its reference round; the rounds in between are skipped the
same way (the next return spans them).

**Warm-up.** Each pair counts its effective number of returns, Kish's ``n = W₁² / W₂`` with
``W₁ = Σ weights`` and ``W₂ = Σ weights²`` under the same decay (n grows by one per return
while the window is young and levels off near 2/(1 − w)). Until ``n ≥ warmup_returns`` — or
while either variance is zero, or the estimate is not finite — the pair uses its static value
(``correlations`` / ``default_correlation``), never below ``min_correlation``. A warm
estimate is rounded up to six decimals (conservative; the engine then recomputes for changes
that show, not for the last bit of a decayed sum).

A pair's state names its two representative assets: a stored state for other assets (the
group's first asset changed) is dropped and the pair starts afresh.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from oracles.volatility import DEFAULT_INTERVAL_S, DEFAULT_LAMBDA

DEFAULT_SAMPLE_S = 60.0
"""Shortest step a pair takes a return over (see "Sampling step")."""
DEFAULT_MAX_STEP_S = 3_600.0
"""Longest step a return is counted over (see "Long gaps")."""
DEFAULT_WARMUP_RETURNS = 100
"""Effective returns a pair needs before its estimate replaces the static value (the standard
error of a sample correlation is about (1 − ρ²)/√n: ±0.07 at ρ = 0.5)."""
RHO_QUANTUM_INV = 1_000_000
"""An estimated ρ is rounded up to a multiple of 1/RHO_QUANTUM_INV (six decimals)."""
WARMUP_SLACK = 1e-6
"""Relative slack on the warm-up count: N returns in a young window count as N·(1 − ~ε²N²/12)
(ε = 1 − w per step), a hair under N, and must still be N."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PairSpec:
    """Two risk groups, the assets whose returns stand for them, and their static ρ."""

    groups: tuple[str, str]
    assets: tuple[str, str]
    static: float

    @property
    def name(self) -> str:
        """``"A/B"``, as ``margin.portfolio.correlations`` writes a pair."""
        return f"{self.groups[0]}/{self.groups[1]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PairState:
    """What an ``EwmaCorrelation`` needs to resume after a restart (sums are per second)."""

    assets: tuple[str, str]
    last_prices: tuple[float, float] | None = None
    last_at: float | None = None
    var_a: float = 0.0
    var_b: float = 0.0
    cov: float = 0.0
    weight: float = 0.0
    weight_sq: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PairEstimate:
    """The ρ a pair uses now: ``estimated`` false while it falls back to its static value."""

    pair: str
    correlation: float
    estimated: bool
    returns: float  # effective number of returns seen (Kish)


class EwmaCorrelation:
    """Time-decayed correlation of two price series sampled together (module docstring)."""

    def __init__(
        self,
        *,
        assets: tuple[str, str],
        lambda_: float = DEFAULT_LAMBDA,
        interval_s: float = DEFAULT_INTERVAL_S,
        sample_s: float = 0.0,
        max_step_s: float = DEFAULT_MAX_STEP_S,
        state: PairState | None = None,
    ) -> None:
        if not 0 < lambda_ < 1:
            raise ValueError(f"lambda_ must be in (0, 1) (got {lambda_!r})")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 (got {interval_s!r})")
        if not (math.isfinite(sample_s) and sample_s >= 0):
            raise ValueError(f"sample_s must be >= 0 (got {sample_s!r})")
        if not max_step_s > sample_s:
            raise ValueError(f"max_step_s must be > sample_s (got {max_step_s!r})")
        self._log_lambda = math.log(lambda_)
        self._interval_s = interval_s
        self._sample_s = sample_s
        self._max_step_s = max_step_s
        self._s = (
            state if state is not None and state.assets == assets else PairState(assets=assets)
        )

    @property
    def state(self) -> PairState:
        """A snapshot to persist and pass back as ``state=`` on restart."""
        return self._s

    @property
    def returns(self) -> float:
        """Effective number of returns behind the estimate, ``W₁² / W₂`` (0 before any)."""
        s = self._s
        return s.weight * s.weight / s.weight_sq if s.weight_sq > 0 else 0.0

    @property
    def correlation(self) -> float | None:
        """The raw estimate in [−1, 1]; ``None`` before any return, or while a variance is
        zero (a flat series has no correlation)."""
        s = self._s
        if not (s.var_a > 0 and s.var_b > 0):
            return None
        rho = s.cov / math.sqrt(s.var_a * s.var_b)
        if not math.isfinite(rho):
            return None
        return min(1.0, max(-1.0, rho))  # Cauchy–Schwarz, up to rounding

    def update(self, price_a: float, price_b: float, at: float) -> None:
        """Add the two assets' prices of one round at ``at`` (unix s), both fresh; a round
        less than ``sample_s`` after the reference is skipped (the next return spans it)."""
        for price in (price_a, price_b):
            if not (math.isfinite(price) and price > 0):
                raise ValueError(f"price must be finite and > 0 (got {price!r})")
        if not math.isfinite(at):
            raise ValueError(f"at must be finite (got {at!r})")
        s = self._s
        if s.last_prices is None or s.last_at is None:
            self._s = PairState(
                assets=s.assets,
                last_prices=(price_a, price_b),
                last_at=at,
                var_a=s.var_a,
                var_b=s.var_b,
                cov=s.cov,
                weight=s.weight,
                weight_sq=s.weight_sq,
            )
            return
        dt = at - s.last_at
        if dt <= 0 or dt < self._sample_s:
            return
        r_a = math.log(price_a / s.last_prices[0])
        r_b = math.log(price_b / s.last_prices[1])
        keep = math.exp(self._log_lambda * dt / self._interval_s)
        new = -math.expm1(self._log_lambda * dt / self._interval_s)  # 1 − keep, exactly
        if dt > self._max_step_s:  # time passed, but this one return is not counted
            r_a = r_b = new = 0.0
        self._s = PairState(
            assets=s.assets,
            last_prices=(price_a, price_b),
            last_at=at,
            var_a=keep * s.var_a + new * (r_a * r_a / dt),
            var_b=keep * s.var_b + new * (r_b * r_b / dt),
            cov=keep * s.cov + new * (r_a * r_b / dt),
            weight=keep * s.weight + new,
            weight_sq=keep * keep * s.weight_sq + new * new,
        )


class CorrelationEstimator:
    """ρ of every pair of risk groups, from oracle rounds; static values until warm."""

    def __init__(
        self,
        *,
        pairs: Sequence[PairSpec],
        min_correlation: float = 0.0,
        warmup_returns: float = DEFAULT_WARMUP_RETURNS,
        lambda_: float = DEFAULT_LAMBDA,
        interval_s: float = DEFAULT_INTERVAL_S,
        sample_s: float = DEFAULT_SAMPLE_S,
        max_step_s: float = DEFAULT_MAX_STEP_S,
        state: Mapping[str, PairState] | None = None,
    ) -> None:
        if not 0 <= min_correlation <= 1:
            raise ValueError(f"min_correlation must be in [0, 1] (got {min_correlation!r})")
        if not warmup_returns >= 1:
            raise ValueError(f"warmup_returns must be >= 1 (got {warmup_returns!r})")
        for spec in pairs:
            if not 0 <= spec.static <= 1:
                raise ValueError(f"{spec.name}: static correlation must be in [0, 1]")
        names = [spec.name for spec in pairs]
        if len(set(names)) != len(names):
            raise ValueError("pairs must be unique")
        resumed = state or {}
        self._specs = {spec.name: spec for spec in pairs}
        self._pairs = {
            spec.name: EwmaCorrelation(
                assets=spec.assets,
                lambda_=lambda_,
                interval_s=interval_s,
                sample_s=sample_s,
                max_step_s=max_step_s,
                state=resumed.get(spec.name),
            )
            for spec in pairs
        }
        self._min = min_correlation
        self._warmup = warmup_returns
        self._estimates: list[PairEstimate] | None = None  # until the next update

    @property
    def assets(self) -> set[str]:
        """The representative assets whose prices the estimator reads."""
        return {a for spec in self._specs.values() for a in spec.assets}

    def update(self, prices: Mapping[str, float | None], at: float) -> None:
        """One oracle round at ``at``: asset → its fresh price, or ``None`` (or absent) when
        it is held or unpriced this round (its pairs then skip the round)."""
        self._estimates = None
        for name, spec in self._specs.items():
            a, b = (prices.get(asset) for asset in spec.assets)
            if a is not None and b is not None:
                self._pairs[name].update(a, b, at)

    def estimates(self) -> list[PairEstimate]:
        """Every pair's ρ in use, in the order the pairs were given (computed once per
        update: the service, the metrics and the engine loop all read it)."""
        if self._estimates is not None:
            return list(self._estimates)
        out = []
        for name, spec in self._specs.items():
            pair = self._pairs[name]
            rho, returns = pair.correlation, pair.returns
            if rho is not None and returns >= self._warmup * (1 - WARMUP_SLACK):
                # up to the next millionth: conservative, and the engine recomputes only
                # for a change that shows, not for the last bit of a decayed sum
                rounded = math.ceil(rho * RHO_QUANTUM_INV) / RHO_QUANTUM_INV
                used, estimated = min(1.0, max(self._min, rounded)), True
            else:
                used, estimated = max(self._min, spec.static), False
            out.append(
                PairEstimate(pair=name, correlation=used, estimated=estimated, returns=returns)
            )
        self._estimates = out
        return list(out)

    def correlations(self) -> dict[tuple[str, str], float]:
        """(group, group) → ρ in use, one entry per pair (either order means the same)."""
        return {self._specs[e.pair].groups: e.correlation for e in self.estimates()}

    @property
    def state(self) -> dict[str, PairState]:
        """Pair name → state, to persist and pass back as ``state=`` on restart."""
        return {name: pair.state for name, pair in self._pairs.items()}


def group_pairs(
    groups: Iterable[tuple[str, str]], static: Mapping[frozenset[str], float], default: float
) -> list[PairSpec]:
    """Every pair of ``groups`` (name, representative asset), in order, with its static ρ:
    ``static[{g, h}]`` or ``default``."""
    listed = list(groups)
    return [
        PairSpec(
            groups=(g, h),
            assets=(a, b),
            static=static.get(frozenset((g, h)), default),
        )
        for i, (g, a) in enumerate(listed)
        for h, b in listed[i + 1 :]
    ]
