"""Option lines in the store: rows ↔ ``OptionPosition``, and an account's whole set replaced.

``PUT /v1/positions/{a}`` replaces an account's perps and options together, in the writer's
one transaction (``HealthStore.replace_positions``); readers get them ordered by asset, chain,
right, strike and expiry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.store.schema import options
from margin.options import OptionPosition, Right

ORDER = (
    options.c.account,
    options.c.asset,
    options.c.chain,
    options.c.option_right,
    options.c.strike,
    options.c.expiry,
)


def option_from_row(row: Row[Any]) -> OptionPosition:
    """An ``OptionPosition`` from an ``options`` row (validated again on the way out)."""
    return OptionPosition(
        account=row.account,
        asset=row.asset,
        chain=row.chain,
        size=row.size,
        right=Right(row.option_right),
        strike=row.strike,
        expiry=int(row.expiry),
        implied_vol=row.implied_vol,
    )


async def replace_options(
    conn: AsyncConnection, account: str, items: Sequence[OptionPosition], at: float | None
) -> int:
    """Make ``items`` the account's option lines (inside the caller's transaction); return
    how many stored lines are gone."""
    account = account.lower()
    keys = (options.c.asset, options.c.chain, options.c.option_right, options.c.strike)
    old = await conn.execute(sa.select(*keys, options.c.expiry).where(options.c.account == account))
    before = {tuple(row) for row in old.all()}
    await conn.execute(sa.delete(options).where(options.c.account == account))
    if items:
        now = time.time() if at is None else at
        await conn.execute(
            options.insert(),
            [
                {
                    "account": account,
                    "asset": o.asset,
                    "chain": o.chain,
                    "option_right": o.right.value,
                    "strike": o.strike,
                    "expiry": o.expiry,
                    "size": o.size,
                    "implied_vol": o.implied_vol,
                    "updated_at": now,
                }
                for o in items
            ],
        )
    kept = {(o.asset, o.chain, o.right.value, o.strike, o.expiry) for o in items}
    return len(before - kept)


async def read_options(conn: AsyncConnection, account: str | None = None) -> list[OptionPosition]:
    """Stored option lines (of one account)."""
    query = sa.select(options).order_by(*ORDER)
    if account is not None:
        query = query.where(options.c.account == account.lower())
    return [option_from_row(row) for row in (await conn.execute(query)).all()]
