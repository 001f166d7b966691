"""An independent test oracle of the margin formulas (DESIGN §3), in exact rational arithmetic.

Why it exists: the numpy engine (``margin.engine`` + ``margin.kernel``, what the daemon runs)
and the pure-Python reference (``margin.health``) share their helpers (latency shocks, price
bands, flags, tier compilation), so comparing them with each other cannot catch a bug in a
helper. This module is written from DESIGN §3 ("Health", "Liquidation latency risk", "Flags
and the actionable rule", "Margin models" 1 and 2), the README ("What the numbers mean") and
the documented conventions of ``margin.model``. It imports nothing from ``margin`` or any
other product package and takes its own plain dataclasses (``tests/marginkit.py`` adapts the
engine's inputs).

Numbers. Every input is taken at its exact value: raw balances are ints, a float is the binary
number the engine receives (``Fraction(x)``). All arithmetic is exact; the square root of the
latency shock is bracketed to ``2**-SQRT_BITS``.

Where float64 cannot decide (``tests/margin_oracle_numbers.py``): every rounded quantity is an
interval ``Units(lo, hi)`` of what the engine may report, exact (``lo == hi``) unless the exact
argument of a rounding lies within the engine's float error of a unit boundary, where one unit
is allowed. Sums add intervals; health is bounded by the corners of its numerator and
denominator, and flags that depend on an undecided comparison are only "possible".

Conventions the spec leaves open, read from the product's documentation (marked "convention
Cn" where used; the implementation here is our own, from the formula):

- C1 rounding per line (``margin.valuation``): each holding's value, weighted value and
  shocked value, each position's PnL, notional and requirement is rounded once, against the
  account (collateral and PnL down, debt, notional and requirement up); sums are of lines.
- C2 forgiveness (``margin.valuation.SNAP``): a value within ``FORGIVE`` (relative) of the
  next whole unit *in the account's favour* counts as that unit, so that 20,000 USD x 0.825
  (a weight not exact in binary) does not lose a cent.
- C3 saturation (``margin.valuation.ROW_CAP_UNITS``): one line's |value|, |PnL| and notional
  saturate at ``ROW_CAP`` units.
- C4 tier bounds, configured as decimal USD, compile to whole value units rounded down
  (``margin.tiers.usd_to_units``); slices are cumulative (``margin.model.Tier``).
- C5 tiered buckets (``margin.health``): in model ``tiered`` the collateral tokens with tiers
  are sliced on the account's aggregate value of the tokens sharing asset and schedule (across
  chains); the bucket's shocked value is its weighted value times the value-weighted mean of
  ``(1 - shock)`` over its holdings (each holding's shocked value rounded down, C1). Other
  tokens, and every token in model ``weighted``, count at their flat weight.
- C6 a shock of 100 % or more leaves nothing (``margin.latency``): collateral and long marks
  use ``max(0, 1 - shock)``; debt and short marks ``1 + shock``.
- C7 a position's requirement is sliced on its rounded notional (``margin.health``).
- C8 flags (``margin.health``, ``margin.valuation``): zero balances and zero-size positions
  flag nothing; an asset without a price counts for nothing and flags STALE_PRICE; a DEGRADED
  price is a held last good price, i.e. STALE_PRICE; a position's latency horizon and chain
  flags are those of its settlement chain.
- C9 negative equity is health 0 even without any requirement (``margin.health.health_ratio``).

Failed reads (README "What the numbers mean", "Failed reads"): a read is a state, never a value.

- R1 a holding whose latest read failed counts at its last good raw balance and flags the
  account ``READ_FAILED``, a held reason (even when that last good balance is zero).
- R2 a holding never read successfully counts as zero; for a liability that is not the
  conservative side, so the account's health is unknown: ``DEBT_UNKNOWN`` (with
  ``READ_FAILED``), health and health_latency NaN, never ``LIQUIDATABLE`` nor
  ``LATENCY_RISK``, never actionable; its money (and shortfall) is what is known so far.
- R3 a token whose decimals are unknown cannot be valued: every read of it counts as a holding
  never read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from tests.margin.margin_oracle_numbers import (
    ZERO,
    Schedule,
    Units,
    round_down,
    round_up,
    shock_span,
    shocked_factors,
    tiered,
)

HELD_REASONS = frozenset({"STALE_PRICE", "ORACLE_TRIPPED", "SEQUENCER_DOWN", "READ_FAILED"})
"""DESIGN §3 and README "Held": the flags that keep a liquidatable account from being
actionable. A new held reason is one more name here (and, if an input raises it, one more
entry below)."""
STATUS_FLAGS: Mapping[str, frozenset[str]] = {
    "OK": frozenset(),
    "DEGRADED": frozenset({"STALE_PRICE"}),  # C8
    "STALE": frozenset({"STALE_PRICE"}),
    "TRIPPED": frozenset({"ORACLE_TRIPPED"}),
}
"""The flag a price status puts on every account using the asset."""
CHAIN_FLAGS: Mapping[str, str] = {"stale": "STALE_CHAIN", "sequencer_down": "SEQUENCER_DOWN"}
"""``Chain`` attribute → the flag it puts on every account holding something on the chain."""
NO_PRICE_FLAGS = frozenset({"STALE_PRICE"})  # C8
FAILED_READ_FLAGS = frozenset({"READ_FAILED"})  # R1
UNKNOWN_DEBT_FLAGS = frozenset({"READ_FAILED", "DEBT_UNKNOWN"})  # R2
UNKNOWN = (math.nan, math.nan)
"""Health bounds of an account whose health is unknown (R2)."""


# ---- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """An ERC-20 on one chain: collateral (weight in [0, 1], optional tiers) or debt."""

    chain: str
    asset: str
    collateral: bool
    weight: float
    decimals: int | None  # None: unknown, nothing of it can be valued (R3)
    tiers: Schedule = ()


@dataclass(frozen=True)
class Read:
    """A holding's read state: its last good raw balance (None: never read successfully) and
    whether its latest read failed (R1, R2)."""

    raw: int | None
    failed: bool = False


@dataclass(frozen=True)
class Price:
    """An asset's price band (collateral and longs at ``low``, debt and shorts at ``high``)."""

    low: float
    high: float
    status: str = "OK"
    volatility: float = 0.0


