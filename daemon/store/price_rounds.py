"""Oracle rounds in the store: the price history and each asset's resumable oracle state."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.store.bulk import insert_for, on_conflict_nothing, on_conflict_update
from daemon.store.schema import oracle_state, price_history
from oracles.model import AssetPrice
from oracles.resume import state_to_json


def _price_rows(prices: Iterable[AssetPrice]) -> list[dict[str, Any]]:
    """``price_history`` rows of oracle rounds."""
    return [
        {
            "asset": p.symbol,
            "round_at": p.round_at,
            "status": str(p.status),
            "price": p.price,
            "price_low": p.price_low,
            "price_high": p.price_high,
            "round_price": p.round_price,
            "observed_at": p.observed_at,
            "held": p.held,
            "hold_reason": None if p.hold_reason is None else str(p.hold_reason),
            "spread": p.spread,
            "volatility": p.volatility,
            "sources": {
                "used": list(p.used),
                "anchors": list(p.anchors),
                "dropped": {k: str(v) for k, v in sorted(p.dropped.items())},
            },
        }
        for p in prices
    ]


async def insert_prices(conn: AsyncConnection, rounds: Sequence[AssetPrice]) -> None:
    """Append the rounds to ``price_history``; move each asset's ``oracle_state`` to its
    newest round (never back to an older one: a replay leaves a newer state as it is)."""
    stmt = insert_for(conn, price_history)
    await conn.execute(
        on_conflict_nothing(stmt, conflict=["asset", "round_at"]), _price_rows(rounds)
    )
    newest: dict[str, AssetPrice] = {}
    for p in rounds:
        if p.resume is not None and (
            p.symbol not in newest or p.round_at >= newest[p.symbol].round_at
        ):
            newest[p.symbol] = p
    if not newest:
        return
    now = time.time()
    rows = [
        {
            "asset": p.symbol,
            "round_at": p.round_at,
            "state": state_to_json(p.resume),
            "updated_at": now,
        }
        for p in newest.values()
        if p.resume is not None
    ]
    upsert = insert_for(conn, oracle_state)
    newer = upsert.excluded.round_at >= oracle_state.c.round_at
    await conn.execute(
        on_conflict_update(
            upsert, conflict=["asset"], update=["round_at", "state", "updated_at"], where=newer
        ),
        rows,
    )
