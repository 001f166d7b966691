"""The standard normal distribution for numpy arrays: density and cumulative distribution.

numpy has no ``erf``. ``cdf`` interpolates a table of ``Φ`` built once from ``math.erf`` with
cubic Hermite polynomials, whose slopes are the exact density: with a step of
``1/TABLE_STEPS_PER_UNIT`` the error is below ``h⁴/384 · max|Φ⁗| < 1e-11`` everywhere, far
under a cent on any option we value, at a fraction of the cost of a rational approximation.
Beyond ``±TABLE_LIMIT`` the tails are below 1e-23 and clamp to 0 and 1. ``cdf_scalar`` and
``pdf_scalar`` are the plain-``math`` forms (the reference side of the tests).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

TABLE_LIMIT = 10.0
"""|x| beyond which Φ(x) is 0 or 1 in float64 terms (Φ(−10) ≈ 7.6e-24)."""
TABLE_STEPS_PER_UNIT = 128
"""Table points per unit of x: the interpolation error scales with the step to the fourth."""
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def cdf_scalar(x: float) -> float:
    """Φ(x) = (1 + erf(x / √2)) / 2."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def pdf_scalar(x: float) -> float:
    """φ(x) = exp(−x² / 2) / √(2π)."""
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _table() -> tuple[FloatArray, FloatArray]:
    points = int(2 * TABLE_LIMIT * TABLE_STEPS_PER_UNIT) + 1
    xs = np.linspace(-TABLE_LIMIT, TABLE_LIMIT, points)
    values = np.array([cdf_scalar(float(x)) for x in xs])
    return values, pdf(xs)


def pdf(x: FloatArray) -> FloatArray:
    """φ elementwise."""
    out: FloatArray = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return out


_VALUES, _SLOPES = _table()
_H = 1.0 / TABLE_STEPS_PER_UNIT
_LAST = len(_VALUES) - 2


def cdf(x: FloatArray) -> FloatArray:
    """Φ elementwise (cubic Hermite on the table; 0 and 1 beyond ``±TABLE_LIMIT``)."""
    u = (np.clip(x, -TABLE_LIMIT, TABLE_LIMIT) + TABLE_LIMIT) * TABLE_STEPS_PER_UNIT
    i = np.minimum(u.astype(np.intp), _LAST)
    t = u - i
    y0, y1 = _VALUES[i], _VALUES[i + 1]
    m0, m1 = _SLOPES[i] * _H, _SLOPES[i + 1] * _H
    t2 = t * t
    t3 = t2 * t
    # Hermite basis: h00 = 2t³ − 3t² + 1, h10 = t³ − 2t² + t, h01 = −2t³ + 3t², h11 = t³ − t²
    out: FloatArray = (
        y0 + (y1 - y0) * (3.0 * t2 - 2.0 * t3) + m0 * (t3 - 2.0 * t2 + t) + m1 * (t3 - t2)
    )
    return out
