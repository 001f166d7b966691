"""Adapters from what watchers, the oracle and the config produce to margin-engine inputs.

The engine (``margin/``) takes plain data; this module is the one place that knows how the
other packages' outputs map onto it, so the ``health`` command and the daemon agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np
import numpy.typing as npt

from chains.readings import ReadColumns
from chains.watcher import ChainWatcher, Reading, TokenInfo
from core.domain import PriceStatus, Role
from core.domain import Role as MarginRole
from daemon.config.model import ChainConfig, Config
from daemon.config.portfolio import portfolio_params
from daemon.store.records import StoredState
from margin.book import MarginBook
from margin.model import ChainInput, EngineParams, Holding, PriceInput, Tier, TokenRisk
from margin.options import OptionPosition
from margin.scenarios import PortfolioParams
from oracles.model import AssetPrice
from oracles.sequencer import SequencerStatus

VOLATILITY_DECAY_STEP = 0.01
"""The daemon's engine takes an asset's new volatility when it rises, or when it has fallen by
more than this share since the one the engine values with (``steady_volatility``)."""
UINT64_LIMIT = 2**64  # raws below this go to the engine as one uint64 array

_ROLES = {Role.COLLATERAL: MarginRole.COLLATERAL, Role.LIABILITY: MarginRole.LIABILITY}


def engine_params(config: Config) -> EngineParams:
    """Margin model, z and value precision from ``margin:``."""
    margin = config.margin
    return EngineParams(model=margin.model, z=margin.z, value_decimals=margin.value_decimals)


def portfolio(config: Config) -> PortfolioParams:
    """``margin.portfolio`` with the assets' volatility floors (the scan ranges widen above
    them)."""
    floors = {a.symbol: a.volatility_floor for a in config.assets}
    return portfolio_params(config.margin.portfolio, floors)


def token_risks(
    config: Config,
    found: Mapping[str, Mapping[str, TokenInfo]],
    stored: Mapping[str, Mapping[str, int]] | None = None,
) -> list[TokenRisk]:
    """One ``TokenRisk`` per configured token.

    ``found`` is chain → token address → ``TokenInfo`` as the watchers' set-up read it (config
    or chain); ``stored`` the decimals a previous run established (``token_decimals``), used
    when neither answers now (a token whose code was removed or whose ``decimals()`` started
    failing: its last good balances must still count). Without any, ``decimals`` is ``None``:
    the engine then counts every holding of the token as a failed read, never as zero.
    """
    risks = []
    for token in config.tokens:
        info = found.get(token.chain, {}).get(token.address)
        decimals = info.decimals if info is not None else token.decimals
        if decimals is None and stored is not None:
            decimals = stored.get(token.chain, {}).get(token.address)
        tiers = tuple(Tier(rate=t.weight, up_to=t.up_to) for t in token.tiers or ())
        risks.append(
            TokenRisk(
                chain=token.chain,
                token=token.address,
                asset=token.asset,
                role=_ROLES[token.role],
                weight=token.weight,
                decimals=decimals,
                tiers=tiers,
            )
        )
    return risks


def chain_input(
    chain: ChainConfig,
    *,
    stale: bool,
    sequencer: SequencerStatus | None,
    last_block: int | None,
) -> ChainInput:
    """A chain as the engine sees it: latency horizon, staleness and sequencer state."""
    return ChainInput(
        name=chain.name,
        liquidation_latency_s=chain.liquidation_latency_s,
        stale=stale,
        sequencer_down=sequencer is not None and not sequencer.usable,
        last_block=last_block,
    )


def price_inputs(prices: Iterable[AssetPrice]) -> list[PriceInput]:
    """Oracle outputs as engine prices; an asset that never had a price is left out (the
    engine then values it at zero and flags ``STALE_PRICE``)."""
    inputs = []
    for price in prices:
        if price.price is None:
            continue
        inputs.append(
            PriceInput(
                asset=price.symbol,
                price=float(price.price),
                status=PriceStatus(price.status.value),
                volatility=price.volatility,
                price_low=None if price.price_low is None else float(price.price_low),
                price_high=None if price.price_high is None else float(price.price_high),
            )
        )
    return inputs


def steady_volatility(
    inputs: Iterable[PriceInput],
    applied: Mapping[str, PriceInput],
    *,
    step: float = VOLATILITY_DECAY_STEP,
) -> list[PriceInput]:
    """``inputs`` with each asset's volatility kept at the one ``applied`` (what the engine
    values with) while the new one is lower by at most ``step`` of it.

    After a market-wide move the EWMA volatility decays a little at every oracle round
    (by ~4·10⁻⁷ of itself per second at λ = 0.94 per day) while the price stands still: each
    round changed every holder's latency health in the last digits, so the engine recomputed
    and the store rewrote every account of the asset (a million rows per round). Kept, the
    volatility is never below the oracle's and above it by less than ``1 / (1 - step)``; a
    rise (a new return: the price moved, its holders are revalued anyway) is taken at once."""
    out = []
    for price in inputs:
        old = applied.get(price.asset)
        if old is not None and old.volatility * (1 - step) <= price.volatility < old.volatility:
            price = replace(price, volatility=old.volatility)
        out.append(price)
    return out


def apply_readings(
    engine: MarginBook,
    chain: str,
    readings: Mapping[tuple[str, str], Reading],
    *,
    orphaned_above: int | None = None,
) -> None:
    """Record one watcher update in the engine: the same state as ``engine.load_holdings`` of
    one ``Holding`` per reading (a failed read: ``raw`` None, ``read_failed``), without
    building them.

    A chain's first sweep is every pair (2,000,000 at a million accounts): built as objects
    and valued row by row it held the event loop ~12 s at 200,000 accounts. Here successful
    reads go to ``load_balances`` one token at a time, as one ``uint64`` array when every raw
    fits in 64 bits (vectorized for a token without rows yet; row by row otherwise, as
    ``set_holding`` would). Failed reads keep the holding path (they carry ``orphaned_above``).
    """
    if isinstance(readings, ReadColumns):  # the watcher's: no per-pair object at all
        _apply_columns(engine, chain, readings, orphaned_above)
        return
    by_token: dict[str, _TokenReadings] = {}
    for (account, token), r in readings.items():
        group = by_token.get(token)
        if group is None:
            group = by_token[token] = _TokenReadings()
        if r.raw is None:
            group.failed.append(
                Holding(
                    account=account,
                    chain=chain,
                    token=token,
                    raw=None,
                    block=r.block_number,
                    read_failed=True,
                )
            )
        else:
            group.accounts.append(account)
            group.raws.append(r.raw)
            group.blocks.append(r.block_number)
    for token, group in by_token.items():  # token by token, as ``load_holdings`` goes
        if group.accounts:
            blocks = group.blocks
            block: int | list[int] = blocks[0] if blocks.count(blocks[0]) == len(blocks) else blocks
            engine.load_balances(chain, token, group.accounts, _raw_column(group.raws), block)
        if group.failed:
            engine.load_holdings(group.failed, orphaned_above=orphaned_above)


def _apply_columns(
    engine: MarginBook, chain: str, readings: ReadColumns, orphaned_above: int | None
) -> None:
    """``apply_readings`` of the watcher's columns: each token's successful reads go to
    ``load_balances`` as they are (at the update's one block), failed ones as holdings."""
    block = readings.block_number
    for token, column in readings.tokens.items():
        accounts, raws = column.accounts, column.raws
        failed: list[Holding] = []
        if column.failed:
            failed = [
                Holding(
                    account=a, chain=chain, token=token, raw=None, block=block, read_failed=True
                )
                for a, raw in zip(accounts, raws, strict=True)
                if raw is None
            ]
            kept = [(a, raw) for a, raw in zip(accounts, raws, strict=True) if raw is not None]
            accounts = [a for a, _ in kept]
            raws = [raw for _, raw in kept]
        if accounts:
            good = cast(list[int], raws)  # no None left
            engine.load_balances(chain, token, accounts, _raw_column(good), block)
        if failed:
            engine.load_holdings(failed, orphaned_above=orphaned_above)


@dataclass(slots=True)
class _TokenReadings:
    """One token's readings of an update: successful reads as columns, failed ones."""

    accounts: list[str] = field(default_factory=list)
    raws: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    failed: list[Holding] = field(default_factory=list)


def _raw_column(raws: list[int]) -> list[int] | npt.NDArray[np.uint64]:
    """``raws`` as ``uint64`` when they all fit (the engine's vectorized path), else as is."""
    if raws and max(raws) < UINT64_LIMIT and min(raws) >= 0:
        return np.array(raws, dtype=np.uint64)
    return raws


def stored_holdings(state: StoredState, tokens: Iterable[TokenRisk]) -> list[Holding]:
    """A previous run's balances (last good values, ``StoredState.balances``) of the configured
    ``tokens`` as engine holdings, those in ``StoredState.read_failures`` flagged as failed;
    balances of a token no longer configured are left out."""
    configured = {(t.chain, t.token) for t in tokens}
    return [
        Holding(
            account=account,
            chain=chain,
            token=token,
            raw=r.raw,
            block=r.block_number,
            read_failed=r.raw is None or (account, token) in state.read_failures.get(chain, {}),
        )
        for chain, readings in state.balances.items()
        for (account, token), r in readings.items()
        if (chain, token) in configured
    ]


def established_decimals(found: Mapping[str, Mapping[str, TokenInfo]]) -> dict[str, dict[str, int]]:
    """chain → token → decimals the watchers' set-up established (config or chain)."""
    return {
        chain: {
            address: info.decimals for address, info in tokens.items() if info.decimals is not None
        }
        for chain, tokens in found.items()
    }


def watcher_tokens(watchers: Iterable[ChainWatcher]) -> dict[str, dict[str, TokenInfo]]:
    """chain → token → ``TokenInfo`` from set-up watchers."""
    return {w.chain.name: dict(w.tokens) for w in watchers}


def options_by_account(options: Iterable[OptionPosition]) -> dict[str, list[OptionPosition]]:
    """Stored option lines grouped by account (each account's set goes in at once)."""
    grouped: dict[str, list[OptionPosition]] = {}
    for option in options:
        grouped.setdefault(option.account, []).append(option)
    return grouped