@dataclass(frozen=True)
class Chain:
    """A chain's liquidation horizon and status."""

    latency_s: float
    stale: bool = False
    sequencer_down: bool = False


@dataclass(frozen=True)
class Perp:
    """A perp position in ``asset`` settled on ``chain``, with tiered MMR by notional."""

    asset: str
    chain: str
    size: float
    entry: float
    mmr_tiers: Schedule


@dataclass(frozen=True)
class Market:
    """Everything but the accounts: tokens by (chain, token), prices by asset, chains by name."""

    tokens: Mapping[tuple[str, str], Token]
    prices: Mapping[str, Price]
    chains: Mapping[str, Chain]
    tiered: bool = False
    z: float = 2.33
    value_decimals: int = 2


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldingLine:
    """One holding: its value, and its weighted value when flat (in a tiered bucket: None,
    with the bucket's key). ``raw`` is None for a holding never read successfully."""

    raw: int | None
    value: Units
    weighted: Units | None
    bucket: tuple[str, Schedule] | None
    flags: frozenset[str]


@dataclass(frozen=True)
class PerpLine:
    """One position: notional, PnL and requirement at the adverse end of the band."""

    notional: Units
    pnl: Units
    maintenance: Units
    flags: frozenset[str]


@dataclass(frozen=True)
class Health:
    """Everything DESIGN §3 says about one account, in value units.

    ``health`` and ``health_latency`` are exact rational bounds (``math.inf`` without any
    requirement; ``UNKNOWN``, NaN, when ``health_known`` is false, R2). ``flags`` are certain;
    ``possible_flags`` ⊇ ``flags`` adds those float64 may or may not raise (only when a bound
    straddles 1); ``actionable`` is None when undecided.
    """

    collateral_value: Units
    weighted_collateral: Units
    liability_value: Units
    weighted_liability: Units
    unrealized_pnl: Units
    maintenance: Units
    shortfall: Units
    health: tuple[Fraction | float, Fraction | float]
    health_latency: tuple[Fraction | float, Fraction | float]
    flags: frozenset[str]
    possible_flags: frozenset[str]
    actionable: bool | None
    health_known: bool
    holdings: Mapping[tuple[str, str], HoldingLine]
    buckets: Mapping[tuple[str, Schedule], Units]  # weighted value of each tiered bucket
    perps: Mapping[str, PerpLine]

    @property
    def money(self) -> dict[str, Units]:
        """The money columns by their ``HealthTable`` names."""
        return {
            "collateral_value": self.collateral_value,
            "weighted_collateral": self.weighted_collateral,
            "liability_value": self.liability_value,
            "weighted_liability": self.weighted_liability,
            "unrealized_pnl": self.unrealized_pnl,
            "maintenance": self.maintenance,
            "shortfall": self.shortfall,
        }

    @property
    def exact(self) -> bool:
        """Whether float64 can decide everything about this account."""
        decided = self.flags == self.possible_flags and self.actionable is not None
        return decided and all(u.exact for u in self.money.values())


