"""The oracle's state through the real store (PostgreSQL and SQLite): written with each round
on the engine loop's path, loaded at start, exact, never moved back by a replay, and an
unreadable document skipped instead of stopping the start."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from core.domain import PriceStatus
from daemon.config.load import parse_config
from daemon.store.engine import write_transaction
from daemon.store.schema import oracle_state
from daemon.store.writer import HealthStore
from daemon.wiring import resumed_states
from oracles.aggregate import AssetAggregator
from oracles.model import AssetPrice, OracleParams, SourceKind, SourceQuote
from oracles.resume import state_from_json
from tests.pricekit import oracle_config_data

T0 = 1_700_000_000.0
D = Decimal
ETH = OracleParams(
    min_sources=2, max_deviation=0.02, max_jump=0.2, confirm_rounds=3, volatility_floor=0.5
)


def manipulated_round(agg: AssetAggregator, now: float, data_at: float) -> AssetPrice:
    """Two of three sources at +60 % (data observed at ``data_at``), one honest."""
    quotes = [
        SourceQuote(
            source_id=sid,
            kind=SourceKind.HTTP,
            price=D(price),
            observed_at=at,
            max_age_s=60.0,
            confidence=D("0.000001"),
        )
        for sid, price, at in (("a", "3200.000001", data_at), ("b", "3200", data_at))
    ]
    honest = SourceQuote(
        source_id="c", kind=SourceKind.HTTP, price=D("2000.1"), observed_at=now, max_age_s=60.0
    )
    return agg.round([*quotes, honest], now)


async def test_the_state_is_stored_with_each_round_and_resumes_exactly(
    store: HealthStore,
) -> None:
    agg = AssetAggregator(symbol="ETH", params=ETH)
    honest = [
        SourceQuote(source_id=s, kind=SourceKind.HTTP, price=D(p), observed_at=T0, max_age_s=60.0)
        for s, p in (("a", "2000.1"), ("b", "2000.3"), ("c", "2000.2"))
    ]
    rounds = [agg.round(honest, T0)]
    rounds += [manipulated_round(agg, T0 + 10 * i, T0 + 10) for i in (1, 2)]
    assert rounds[-1].status is PriceStatus.TRIPPED
    for price in rounds:  # as the engine loop writes them: one cycle per round
        await store.write_engine_cycle(balances=(), prices=[price], rows=None, context=None)

    documents = (await store.load_state()).oracle_states
    assert set(documents) == {"ETH"}
    assert state_from_json(documents["ETH"]) == agg.state  # Decimals and floats exact
    resumed = AssetAggregator(symbol="ETH", params=ETH, state=state_from_json(documents["ETH"]))
    assert manipulated_round(resumed, T0 + 30, T0 + 30) == manipulated_round(agg, T0 + 30, T0 + 30)


async def test_an_older_round_never_replaces_a_newer_state(store: HealthStore) -> None:
    agg = AssetAggregator(symbol="ETH", params=ETH)
    first = manipulated_round(agg, T0, T0)  # accepted: nothing to jump from
    later = manipulated_round(agg, T0 + 10, T0 + 10)
    await store.record_prices([later, first])  # one batch, out of order
    await store.record_prices([first])  # a replay of an older round
    stored = state_from_json((await store.load_state()).oracle_states["ETH"])
    assert stored == later.resume


async def test_an_unreadable_state_is_skipped_and_the_asset_starts_fresh(
    store: HealthStore, caplog: pytest.LogCaptureFixture
) -> None:
    agg = AssetAggregator(symbol="ETH", params=ETH)
    await store.record_prices([manipulated_round(agg, T0, T0)])
    async with write_transaction(store.engine) as conn:
        await conn.execute(
            oracle_state.insert(),
            [
                {"asset": "BTC", "round_at": T0, "state": {"version": 99}, "updated_at": T0},
                {"asset": "OLD", "round_at": T0, "state": {"version": 1}, "updated_at": T0},
            ],
        )
    source = {"kind": "http", "url": "http://127.0.0.1:1/p", "price_path": "p"}
    assets = [{"symbol": s, "sources": [source]} for s in ("ETH", "BTC")]
    chains = [{"name": "a", "chain_id": 1, "rpc_urls": ["http://127.0.0.1:1"]}]
    config = parse_config(oracle_config_data(assets, chains))
    caplog.set_level(logging.INFO)
    states = resumed_states(config, (await store.load_state()).oracle_states)
    assert set(states) == {"ETH"}  # BTC unreadable, OLD not configured
    assert states["ETH"] == agg.state
    assert "oracle.state_discarded asset=BTC reason=unknown state version 99" in caplog.text
