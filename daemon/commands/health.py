"""``crossmargin health``: one full pass — balance snapshot, oracle round, margin engine.

Prints every account's health with its per-chain/per-token breakdown, liquidatable accounts
first (largest shortfall first), then the rest by ascending health. Positions are posted to the
running daemon through its API; this one-shot pass values balances only.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TextIO

from daemon.commands.snapshot import ChainSnapshot, take_snapshot
from daemon.config.model import Config
from daemon.risk_inputs import (
    chain_input,
    engine_params,
    holdings,
    price_inputs,
    token_risks,
    watcher_tokens,
)
from daemon.wiring import open_oracle
from margin.engine import MarginEngine
from margin.model import AccountHealth, Flag, flag_names
from oracles.model import AssetPrice
from oracles.sequencer import SequencerStatus


def _number(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else value


def _money(value: Decimal) -> str:
    return format(value, "f")


def account_json(health: AccountHealth) -> dict[str, object]:
    """An account's health as JSON: money as decimal strings, infinite or unknown health as
    null (``health_known`` tells them apart, as in the API)."""
    return {
        "account": health.account,
        "health": _number(health.health),
        "health_latency": _number(health.health_latency),
        "health_known": health.health_known,
        "shortfall": _money(health.shortfall),
        "collateral_value": _money(health.collateral_value),
        "weighted_collateral": _money(health.weighted_collateral),
        "liability_value": _money(health.liability_value),
        "weighted_liability": _money(health.weighted_liability),
        "unrealized_pnl": _money(health.unrealized_pnl),
        "maintenance": _money(health.maintenance),
        "flags": flag_names(health.flags),
        "actionable": health.actionable,
        "held_reasons": flag_names(health.held_reasons),
        "breakdown": [
            {
                "chain": line.chain,
                "token": line.token,
                "asset": line.asset,
                "role": line.role.value,
                "raw": None if line.raw is None else str(line.raw),
                "amount": format(line.amount.normalize(), "f"),
                "price": line.price,
                "value": _money(line.value),
                "weight": line.weight,
                "weighted_value": _money(line.weighted_value),
                "block": line.block,
                "flags": flag_names(line.flags),
            }
            for line in health.holdings
        ],
    }


def evaluate(
    config: Config,
    snapshots: Sequence[ChainSnapshot],
    prices: dict[str, AssetPrice],
    sequencers: Mapping[str, SequencerStatus | None],
) -> list[AccountHealth]:
    """Run the engine over one snapshot and one oracle round; return every account's health."""
    watchers = [s.watcher for s in snapshots if s.watcher is not None]
    engine = MarginEngine(
        tokens=token_risks(config, watcher_tokens(watchers)),
        chains=[
            chain_input(
                s.chain,
                stale=s.watcher is None,
                sequencer=sequencers.get(s.chain.name),
                last_block=None if s.block is None else s.block.number,
            )
            for s in snapshots
        ],
        params=engine_params(config),
    )
    engine.set_prices(price_inputs(prices.values()))
    # Failed reads go in too: the account is then held (READ_FAILED), or unknown for a debt.
    for watcher in watchers:  # a watcher reads only configured tokens
        engine.load_holdings(holdings(watcher.chain.name, watcher.holdings))
    engine.recompute_all()
    return [engine.account_health(account) for account in engine.accounts]


def ranked(healths: Sequence[AccountHealth]) -> list[AccountHealth]:
    """Liquidatable first by shortfall (largest first), then accounts whose health is unknown
    (never below the healthy ones), then the rest by ascending health."""
    return sorted(
        healths,
        key=lambda h: (
            not (h.flags & Flag.LIQUIDATABLE),
            h.health_known,
            -h.shortfall,
            h.health if h.health_known else 0.0,  # NaN does not sort
            h.account,
        ),
    )


async def health_pass(config: Config) -> tuple[list[AccountHealth], list[ChainSnapshot]]:
    """Snapshot balances and run one oracle round concurrently, then the engine."""
    async with open_oracle(config) as oracle:
        snapshots, prices = await asyncio.gather(take_snapshot(config), oracle.run_round())
        now = time.time()
        sequencers = {c.name: oracle.sequencer_status(c.name, now) for c in config.chains}
    return evaluate(config, snapshots, prices, sequencers), snapshots


def print_health(
    healths: Sequence[AccountHealth],
    snapshots: Sequence[ChainSnapshot],
    *,
    as_json: bool,
    account: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """Print the pass; unreachable chains are reported on stderr. Always exit 0."""
    for snap in snapshots:
        if snap.error is not None:
            sys.stderr.write(
                f"crossmargin: chain {snap.chain.name} unreachable, valued as stale: {snap.error}\n"
            )
    wanted = None if account is None else account.lower()
    for health in ranked(healths):
        if wanted is not None and health.account != wanted:
            continue
        if as_json:
            out.write(json.dumps(account_json(health)) + "\n")
            continue
        if not health.health_known:
            value = "unknown"
        else:
            value = "inf" if math.isinf(health.health) else f"{health.health:.4f}"
        flags = ",".join(flag_names(health.flags)) or "-"
        act = "ACTIONABLE" if health.actionable else ""
        out.write(
            f"{health.account} health {value:>10} shortfall {_money(health.shortfall):>14} "
            f"{flags} {act}\n"
        )
    return 0