# ---- evaluation -----------------------------------------------------------------------------


@dataclass
class _Totals:
    collateral: Units = ZERO
    weighted_collateral: Units = ZERO
    liability: Units = ZERO
    weighted_liability: Units = ZERO
    pnl: Units = ZERO
    maintenance: Units = ZERO
    collateral_lat: Units = ZERO
    liability_lat: Units = ZERO
    pnl_lat: Units = ZERO
    maintenance_lat: Units = ZERO


@dataclass
class _Bucket:
    value: Units = ZERO
    shocked: Units = ZERO


def price_flags(price: Price | None) -> frozenset[str]:
    """Flags an asset's price (or its absence, C8) puts on the accounts using it."""
    return NO_PRICE_FLAGS if price is None else STATUS_FLAGS[price.status]


def chain_flags(chain: Chain) -> frozenset[str]:
    """Flags a chain's status puts on the accounts holding something on it."""
    return frozenset(flag for attr, flag in CHAIN_FLAGS.items() if getattr(chain, attr))


def read_state(token: Token, holding: int | Read) -> Read:
    """What a holding counts as: a plain int is a good read; a token without decimals makes
    every read one never read successfully (R3)."""
    read = holding if isinstance(holding, Read) else Read(holding)
    return Read(None, failed=True) if token.decimals is None else read


def read_flags(token: Token, read: Read) -> frozenset[str]:
    """Flags a holding's read state puts on the account (R1, R2)."""
    if not read.failed:
        return frozenset()
    return UNKNOWN_DEBT_FLAGS if read.raw is None and not token.collateral else FAILED_READ_FLAGS


def evaluate(
    market: Market, holdings: Mapping[tuple[str, str], int | Read], perps: Sequence[Perp] = ()
) -> Health:
    """Health, shortfall, latency risk, flags and lines of one account (DESIGN §3).

    ``holdings`` maps (chain, token) to raw balances (good reads) or ``Read`` states; one perp
    per asset.
    """
    totals = _Totals()
    flags: set[str] = set()
    lines, open_buckets = _value_holdings(market, holdings, totals, flags)
    buckets = _settle_buckets(market, open_buckets, totals)
    perp_lines = {p.asset: _value_perp(market, p, totals, flags) for p in perps}
    num = totals.weighted_collateral + totals.pnl
    den = totals.weighted_liability + totals.maintenance
    num_lat = totals.collateral_lat + totals.pnl_lat
    den_lat = totals.liability_lat + totals.maintenance_lat
    health, latency = _ratio_bounds(num, den), _ratio_bounds(num_lat, den_lat)
    known = "DEBT_UNKNOWN" not in flags  # R2: nothing is claimed about an unknown health
    sure, maybe = set(flags), set(flags)
    if not known:
        health = latency = UNKNOWN
    elif health[1] < 1:  # DESIGN §3: liquidatable ⇔ health < 1
        sure.add("LIQUIDATABLE")
    if known and health[0] < 1:
        maybe.add("LIQUIDATABLE")
    if known and health[0] >= 1 > latency[1]:  # DESIGN §3: health ≥ 1 > health_latency
        sure.add("LATENCY_RISK")
    if known and health[1] >= 1 > latency[0]:
        maybe.add("LATENCY_RISK")
    held = bool(HELD_REASONS & flags)
    actionable: bool | None = ("LIQUIDATABLE" in sure) and not held
    if ("LIQUIDATABLE" in maybe) != ("LIQUIDATABLE" in sure) and not held:
        actionable = None
    return Health(
        collateral_value=totals.collateral,
        weighted_collateral=totals.weighted_collateral,
        liability_value=totals.liability,
        weighted_liability=totals.weighted_liability,
        unrealized_pnl=totals.pnl,
        maintenance=totals.maintenance,
        shortfall=Units(max(0, den.lo - num.hi), max(0, den.hi - num.lo)),
        health=health,
        health_latency=latency,
        flags=frozenset(sure),
        possible_flags=frozenset(maybe),
        actionable=actionable,
        health_known=known,
        holdings=lines,
        buckets=buckets,
        perps=perp_lines,
    )


