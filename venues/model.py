"""Plain data of venues: what an adapter is built from, and what it reports.

Raw token amounts are exact ``int``; venue fixed-point values keep the venue's scale (Aave
health factor: 1e18; Morpho prices: 1e36). USD figures are ``Decimal`` and ``None`` when no
USD price is known for what they need, never a made-up zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from core.amounts import format_units

HEALTH_DECIMALS = 18
"""Venue health factors are reported in 1e18 fixed point (Aave's own scale)."""

STALE_CHAIN = "STALE_CHAIN"
"""Flag of a venue entry whose latest read failed: the values are the last good ones."""
ORACLE_DRIFT = "ORACLE_DRIFT"
"""Flag of a venue entry valued with a venue oracle price that drifts from our consensus
beyond the venue's ``drift_threshold`` (``venues.drift``); ``health_at_consensus`` is set."""
UNMAPPED_ASSET = "UNMAPPED_ASSET"
"""Flag of a venue entry holding a reserve no configured asset maps to (valued only in the
venue's own health, not in the cross-margin account)."""


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """What a venue adapter is built from (phase 2 maps the ``venues:`` config onto it).

    ``address`` is the venue's entry contract: Aave's PoolAddressesProvider, the Morpho
    contract. ``assets`` maps an underlying address (lower-case) to a configured asset name;
    ``known_assets`` are the configured asset names an ERC-20 symbol may match by default.
    ``markets`` limits Morpho to those market ids (empty: every market created).
    """

    name: str
    kind: str
    chain: str
    address: str
    assets: Mapping[str, str] = field(default_factory=dict)
    known_assets: frozenset[str] = frozenset()
    markets: tuple[str, ...] = ()
    from_block: int = 0
    log_range_blocks: int = 10_000


@dataclass(frozen=True, slots=True)
class PlanPricing:
    """USD prices and gas price a plan's ``profit_usd`` is computed with.

    ``usd`` maps an underlying address (lower-case) to USD per whole token and overrides the
    venue-derived prices (phase 2 passes the multi-source consensus here). ``gas_price_wei``
    and ``native_usd`` value the liquidation transaction's gas; without ``native_usd`` the
    gas cost is unknown (``gas_usd`` is ``None``) and left out of ``profit_usd``.
    """

    usd: Mapping[str, Decimal] = field(default_factory=dict)
    gas_price_wei: int = 0
    native_usd: Decimal | None = None
    drift_threshold: Decimal | None = None
    """Set: venue oracle prices further than this (relative) from ``usd`` flag
    ``ORACLE_DRIFT`` with a ``health_at_consensus`` (``venues.drift``)."""

    def gas_usd(self, gas_units: int) -> Decimal | None:
        """USD cost of ``gas_units`` at the set gas price, or ``None`` if unpriced."""
        if self.native_usd is None:
            return None
        return Decimal(gas_units * self.gas_price_wei) / Decimal(10**18) * self.native_usd


@dataclass(frozen=True, slots=True)
class LiquidationPlan:
    """A liquidation the venue will accept now, as large as it allows.

    ``repay_raw`` of ``debt_asset`` is paid; ``seize_raw`` of ``collateral_asset``'s underlying
    is what the liquidator receives (after any protocol fee). ``bonus`` is the venue's
    incentive as a fraction (0.05 = 5 %). ``call`` holds the exact arguments to send (Aave:
    ``debtToCover``, ``receiveAToken``; Morpho: ``seizedAssets``, ``repaidShares``) and
    ``market`` the Morpho market id. ``profit_usd`` = value received − value repaid − gas
    (``gas_usd``, ``None`` when unpriced and then not deducted); ``None`` without USD prices.
    """

    debt_asset: str
    collateral_asset: str
    repay_raw: int
    seize_raw: int
    bonus: Decimal
    profit_usd: Decimal | None
    gas_units: int
    gas_usd: Decimal | None
    call: Mapping[str, int | bool | str]
    market: str | None = None


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """One asset of an account in a venue.

    ``collateral_raw`` counts as collateral in the venue's health (weighted by
    ``collateral_weight``, the venue's liquidation threshold, e-mode aware); ``supplied_raw``
    is supplied but not counted (collateral switched off, a zero threshold, Morpho lending);
    ``debt_raw`` is owed (Aave: variable + stable; Morpho: borrowed assets rounded up).
    ``asset_name`` is the configured asset it maps to, ``None`` when unmapped.
    """

    asset: str
    asset_name: str | None
    decimals: int | None
    collateral_raw: int = 0
    supplied_raw: int = 0
    debt_raw: int = 0
    collateral_weight: Decimal = Decimal(0)
    market: str | None = None


@dataclass(frozen=True, slots=True)
class VenueAccount:
    """One account's standing in one venue at one block.

    ``health_raw`` is the venue's health in 1e18 fixed point (Aave: ``healthFactor`` of
    ``getUserAccountData``, exactly; Morpho: the lowest ``maxBorrow / borrowed`` over the
    account's markets, rounded down), ``None`` when nothing is owed or nothing is known.
    ``liquidatable`` is the venue's own rule, decided in integers. ``collateral_value`` /
    ``debt_value`` are USD (``None`` when unpriced). ``exact`` holds the venue's own integer
    outputs (Aave: every field of ``getUserAccountData``). ``stale`` marks values kept from
    the last good read because this one failed.
    """

    venue: str
    kind: str
    chain: str
    account: str
    block_number: int
    block_hash: str
    health_raw: int | None
    liquidatable: bool
    collateral_value: Decimal | None
    debt_value: Decimal | None
    positions: tuple[VenuePosition, ...]
    plan: LiquidationPlan | None
    flags: frozenset[str] = frozenset()
    exact: Mapping[str, int] = field(default_factory=dict)
    stale: bool = False
    health_at_consensus: int | None = None
    """With ``ORACLE_DRIFT``: ``health_raw`` if the venue's oracle moved to our consensus."""

    @property
    def health(self) -> str | None:
        """``health_raw`` as an exact decimal string (``None`` with no debt)."""
        return None if self.health_raw is None else format_units(self.health_raw, HEALTH_DECIMALS)


@dataclass(frozen=True, slots=True)
class VenueResult:
    """Every account of one venue evaluated at one block; ``stale`` when this cycle's read
    failed and the accounts carry their last good values (``error`` says why). ``failed``
    lists accounts whose own reads failed in an otherwise good read (a ``VenueWatcher``
    carries their last values forward, marked stale)."""

    venue: str
    kind: str
    chain: str
    block_number: int
    block_hash: str
    accounts: Mapping[str, VenueAccount]
    stale: bool = False
    error: str | None = None
    failed: frozenset[str] = frozenset()
    drifting: frozenset[str] = frozenset()
    """Underlyings (Aave) or market ids (Morpho) whose venue price drifts from our consensus."""

    def liquidatable(self) -> list[VenueAccount]:
        """Liquidatable accounts, most profitable plan first (then lowest health)."""
        found = [a for a in self.accounts.values() if a.liquidatable]
        return sorted(found, key=_rank)


def _rank(account: VenueAccount) -> tuple[Decimal, int]:
    profit = account.plan.profit_usd if account.plan and account.plan.profit_usd else Decimal(0)
    return (-profit, account.health_raw if account.health_raw is not None else 0)
