"""Venue entries as the rest of the daemon uses them (pure: no I/O).

- The unified account: an account's venue positions become margin-engine holdings of the same
  address, valued by our oracle under the configured margin model. Each (venue, asset,
  weight, side) is one engine token on the venue's chain: collateral weighted by the venue's
  liquidation threshold as it applies to that account (e-mode aware: an e-mode user's
  threshold differs from the reserve's, hence the weight in the token), debt weighted 1.
  Positions of an asset no configured asset maps to stay out (valued only in the venue's own
  health), as do supplied-but-not-collateral amounts (the venue does not count them either).
- Plan pricing: our consensus USD prices of the venue's underlyings (``PlanPricing.usd``).
- Ranking of liquidatable venue positions: ``profit_usd`` first, then the shortfall.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from core.amounts import plain_decimal
from core.domain import Role
from margin.model import Holding, TokenRisk
from oracles.model import AssetPrice
from venues.model import HEALTH_DECIMALS, PlanPricing, VenueAccount, VenueResult

VENUE_HOLDING_PREFIX = "venue"
"""Engine token ids of venue positions read ``venue:<venue>:<underlying>:<side>:<weight>``."""
_ONE = Decimal(10**HEALTH_DECIMALS)


def venue_token(venue: str, asset: str, role: Role, weight: Decimal) -> str:
    """The engine token id of ``venue``'s ``asset`` (underlying address) on one side."""
    side = "collateral" if role is Role.COLLATERAL else "debt"
    return f"{VENUE_HOLDING_PREFIX}:{venue}:{asset}:{side}:{plain_decimal(weight)}"


def is_venue_token(token: str) -> bool:
    """Whether an engine token id is a venue position's (``venue_token``)."""
    return token.startswith(f"{VENUE_HOLDING_PREFIX}:")


def token_asset(token: str) -> str | None:
    """The underlying of a ``venue_token`` id (``None`` for any other token)."""
    parts = token.split(":")
    return parts[2] if len(parts) == 5 and parts[0] == VENUE_HOLDING_PREFIX else None


@dataclass(frozen=True, slots=True)
class EngineFeed:
    """What one venue result changes in the engine: tokens to add (new ids only matter),
    holdings to set, and the venue tokens each account holds now (``held``, for the next
    result: a token held before and not now is set to zero)."""

    tokens: list[TokenRisk]
    holdings: list[Holding]
    held: dict[str, set[str]]


def engine_feed(result: VenueResult, previously: Mapping[str, set[str]]) -> EngineFeed:
    """The engine's view of ``result``. A stale result changes nothing (the engine keeps the
    last good values), and neither does a stale entry of a good result."""
    tokens: dict[str, TokenRisk] = {}
    holdings: list[Holding] = []
    held: dict[str, set[str]] = {}
    if result.stale:
        return EngineFeed([], [], {a: set(t) for a, t in previously.items()})
    for account, entry in result.accounts.items():
        if entry.stale:
            held[account] = set(previously.get(account, set()))
            continue
        raws: dict[str, int] = {}
        for position in entry.positions:
            if position.asset_name is None or position.decimals is None:
                continue
            sides = (
                (Role.COLLATERAL, position.collateral_raw, position.collateral_weight),
                (Role.LIABILITY, position.debt_raw, Decimal(1)),
            )
            for role, raw, weight in sides:
                if raw <= 0:
                    continue
                token = venue_token(result.venue, position.asset, role, weight)
                tokens.setdefault(
                    token,
                    TokenRisk(
                        chain=result.chain,
                        token=token,
                        asset=position.asset_name,
                        role=role,
                        weight=float(weight),
                        decimals=position.decimals,
                    ),
                )
                raws[token] = raws.get(token, 0) + raw  # Morpho: one asset in several markets
        for token in previously.get(account, set()) - set(raws):
            raws[token] = 0  # repaid or withdrawn since: it counts for nothing now
        holdings.extend(
            Holding(
                account=account,
                chain=result.chain,
                token=token,
                raw=raw,
                block=entry.block_number,
            )
            for token, raw in sorted(raws.items())
        )
        held[account] = {t for t, raw in raws.items() if raw > 0}
    for account, gone in previously.items():
        if account not in result.accounts and gone:
            held[account] = set(gone)  # not in this result (no read): kept as it was
    return EngineFeed(list(tokens.values()), holdings, held)


def plan_pricing(
    names: Mapping[str, str],
    prices: Mapping[str, AssetPrice],
    *,
    drift_threshold: float | None = None,
    native: str | None = None,
) -> PlanPricing:
    """Plan prices from our consensus: ``names`` maps the venue's underlyings to configured
    assets; an asset without a price is left out (its plans' ``profit_usd`` is then the
    venue's own or ``None``).
    ``drift_threshold`` asks the adapter to flag venue prices that drift from these."""
    usd = {
        underlying: price
        for underlying, asset in names.items()
        if (price := _price(prices.get(asset))) is not None
    }
    return PlanPricing(
        usd=usd,
        native_usd=None if native is None else _price(prices.get(native)),
        drift_threshold=None if drift_threshold is None else Decimal(str(drift_threshold)),
    )


def _price(price: AssetPrice | None) -> Decimal | None:
    return None if price is None or price.price is None else price.price


def asset_names(entries: Iterable[VenueAccount]) -> dict[str, str]:
    """Underlying → configured asset of every mapped position in ``entries``."""
    return {p.asset: p.asset_name for e in entries for p in e.positions if p.asset_name is not None}


def shortfall_usd(entry: VenueAccount) -> Decimal | None:
    """What a liquidatable entry's weighted collateral misses to cover its debt, in USD:
    ``debt · (1 − health)`` (health = weighted collateral / debt, in both venues' rules);
    ``None`` when healthy, without debt or without a USD debt value."""
    if not entry.liquidatable or entry.health_raw is None or entry.debt_value is None:
        return None
    health = Decimal(entry.health_raw) / _ONE
    return max(Decimal(0), entry.debt_value * (1 - health))


def venue_rank(entry: VenueAccount) -> tuple[int, Decimal, Decimal, str, str]:
    """Sort key of liquidatable venue positions: most profitable plan first (unpriced plans
    after priced ones), then the largest shortfall."""
    profit = entry.plan.profit_usd if entry.plan is not None else None
    shortfall = shortfall_usd(entry)
    return (
        0 if profit is not None else 1,
        -(profit or Decimal(0)),
        -(shortfall or Decimal(0)),
        entry.venue,
        entry.account,
    )
