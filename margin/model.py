"""Plain data of the margin engine: what goes in, the knobs, and what comes out.

Frozen dataclasses validated on construction, and the enums they use. Nothing here computes
risk; ``margin.health`` (one account, plain Python) and ``margin.engine`` (all accounts, numpy)
do. Money in results is ``Decimal`` USD quantized to ``EngineParams.value_decimals`` places;
raw token amounts stay exact ``int``.

``health`` is ``float('inf')`` when an account owes nothing (L + M = 0), and 0 when its equity
C_w + U is negative (see ``margin.health.health_ratio``). JSON has no infinity:
the API should render it as ``null`` (and say so in its schema), never as the non-standard
``Infinity`` token that ``json.dumps`` emits by default.

A failed balance read is a state, not a value: the holding keeps its last good raw balance
(and the block it was read at) and carries ``READ_FAILED``, which holds the account. A
liability that was never read successfully makes the account's health *unknown*: ``health``
and ``health_latency`` are NaN and the account carries ``DEBT_UNKNOWN`` (never
``LIQUIDATABLE``: nothing is known, so nothing is claimed). ``AccountHealth.health_known`` is
the explicit form; the API and MQTT show ``health: null`` with ``health_known: false``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from core.domain import PriceStatus, Role
from core.errors import NonRetryableError

if TYPE_CHECKING:
    from margin.risk import AccountRisk

DEFAULT_Z = 2.33
"""Confidence multiplier of the latency shock: one-sided 99% of a normal (DESIGN §3)."""
DEFAULT_VALUE_DECIMALS = 2
"""USD values are quantized to cents by default (see ``margin.valuation`` for why)."""
MAX_VALUE_DECIMALS = 4
"""Finer quanta shrink the per-holding value cap below real positions (``ROW_CAP_UNITS``)."""
MAX_TOKEN_DECIMALS = 77
"""uint256 has 78 decimal digits; more decimals than 77 would make every balance < 1 unit."""
UINT256_MAX = 2**256 - 1
MONEY_FIELDS = (
    "collateral_value",
    "weighted_collateral",
    "liability_value",
    "weighted_liability",
    "unrealized_pnl",
    "maintenance",
    "shortfall",
)
"""An account's money results, in this order everywhere: ``AccountHealth``, the engine's
``HealthTable``, the store's columns and every document."""


class MarginInputError(NonRetryableError, ValueError):
    """An input to the margin engine is invalid (bad weight, unknown token, bad tiers…)."""


class Flag(enum.IntFlag):
    """Per-account flags; an ``IntFlag`` so the engine keeps them as a uint16 bitmask."""

    NONE = 0
    LIQUIDATABLE = 1
    LATENCY_RISK = 2
    STALE_CHAIN = 4
    STALE_PRICE = 8
    ORACLE_TRIPPED = 16
    SEQUENCER_DOWN = 32
    READ_FAILED = 64
    """The last read of a balance the account holds failed: its last good value is used."""
    DEBT_UNKNOWN = 128
    """A liability of the account was never read successfully: its health is unknown."""
    ORACLE_DRIFT = 256
    """A venue oracle that values the account's venue positions is further from our consensus
    than the venue's ``drift_threshold``: informative (a liquidation may become possible when
    the venue's oracle catches up); it never holds a liquidation nor makes one actionable."""


HELD_REASONS = Flag.STALE_PRICE | Flag.ORACLE_TRIPPED | Flag.SEQUENCER_DOWN | Flag.READ_FAILED
"""Flags that hold a liquidation back (DESIGN §3: not STALE_CHAIN, which is informative).
``DEBT_UNKNOWN`` always comes with ``READ_FAILED``, and such an account is never
``LIQUIDATABLE`` anyway."""


def flag_names(flags: Flag) -> list[str]:
    """Names of the set flags in declaration order (``["LIQUIDATABLE", "STALE_PRICE"]``): the
    spelling of flags everywhere they are shown (API, MQTT, CLI)."""
    return [member.name or "" for member in Flag if member and member in flags]


def parse_flag(name: str) -> Flag:
    """The flag called ``name`` (any case); ``ValueError`` naming the valid ones otherwise."""
    member = Flag.__members__.get(name.upper())
    if member is None or member is Flag.NONE:
        valid = ", ".join(f.name or "" for f in Flag if f)
        raise ValueError(f"unknown flag {name!r}; one of {valid}")
    return member


