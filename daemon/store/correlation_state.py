"""The correlation estimator's state in SQL (table ``correlation_state``, one row per pair).

``correlation_source: ewma`` needs hours of returns before a pair's estimate replaces its
static value (``oracles.correlation``); a restart resumes from what was saved instead of
starting the warm-up again. The daemon saves every ``SAVE_INTERVAL_S`` while running and once
at shutdown, in a transaction of its own (not the engine cycle's: a state a little older than
the newest prices only means a return spanning a little more time, counted all the same).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import OracleStateInvalid
from daemon.store.bulk import insert_for, on_conflict_update
from daemon.store.engine import reporting_unavailable, write_transaction
from daemon.store.schema import correlation_state
from oracles.correlation import PairState
from oracles.resume import pair_state_from_json, pair_state_to_json

log = logging.getLogger(__name__)

SAVE_INTERVAL_S = 30.0
"""How often a running daemon saves the estimator (a crash loses at most this much)."""


async def save_correlation_state(
    engine: AsyncEngine, states: Mapping[str, PairState], now: float
) -> None:
    """Upsert every pair's state (``StoreUnavailable`` when the database does not answer)."""
    if not states:
        return
    rows = [
        {"pair": pair, "state": pair_state_to_json(state), "updated_at": now}
        for pair, state in sorted(states.items())
    ]
    async with write_transaction(engine) as conn:
        stmt = on_conflict_update(
            insert_for(conn, correlation_state), conflict=["pair"], update=["state", "updated_at"]
        )
        await conn.execute(stmt, rows)


async def load_correlation_state(engine: AsyncEngine) -> dict[str, PairState]:
    """Every stored pair's state; a document of an unknown version or shape is logged and
    left out (that pair starts afresh)."""
    async with reporting_unavailable(engine), engine.connect() as conn:
        rows = (await conn.execute(sa.select(correlation_state))).all()
    states: dict[str, PairState] = {}
    for row in rows:
        try:
            states[row.pair] = pair_state_from_json(row.state)
        except OracleStateInvalid as exc:
            log.warning("correlation.state_discarded pair=%s reason=%s", row.pair, exc)
    return states
