"""``crossmargin health``: one full pass — balance snapshot, oracle round, margin engine.

Prints every account's health with its per-chain/per-token breakdown, liquidatable accounts
first (largest shortfall first), then the rest by ascending health. The engine runs as in the
daemon, and ``--json`` prints the ``Account`` document of the API and MQTT
(``daemon.documents.account_document``), one per line. Positions are posted to the
running daemon through its API; this one-shot pass values balances only.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TextIO

from daemon.commands.snapshot import ChainSnapshot, take_snapshot
from daemon.commands.venue_reads import read_venues
from daemon.config.model import Config
from daemon.documents import account_document, engine_state
from daemon.risk_inputs import (
    apply_readings,
    chain_input,
    engine_params,
    portfolio,
    price_inputs,
    token_risks,
    watcher_tokens,
)
from daemon.store.records import StoredHealth
from daemon.store.rows import breakdown_record
from daemon.venue_ledger import VenueLedger
from daemon.wiring import open_oracle
from margin.engine import MarginEngine
from margin.model import Flag, flag_names
from oracles.model import AssetPrice
from oracles.sequencer import SequencerStatus
from venues.model import VenueResult


@dataclass(frozen=True, slots=True)
class MarketPass:
    """One balance snapshot of every chain and one oracle round, taken together at ``at``, and
    one read of every venue (plans priced by that round)."""

    snapshots: list[ChainSnapshot]
    prices: dict[str, AssetPrice]
    sequencers: dict[str, SequencerStatus | None]
    at: float
    venues: list[VenueResult] = field(default_factory=list)


def _money(value: Decimal) -> str:
    return format(value, "f")


def build_engine(
    config: Config,
    snapshots: Sequence[ChainSnapshot],
    prices: dict[str, AssetPrice],
    sequencers: Mapping[str, SequencerStatus | None],
    venues: Sequence[VenueResult] = (),
    *,
    at: float,
) -> MarginEngine:
    """The engine over one snapshot, one oracle round and one read of every venue (their
    positions feed the unified accounts), as the daemon builds it, evaluated; options (none
    in a one-shot pass) would be valued at ``at``."""
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
        portfolio=portfolio(config),
        now=at,
    )
    engine.set_prices(price_inputs(prices.values()))
    # Failed reads go in too: the account is then held (READ_FAILED), or unknown for a debt.
    for watcher in watchers:  # a watcher reads only configured tokens
        apply_readings(engine, watcher.chain.name, watcher.holdings)
    ledger = VenueLedger()
    for result in venues:
        feed = ledger.apply(result).feed
        engine.add_tokens(feed.tokens)
        engine.load_holdings(feed.holdings)
    engine.set_token_flags(ledger.drift_flags({v.name: v.chain for v in config.venues}))
    engine.recompute_all()
    return engine


def evaluate(
    config: Config,
    snapshots: Sequence[ChainSnapshot],
    prices: dict[str, AssetPrice],
    sequencers: Mapping[str, SequencerStatus | None],
    *,
    at: float,
    venues: Sequence[VenueResult] = (),
) -> list[StoredHealth]:
    """Run the engine over one snapshot, one oracle round and the venues' reads, as the
    daemon does; return every account's state with its breakdown
    (``daemon.documents.engine_state``) as of ``at``."""
    engine = build_engine(config, snapshots, prices, sequencers, venues, at=at)
    table = engine.results
    decimals = config.margin.value_decimals
    return [
        engine_state(
            account,
            table,
            i,
            value_decimals=decimals,
            at=at,
            breakdown=breakdown_record(engine.account_health(account)),
        )
        for i, account in enumerate(engine.accounts)
    ]


def ranked(healths: Sequence[StoredHealth]) -> list[StoredHealth]:
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


async def market_pass(config: Config) -> MarketPass:
    """Snapshot balances and run one oracle round concurrently, then read every venue."""
    async with open_oracle(config) as oracle:
        snapshots, prices = await asyncio.gather(take_snapshot(config), oracle.run_round())
        now = time.time()
        sequencers = {c.name: oracle.sequencer_status(c.name, now) for c in config.chains}
    venues = await read_venues(config, prices)
    return MarketPass(
        snapshots=snapshots, prices=prices, sequencers=sequencers, at=now, venues=venues
    )


@dataclass(frozen=True, slots=True)
class HealthPass:
    """What one ``health`` pass found: every engine account, the chains' snapshots and each
    account's venue documents."""

    healths: list[StoredHealth]
    snapshots: list[ChainSnapshot]
    venues: dict[str, list[dict[str, object]]] = field(default_factory=dict)


async def health_pass(config: Config) -> HealthPass:
    """One market pass (balances, an oracle round, every venue), then the engine."""
    m = await market_pass(config)
    ledger = VenueLedger()
    for result in m.venues:
        ledger.apply(result)
    healths = evaluate(config, m.snapshots, m.prices, m.sequencers, at=m.at, venues=m.venues)
    documents = {a: ledger.venues_of(a) for a in ledger.documents}
    return HealthPass(healths, m.snapshots, documents)


def print_health(
    found: HealthPass,
    *,
    as_json: bool,
    account: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """Print the pass; unreachable chains are reported on stderr. Always exit 0."""
    healths, snapshots = found.healths, found.snapshots
    for snap in snapshots:
        if snap.error is not None:
            sys.stderr.write(
                f"crossmargin: chain {snap.chain.name} unreachable, valued as stale: {snap.error}\n"
            )
    wanted = None if account is None else account.lower()
    for health in ranked(healths):
        if wanted is not None and health.account != wanted:
            continue
        venues = found.venues.get(health.account, [])
        if as_json:
            out.write(json.dumps(account_document(health, venues)) + "\n")
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
        for venue in venues:
            marks = (["LIQUIDATABLE"] if venue["liquidatable"] else []) + [
                str(flag)
                for flag in venue["flags"]  # type: ignore[attr-defined]
            ]
            out.write(
                f"  venue {venue['venue']} health {venue['health'] or 'inf'} "
                f"{','.join(marks) or '-'}\n"
            )
    return 0
