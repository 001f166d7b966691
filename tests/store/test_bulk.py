"""No statement of the engine's write grows its parameter count with the book: one write
after an outage carries more balances, health rows and transitions than PostgreSQL's 32,767
bind parameters (asyncpg) or SQLite's variable limit allow in one statement, plus every
price round kept meanwhile, on both dialects."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from chains.blocks import BlockRef
from chains.watcher import BalanceUpdate, Reading
from daemon.pending_writes import PENDING_ROUNDS_PER_ASSET, PendingWrites
from daemon.store.rows import CycleContext
from daemon.store.schema import balances, health_transitions, price_history
from daemon.store.writer import HealthStore
from margin.model import Flag, PriceInput
from tests.storekit import (
    WETH,
    account_address,
    asset_price,
    book,
    book_rows,
)

ACCOUNTS = 45_000  # > 32,767 parameters even at one per row
ROUND_ASSETS = ("ETH", "USDC", "BTC")
CRASH_ETH = 1_000.0  # 0.8 x 1,000 + 0.9 x 100 = 890 < 1,000 owed: every account under water


def weth_update(number: int, raw: int) -> BalanceUpdate:
    block = BlockRef(
        number=number, hash=f"0x{number:064x}", parent_hash=f"0x{number - 1:064x}", timestamp=0
    )
    readings = {
        (account_address(i), WETH): Reading(raw, number, block.hash) for i in range(ACCOUNTS)
    }
    return BalanceUpdate(chain="eth", block=block, readings=readings)


async def count(store: HealthStore, table: sa.Table) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_one_write_after_an_outage_flips_every_account(store: HealthStore) -> None:
    engine = book(ACCOUNTS, underwater_every=ACCOUNTS)  # only account 0 under water
    first = await store.write_engine_cycle(
        balances=[weth_update(100, 10**18)],
        prices=[asset_price("ETH", "2000", 1.0)],
        rows=book_rows(engine),
        context=CycleContext(at=1.0, blocks={"eth": 100}, key="bulk:1"),
    )
    assert first == 1  # healthy newcomers are silent
    assert [e.account for e in await store.queries.outbox(limit=10)] == [account_address(0)]

    # The outage: blocks, rounds and a crash pile up as pending state, then one write.
    pending = PendingWrites()
    for number in range(101, 104):
        pending.add_balances([weth_update(number, 10**18 + number)])
    for asset in ROUND_ASSETS:  # 3,000 rows x 15 columns: 45,000 values in one executemany
        pending.add_rounds(
            asset_price(asset, str(2000 - i), 2.0 + i) for i in range(PENDING_ROUNDS_PER_ASSET)
        )
    engine.set_prices([PriceInput(asset="ETH", price=CRASH_ETH)])
    pending.add_accounts(np.arange(ACCOUNTS, dtype=np.intp))
    batch = pending.take()
    rows = book_rows(engine)
    assert len(rows) == ACCOUNTS
    flipped = await store.write_engine_cycle(
        balances=batch.balances,
        prices=batch.rounds,
        rows=rows,
        context=CycleContext(at=2.0, blocks={"eth": 103}, key="bulk:2"),
    )

    assert flipped == ACCOUNTS - 1
    outbox = await store.queries.outbox(limit=ACCOUNTS + 1)
    assert len(outbox) == ACCOUNTS
    assert {(e.from_flags, e.to_flags) for e in outbox[1:]} == {(Flag.NONE, Flag.LIQUIDATABLE)}
    assert {e.account for e in outbox[1:]} == {account_address(i) for i in range(1, ACCOUNTS)}
    assert await count(store, health_transitions) == ACCOUNTS  # each account once
    assert (await store.queries.liquidatable_page()).total == ACCOUNTS
    assert await count(store, balances) == ACCOUNTS
    stored = (await store.queries.balances("eth"))["eth"]
    assert {r.raw for r in stored.values()} == {10**18 + 103}
    assert await count(store, price_history) == 1 + len(ROUND_ASSETS) * PENDING_ROUNDS_PER_ASSET
