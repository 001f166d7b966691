"""EWMA volatility of an asset's accepted prices, annualized, never below the asset's floor.

RiskMetrics' recursion ``σ²ₜ = λ·σ²ₜ₋₁ + (1 − λ)·r²ₜ`` assumes one return per day. Oracle
rounds arrive every few seconds and irregularly (held rounds add nothing), so the recursion
here runs on the *variance rate* (per second) and decays by elapsed time rather than by
sample count:

    w   = λ ** (dt / interval_s)
    v  ← w·v + (1 − w)·r²/dt          r = ln(pₜ / pₜ₋₁), dt = seconds between the two prices
    σ   = max(floor, √(v · SECONDS_PER_YEAR))

With ``interval_s`` = one day this is RiskMetrics for daily samples; for short steps
``(1 − w)/dt → −ln λ / interval_s``, so each return adds about ``−ln λ · r² / interval_s``
and the memory is ~1/(1 − λ) days however often rounds run (a per-sample λ would forget
everything within a minute at 5-second rounds). For a random walk with variance rate ``v``,
``r²/dt`` has expectation ``v`` at any sampling step, so the estimate is unbiased.

Zero or negative ``dt`` carries no time to annualize over: that sample is ignored and the
previous price stays the reference, so the move is counted with the next one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

SECONDS_PER_YEAR = 31_536_000.0  # 365 days
DEFAULT_LAMBDA = 0.94
DEFAULT_INTERVAL_S = 86_400.0  # λ is quoted per day (RiskMetrics)


@dataclass(frozen=True, slots=True, kw_only=True)
class VolatilityState:
    """What an ``EwmaVolatility`` needs to resume after a restart."""

    variance_per_s: float | None
    last_price: float | None
    last_at: float | None


class EwmaVolatility:
    """Exponentially weighted volatility of one price series (see the module docstring).

    Before any return is seen the estimate starts from the floor (``floor² / year``), so a
    fresh daemon reports the configured minimum instead of a noisy first sample; with a zero
    floor the first return seeds the variance instead.
    """

    def __init__(
        self,
        *,
        lambda_: float = DEFAULT_LAMBDA,
        floor: float = 0.0,
        interval_s: float = DEFAULT_INTERVAL_S,
        state: VolatilityState | None = None,
    ) -> None:
        if not 0 < lambda_ < 1:
            raise ValueError(f"lambda_ must be in (0, 1) (got {lambda_!r})")
        if not floor >= 0:
            raise ValueError(f"floor must be >= 0 (got {floor!r})")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 (got {interval_s!r})")
        self._lambda = lambda_
        self._floor = floor
        self._interval_s = interval_s
        if state is None:
            seed = floor * floor / SECONDS_PER_YEAR if floor > 0 else None
            state = VolatilityState(variance_per_s=seed, last_price=None, last_at=None)
        self._variance_per_s = state.variance_per_s
        self._last_price = state.last_price
        self._last_at = state.last_at

    @property
    def floor(self) -> float:
        """The annualized floor the estimate never goes below."""
        return self._floor

    @property
    def annualized(self) -> float:
        """Current annualized volatility (a fraction: 0.5 = 50 %), never below the floor."""
        if self._variance_per_s is None:
            return self._floor
        return max(self._floor, math.sqrt(self._variance_per_s * SECONDS_PER_YEAR))

    @property
    def state(self) -> VolatilityState:
        """A snapshot to persist and pass back as ``state=`` on restart."""
        return VolatilityState(
            variance_per_s=self._variance_per_s,
            last_price=self._last_price,
            last_at=self._last_at,
        )

    def update(self, price: Decimal | float, at: float) -> float:
        """Add an accepted ``price`` observed at ``at`` (unix s); return the new estimate."""
        value = float(price)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"price must be finite and > 0 (got {price!r})")
        if not math.isfinite(at):
            raise ValueError(f"at must be finite (got {at!r})")
        if self._last_price is None or self._last_at is None:
            self._last_price, self._last_at = value, at
            return self.annualized
        dt = at - self._last_at
        if dt <= 0:
            return self.annualized
        log_return = math.log(value / self._last_price)
        sample = log_return * log_return / dt
        if self._variance_per_s is None:
            self._variance_per_s = sample
        else:
            weight = self._lambda ** (dt / self._interval_s)
            self._variance_per_s = weight * self._variance_per_s + (1.0 - weight) * sample
        self._last_price, self._last_at = value, at
        return self.annualized
