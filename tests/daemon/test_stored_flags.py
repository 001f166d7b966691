"""The engine loop's guess of the stored flags (``daemon.stored_flags``) and what the store
does with it: the accounts whose flags moved since the loop last stored them are committed
first; an account whose stored flags the loop did not know follows in the second
transaction, with its transition under the same cycle id."""

from __future__ import annotations

import asyncio
import concurrent.futures

import numpy as np
import sqlalchemy as sa

from daemon.config.model import MqttConfig
from daemon.engine_loop import EngineLoop
from daemon.mqtt.publisher import MqttPublisher
from daemon.store.cycle_transactions import SPLIT_CYCLE_ROWS
from daemon.store.migrate import migrate
from daemon.store.rows import CycleContext
from daemon.store.schema import health_transitions
from daemon.store.writer import HealthStore
from daemon.stored_flags import StoredFlags
from margin.kernel import FLAG_DTYPE
from margin.model import Flag
from tests.mqtt.test_relay import eth_at, half_flipping_book
from tests.storekit import account_address, book, book_rows, postgres_database


def test_the_moved_rows_come_first_and_a_failed_write_keeps_the_old_guess() -> None:
    stored = StoredFlags()

    def order(rows: list[int], flags: list[int]) -> tuple[list[int], int]:
        ordered, first = stored.order(np.array(rows, dtype=np.intp), np.array(flags, FLAG_DTYPE))
        return ordered.tolist(), first

    assert order([0, 1, 2, 3], [0, 1, 0, 3]) == ([0, 1, 2, 3], 4)  # none stored since start
    stored.written()
    assert order([3, 1, 0], [0, 0, 0, 3]) == ([1, 3, 0], 1)  # 1 moved (1 → 0)
    # that write failed (``written`` not called): 1 is still expected to move
    assert order([1, 2], [0, 0, 4, 3]) == ([1, 2], 2)  # and 2 moves now
    stored.written()
    assert order([1, 2], [0, 0, 4, 3]) == ([1, 2], 0)
    assert order([4, 0, 2], [0, 0, 4, 3, 0]) == ([4, 0, 2], 1)  # a new account: never stored


async def test_a_flip_the_engine_did_not_expect_is_stored_after_the_first_commit() -> None:
    """PostgreSQL: half of the accounts flip at ETH 1,000, and account 0 — healthy in the
    engine — was stored liquidatable by another writer (as after a restart or a takeover).
    The engine's flips are committed first (the relay is woken for them), account 0's
    recovery in the second transaction (woken again), both under the write's one cycle."""
    accounts = 4 * SPLIT_CYCLE_ROWS
    t = health_transitions.c
    async with postgres_database() as url:
        await migrate(url)
        async with (
            await HealthStore.open(url) as store,
            MqttPublisher(MqttConfig()) as publisher,  # off
        ):
            loop = EngineLoop(
                engine=half_flipping_book(accounts),
                store=store,
                publisher=publisher,
                value_decimals=2,
            )
            await loop.cycle([eth_at("2000", 1.0)])  # every account stored, healthy
            under_water = book_rows(book(1, underwater_every=1))  # account 0, liquidatable
            await store.write_cycle(under_water, CycleContext(at=1.5, blocks={"eth": 1}))
            async with store.engine.connect() as conn:
                before = await conn.scalar(sa.select(sa.func.max(t.id)))

            async def appended() -> tuple[int, int]:
                async with await HealthStore.open(url) as other, other.engine.connect() as conn:
                    query = sa.select(sa.func.count(), sa.func.count(sa.distinct(t.cycle_id)))
                    count, cycles = (await conn.execute(query.where(t.id > before))).one()
                    return count, cycles

            seen: list[tuple[int, int]] = []

            def look() -> None:
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    seen.append(pool.submit(asyncio.run, appended()).result())

            loop.transition_listeners.append(look)
            await loop.cycle([eth_at("1000", 2.0)])  # the odd accounts flip
            recovered = await store.queries.transitions(account=account_address(0))
    assert seen == [(accounts // 2, 1), (accounts // 2 + 1, 1)]
    assert [(x.from_flags, x.to_flags) for x in recovered] == [
        (Flag.NONE, Flag.LIQUIDATABLE),
        (Flag.LIQUIDATABLE, Flag.NONE),
    ]