def _ratio(equity: int, requirement: int) -> Fraction | float:
    """``max(0, equity) / requirement``, ∞ without requirement (DESIGN §3, ``margin.model``).

    Negative equity is 0 even without a requirement: DESIGN's "∞ when L + M = 0" assumes
    equity ≥ 0, and the latency shock can break that (a shock of 100 % takes a long's mark,
    hence its notional and requirement, to 0 and leaves its loss). Convention C9.
    """
    if equity < 0:
        return Fraction(0)
    return math.inf if requirement == 0 else Fraction(equity, requirement)


def _ratio_bounds(num: Units, den: Units) -> tuple[Fraction | float, Fraction | float]:
    # non-decreasing in the equity, non-increasing in the requirement
    return _ratio(num.lo, den.hi), _ratio(num.hi, den.lo)


def _value_holdings(
    market: Market,
    holdings: Mapping[tuple[str, str], int | Read],
    totals: _Totals,
    flags: set[str],
) -> tuple[dict[tuple[str, str], HoldingLine], dict[tuple[str, Schedule], _Bucket]]:
    """Add every holding to ``totals``; return its lines and the open tiered buckets."""
    scale = 10**market.value_decimals
    lines: dict[tuple[str, str], HoldingLine] = {}
    buckets: dict[tuple[str, Schedule], _Bucket] = {}
    for key, holding in holdings.items():
        token = market.tokens[key]
        chain = market.chains[token.chain]
        price = market.prices.get(token.asset)
        read = read_state(token, holding)
        raw = read.raw or 0  # R1: the last good balance; R2: never read counts as zero
        line_flags = price_flags(price) | chain_flags(chain) if raw > 0 else frozenset[str]()
        line_flags |= read_flags(token, read)
        flags |= line_flags
        value, volatility = ZERO, 0.0
        if price is not None and token.decimals is not None:  # C8: no price, no value
            unit_price = Fraction(price.low if token.collateral else price.high)
            x = Fraction(raw, 10**token.decimals) * unit_price * scale
            rounding = round_down if token.collateral else round_up
            value, volatility = rounding((x, x), capped=True), price.volatility
        keep, grow = shocked_factors(shock_span(market.z, volatility, chain.latency_s))
        weight = Fraction(token.weight)
        if token.collateral and market.tiered and token.tiers:  # C5
            bucket_key = (token.asset, token.tiers)
            bucket = buckets.setdefault(bucket_key, _Bucket())
            bucket.value += value
            bucket.shocked += round_down((value.lo * keep[0], value.hi * keep[1]))
            totals.collateral += value
            lines[key] = HoldingLine(read.raw, value, None, bucket_key, line_flags)
        elif token.collateral:
            weighted = round_down((value.lo * weight, value.hi * weight))
            shocked = round_down((weighted.lo * keep[0], weighted.hi * keep[1]))
            totals.collateral += value
            totals.weighted_collateral += weighted
            totals.collateral_lat += shocked
            lines[key] = HoldingLine(read.raw, value, weighted, None, line_flags)
        else:
            weighted = round_up((value.lo * weight, value.hi * weight))
            shocked = round_up((weighted.lo * grow[0], weighted.hi * grow[1]))
            totals.liability += value
            totals.weighted_liability += weighted
            totals.liability_lat += shocked
            lines[key] = HoldingLine(read.raw, value, weighted, None, line_flags)
    return lines, buckets