class MarginModel(enum.StrEnum):
    """How collateral is weighted (DESIGN §3 "Margin models")."""

    WEIGHTED = "weighted"
    TIERED = "tiered"
    PORTFOLIO = "portfolio"


def _check(ok: bool, problem: str) -> None:
    if not ok:
        raise MarginInputError(problem)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


@dataclass(frozen=True, slots=True)
class Tier:
    """One slice of a tier schedule: value (or notional) up to ``up_to`` USD gets ``rate``.

    ``rate`` is a collateral weight in collateral tiers and a maintenance-margin rate in
    position tiers. The last tier has ``up_to=None`` (unbounded). Slices are cumulative: with
    ``[Tier(0.8, 100_000), Tier(0.6, 1_000_000), Tier(0.4)]`` a value of 150,000 USD counts
    100,000 · 0.8 + 50,000 · 0.6, so the total is continuous in size.
    """

    rate: float
    up_to: float | None = None


def validate_tiers(tiers: tuple[Tier, ...], *, low: float, high: float, what: str) -> None:
    """Check a schedule: bounds strictly increasing and positive, only the last unbounded,
    rates within ``[low, high]``; raise ``MarginInputError`` naming ``what`` otherwise."""
    _check(len(tiers) > 0, f"{what}: a tier schedule needs at least one tier")
    previous = 0.0
    for i, tier in enumerate(tiers):
        last = i == len(tiers) - 1
        _check(_finite(tier.rate) and low <= tier.rate <= high, f"{what}[{i}]: rate {tier.rate}")
        if last:
            _check(tier.up_to is None, f"{what}[{i}]: the last tier must be unbounded")
        else:
            bound = tier.up_to
            _check(
                bound is not None and _finite(bound) and bound > previous,
                f"{what}[{i}]: up_to must increase strictly (got {bound})",
            )
            previous = float(bound or 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRisk:
    """An ERC-20 on one chain, the asset it represents, and how it counts toward health.

    ``decimals`` is ``None`` when they could not be established (no code at start-up,
    ``decimals()`` failing, nothing configured or stored): no balance of the token can be
    valued, so every holding of it counts as a failed read without a value.
    """

    chain: str
    token: str
    asset: str
    role: Role
    weight: float
    decimals: int | None
    tiers: tuple[Tier, ...] = ()

    def __post_init__(self) -> None:
        name = f"token {self.chain}/{self.token}"
        _check(
            self.decimals is None or 0 <= self.decimals <= MAX_TOKEN_DECIMALS,
            f"{name}: decimals {self.decimals}",
        )
        _check(_finite(self.weight), f"{name}: weight {self.weight}")
        if self.role is Role.COLLATERAL:
            _check(0.0 <= self.weight <= 1.0, f"{name}: collateral weight must be in [0, 1]")
            if self.tiers:
                validate_tiers(self.tiers, low=0.0, high=1.0, what=f"{name} tiers")
        else:
            _check(self.weight >= 1.0, f"{name}: liability weight must be >= 1")
            _check(not self.tiers, f"{name}: tiers apply to collateral only")

    @property
    def key(self) -> tuple[str, str]:
        """``(chain, token)``: how holdings refer to this token."""
        return (self.chain, self.token)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceInput:
    """An asset's USD price with its status and annualized volatility.

    With a confidence band, collateral is valued at ``price_low`` and debt at ``price_high``
    (long positions are marked at the low, short positions at the high).
    """

    asset: str
    price: float
    status: PriceStatus = PriceStatus.OK
    volatility: float = 0.0
    price_low: float | None = None
    price_high: float | None = None

    def __post_init__(self) -> None:
        name = f"price {self.asset}"
        _check(_finite(self.price) and self.price > 0, f"{name}: price {self.price}")
        _check(_finite(self.volatility) and self.volatility >= 0, f"{name}: volatility")
        low, high = self.low, self.high
        _check(_finite(low) and 0 < low <= self.price, f"{name}: price_low {low}")
        _check(_finite(high) and high >= self.price, f"{name}: price_high {high}")

    @property
    def low(self) -> float:
        """Price for collateral and long positions."""
        return self.price if self.price_low is None else self.price_low

    @property
    def high(self) -> float:
        """Price for debt and short positions."""
        return self.price if self.price_high is None else self.price_high


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainInput:
    """A chain's liquidation horizon and current status, as the watchers see it."""

    name: str
    liquidation_latency_s: float
    stale: bool = False
    sequencer_down: bool = False
    last_block: int | None = None

    def __post_init__(self) -> None:
        latency = self.liquidation_latency_s
        _check(_finite(latency) and latency >= 0, f"chain {self.name}: latency {latency}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """A perp position posted by the protocol; it settles (and is liquidated) on ``chain``.

    ``mmr_tiers`` slice the notional like collateral tiers slice value: the requirement is
    continuous in size (the same as a whole-notional bracket with a "maintenance amount"
    deduction, as Binance and Bybit publish it).
    """

    account: str
    asset: str
    chain: str
    size: float
    entry_price: float
    mmr_tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        name = f"position {self.account}/{self.asset}"
        _check(_finite(self.size), f"{name}: size {self.size}")
        _check(_finite(self.entry_price) and self.entry_price >= 0, f"{name}: entry_price")
        validate_tiers(self.mmr_tiers, low=0.0, high=1.0, what=f"{name} mmr_tiers")
        # A zero rate would let a losing position sit at L + M = 0, i.e. infinite health.
        _check(all(t.rate > 0 for t in self.mmr_tiers), f"{name}: mmr rates must be > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """A raw balance of one account in one token, read at ``block``.

    ``read_failed``: the latest read failed; ``raw`` and ``block`` are then the last good value
    and the block it came from, or ``raw`` is ``None`` (and ``block`` the failed read's) when no
    read of this holding ever succeeded.
    """

    account: str
    chain: str
    token: str
    raw: int | None
    block: int
    read_failed: bool = False

    def __post_init__(self) -> None:
        name = f"holding {self.account}"
        if self.raw is None:
            _check(self.read_failed, f"{name}: a holding without a value must be a failed read")
        else:
            _check(0 <= self.raw <= UINT256_MAX, f"{name}: raw {self.raw}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineParams:
    """Deployment-wide knobs of the engine."""

    model: MarginModel = MarginModel.WEIGHTED
    z: float = DEFAULT_Z
    value_decimals: int = DEFAULT_VALUE_DECIMALS

    def __post_init__(self) -> None:
        _check(_finite(self.z) and self.z >= 0, f"engine: z {self.z}")
        _check(
            0 <= self.value_decimals <= MAX_VALUE_DECIMALS,
            f"engine: value_decimals must be in [0, {MAX_VALUE_DECIMALS}]",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldingValue:
    """One line of an account's breakdown: a token balance and what it counts for.

    For tiered collateral ``weight`` is the effective weight of the (account, asset, schedule)
    bucket the holding belongs to, and ``weighted_value`` its share of that bucket. ``raw`` is
    ``None`` for a holding never read successfully (``flags`` then has ``READ_FAILED``).
    """

    chain: str
    token: str
    asset: str
    role: Role
    raw: int | None
    amount: Decimal
    price: float
    value: Decimal
    weight: float
    weighted_value: Decimal
    block: int
    flags: Flag


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionValue:
    """One position of an account's breakdown, marked to the conservative side of the band."""

    asset: str
    chain: str
    size: float
    entry_price: float
    mark: float
    notional: Decimal
    unrealized_pnl: Decimal
    mmr: float
    maintenance: Decimal
    flags: Flag


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountHealth:
    """Everything the engine says about one account (DESIGN §3), with its breakdown.

    ``weighted_liability`` is L of the health formula; ``held_reasons`` lists which flags keep
    a liquidatable account from being ``actionable``.
    """

    account: str
    collateral_value: Decimal
    weighted_collateral: Decimal
    liability_value: Decimal
    weighted_liability: Decimal
    unrealized_pnl: Decimal
    maintenance: Decimal
    health: float
    health_latency: float
    shortfall: Decimal
    flags: Flag
    actionable: bool
    holdings: tuple[HoldingValue, ...]
    positions: tuple[PositionValue, ...]
    risk: AccountRisk | None = field(default=None, compare=False)
    """Portfolio figures (``MarginEngine.account_risk``); ``None`` where not computed. Not
    compared: the reference ``margin.health`` does not compute them."""

    @property
    def held_reasons(self) -> Flag:
        """The flags that hold a liquidation back (empty when none apply)."""
        return self.flags & HELD_REASONS

    @property
    def health_known(self) -> bool:
        """False when a liability was never read (``DEBT_UNKNOWN``): ``health`` is then NaN."""
        return not self.flags & Flag.DEBT_UNKNOWN
