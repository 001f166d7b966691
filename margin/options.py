"""Options as positions, valued by Black–Scholes with r = 0 (DESIGN §3 "Portfolio model").

An option is a signed ``size`` in units of the underlying ``asset``, a ``right`` (call or
put), a ``strike`` (USD), an ``expiry`` (unix seconds) and an ``implied_vol`` (annualized).
It settles, and is liquidated, on ``chain``. With τ = (expiry − now) / 31,536,000:

    d1 = (ln(S/K) + σ²τ/2) / (σ√τ),  d2 = d1 − σ√τ
    call = S·Φ(d1) − K·Φ(d2),  put = K·Φ(−d2) − S·Φ(−d1)
    delta = Φ(d1) (call) or Φ(d1) − 1 (put),  gamma = φ(d1) / (S·σ√τ),  vega = S·φ(d1)·√τ

At τ ≤ 0 (or a price of zero) an option is worth its intrinsic value (max(0, S − K) or
max(0, K − S)), its delta is 1/0 (call in / out of the money) or −1/0, and gamma and vega are 0.
``*_scalar`` functions are the plain-``math`` forms; the array forms use ``margin.normal`` and
agree within 1e-11 · S.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from margin.latency import YEAR_S
from margin.model import MarginInputError
from margin.normal import FloatArray, cdf, cdf_scalar, pdf, pdf_scalar

MAX_IMPLIED_VOL = 10.0
"""Annualized (1,000 %): beyond it an implied volatility is a typo."""


class Right(enum.StrEnum):
    """What an option gives its holder: to buy (call) or to sell (put) at the strike."""

    CALL = "call"
    PUT = "put"


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionPosition:
    """A European option held (``size > 0``) or written (``size < 0``) by ``account``."""

    account: str
    asset: str
    chain: str
    size: float
    right: Right
    strike: float
    expiry: int
    implied_vol: float

    def __post_init__(self) -> None:
        name = f"option {self.account}/{self.asset}"
        if not math.isfinite(self.size):
            raise MarginInputError(f"{name}: size {self.size}")
        if not (math.isfinite(self.strike) and self.strike > 0):
            raise MarginInputError(f"{name}: strike must be > 0 (got {self.strike})")
        if not (math.isfinite(self.implied_vol) and 0 < self.implied_vol <= MAX_IMPLIED_VOL):
            raise MarginInputError(
                f"{name}: implied_vol must be in (0, {MAX_IMPLIED_VOL:g}] (got {self.implied_vol})"
            )
        if self.expiry < 0:
            raise MarginInputError(f"{name}: expiry {self.expiry}")

    @property
    def key(self) -> tuple[str, str, Right, float, int]:
        """``(asset, chain, right, strike, expiry)``: one option line per account and key."""
        return (self.asset, self.chain, self.right, self.strike, self.expiry)


def years_to_expiry(expiry: float, now: float) -> float:
    """τ = (expiry − now) / 31,536,000 (negative once expired)."""
    return (expiry - now) / YEAR_S


def price_scalar(call: bool, spot: float, strike: float, vol: float, tau: float) -> float:
    """Black–Scholes value (r = 0) of one unit; intrinsic value at τ ≤ 0 (and at a price of
    zero, where a scenario of −100 % puts it)."""
    if tau <= 0 or spot <= 0:
        return max(0.0, spot - strike) if call else max(0.0, strike - spot)
    root = vol * math.sqrt(tau)
    d1 = (math.log(spot / strike) + 0.5 * vol * vol * tau) / root
    d2 = d1 - root
    if call:
        return spot * cdf_scalar(d1) - strike * cdf_scalar(d2)
    return strike * cdf_scalar(-d2) - spot * cdf_scalar(-d1)


def greeks_scalar(
    call: bool, spot: float, strike: float, vol: float, tau: float
) -> tuple[float, float, float]:
    """(delta, gamma, vega) of one unit (vega per 1.00 of volatility)."""
    if tau <= 0 or spot <= 0:
        itm = spot > strike if call else spot < strike
        return ((1.0 if call else -1.0) if itm else 0.0, 0.0, 0.0)
    root = vol * math.sqrt(tau)
    d1 = (math.log(spot / strike) + 0.5 * vol * vol * tau) / root
    delta = cdf_scalar(d1) - (0.0 if call else 1.0)
    density = pdf_scalar(d1)
    return delta, density / (spot * root), spot * density * math.sqrt(tau)


def price(
    call: FloatArray | np.ndarray,
    spot: FloatArray,
    strike: FloatArray,
    vol: FloatArray,
    tau: FloatArray,
) -> FloatArray:
    """``price_scalar`` elementwise (arguments broadcast; ``call`` is boolean)."""
    live = (tau > 0) & (spot > 0)
    safe_tau = np.where(live, tau, 1.0)
    root = vol * np.sqrt(safe_tau)
    d1 = (np.log(np.where(live, spot, strike) / strike) + 0.5 * vol * vol * safe_tau) / root
    d2 = d1 - root
    sign = np.where(call, 1.0, -1.0)
    # call: S·Φ(d1) − K·Φ(d2); put: K·Φ(−d2) − S·Φ(−d1) — one expression with the sign.
    value = sign * (spot * cdf(sign * d1) - strike * cdf(sign * d2))
    intrinsic = np.maximum(sign * (spot - strike), 0.0)
    out: FloatArray = np.where(live, value, intrinsic)
    return out


def greeks(
    call: FloatArray | np.ndarray,
    spot: FloatArray,
    strike: FloatArray,
    vol: FloatArray,
    tau: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``greeks_scalar`` elementwise: (delta, gamma, vega)."""
    live = (tau > 0) & (spot > 0)
    safe_tau = np.where(live, tau, 1.0)
    sqrt_tau = np.sqrt(safe_tau)
    root = vol * sqrt_tau
    d1 = (np.log(np.where(live, spot, strike) / strike) + 0.5 * vol * vol * safe_tau) / root
    density = pdf(d1)
    delta = cdf(d1) - np.where(call, 0.0, 1.0)
    itm = np.where(call, spot > strike, spot < strike)
    expired_delta = np.where(itm, np.where(call, 1.0, -1.0), 0.0)
    return (
        np.where(live, delta, expired_delta),
        np.where(live, density / (np.where(live, spot, 1.0) * root), 0.0),
        np.where(live, spot * density * sqrt_tau, 0.0),
    )