def _settle_buckets(
    market: Market, buckets: Mapping[tuple[str, Schedule], _Bucket], totals: _Totals
) -> dict[tuple[str, Schedule], Units]:
    """Slice each bucket's aggregate value (C4, C5) and add it to the totals."""
    decimals = market.value_decimals
    out: dict[tuple[str, Schedule], Units] = {}
    for (asset, tiers), bucket in buckets.items():
        v_lo, v_hi = bucket.value.lo, bucket.value.hi
        w_lo = tiered(Fraction(v_lo), tiers, decimals)
        w_hi = tiered(Fraction(v_hi), tiers, decimals)  # slicing is non-decreasing
        weighted = round_down((w_lo, w_hi))  # slices ≥ 0: float error relative to the sum
        # shocked = W · S / V: every factor ≥ 0, so the corners bound it
        lat_lo = w_lo * bucket.shocked.lo / v_hi if v_hi else Fraction(0)
        lat_hi = (w_hi * bucket.shocked.hi / v_lo if v_lo else w_hi) if v_hi else Fraction(0)
        totals.weighted_collateral += weighted
        totals.collateral_lat += round_down((lat_lo, min(lat_hi, w_hi)))
        out[(asset, tiers)] = weighted
    return out


def _value_perp(market: Market, perp: Perp, totals: _Totals, flags: set[str]) -> PerpLine:
    """Add one position's PnL and requirement, now and after the shock (C7)."""
    chain = market.chains[perp.chain]
    price = market.prices.get(perp.asset)
    line_flags = price_flags(price) | chain_flags(chain) if perp.size else frozenset[str]()
    flags |= line_flags
    if price is None:  # C8: no price, no PnL and no requirement
        return PerpLine(ZERO, ZERO, ZERO, line_flags)
    scale, decimals = 10**market.value_decimals, market.value_decimals
    size, entry = Fraction(perp.size), Fraction(perp.entry)
    long = size > 0
    mark = Fraction(price.low if long else price.high)  # the adverse end of the band
    keep, grow = shocked_factors(shock_span(market.z, price.volatility, chain.latency_s))
    move = keep if long else grow  # C6
    # The shocked mark's float error (of mark · (1 ∓ shock)) is relative to the mark, and the
    # difference with the entry does not shrink it: a cancellation. Without a shock the mark is
    # exact, and every operation's error is relative to its result.
    unshocked = move[0] == move[1] == 1
    mark_noise = Fraction(0) if unshocked else abs(size) * mark * move[1] * scale
    lines = []
    for m_lo, m_hi, noise in (
        (mark, mark, Fraction(0)),
        (mark * move[0], mark * move[1], mark_noise),
    ):
        ends = sorted((size * (m_lo - entry) * scale, size * (m_hi - entry) * scale))
        pnl = round_down((ends[0], ends[1]), noise, capped=True)
        n_lo, n_hi = abs(size) * m_lo * scale, abs(size) * m_hi * scale
        notional = round_up((n_lo, n_hi), noise, capped=True)
        requirement = (
            tiered(Fraction(notional.lo), perp.mmr_tiers, decimals),
            tiered(Fraction(notional.hi), perp.mmr_tiers, decimals),
        )
        lines.append((pnl, notional, round_up(requirement)))
    (pnl, notional, maintenance), (pnl_lat, _, maintenance_lat) = lines
    totals.pnl += pnl
    totals.maintenance += maintenance
    totals.pnl_lat += pnl_lat
    totals.maintenance_lat += maintenance_lat
    return PerpLine(notional, pnl, maintenance, line_flags)
