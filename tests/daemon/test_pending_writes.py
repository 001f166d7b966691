"""What the engine keeps for the store while it is down: the latest reading per pair, reorgs
carried over, a bounded number of price rounds, and a failed batch put back under newer
state."""

from __future__ import annotations

import numpy as np

from chains.blocks import BlockRef
from chains.readings import ReadColumns, TokenReads
from chains.watcher import BalanceUpdate, Reading
from daemon.pending_writes import PendingWrites
from tests.storekit import asset_price

TOKEN = "0x" + "70" * 20
A, B, C = ("0x" + c * 40 for c in "abc")


def block(number: int) -> BlockRef:
    return BlockRef(
        number=number, hash=f"0x{number:064x}", parent_hash=f"0x{number - 1:064x}", timestamp=0
    )


def update(number: int, values: dict[str, int | None], dropped: int | None = None) -> BalanceUpdate:
    at = block(number)
    readings = {(a, TOKEN): Reading(raw, at.number, at.hash) for a, raw in values.items()}
    return BalanceUpdate(chain="l1", block=at, readings=readings, dropped_above=dropped)


def raw_of(update: BalanceUpdate) -> dict[str, tuple[int | None, int]]:
    return {a: (r.raw, r.block_number) for (a, _), r in update.readings.items()}


def test_latest_reading_per_pair_wins_and_the_cursor_moves_to_the_newest_block() -> None:
    pending = PendingWrites()
    pending.add_balances([update(10, {A: 1, B: 2}), update(11, {A: 3}), update(12, {})])
    assert pending.balances == 2
    (merged,) = pending.take().balances
    assert raw_of(merged) == {A: (3, 11), B: (2, 10)}
    assert merged.block.number == 12
    assert merged.dropped_above is None
    assert not pending


def test_a_reorg_orphans_pending_readings_and_the_lowest_cut_reaches_the_store() -> None:
    pending = PendingWrites()
    pending.add_balances([update(10, {A: 1}), update(12, {B: 2}), update(13, {C: 3})])
    pending.add_balances([update(12, {B: 20}, dropped=11)])  # 12 and 13 were orphaned
    pending.add_balances([update(14, {A: 4}, dropped=13)])
    (merged,) = pending.take().balances
    assert raw_of(merged) == {A: (4, 14), B: (20, 12)}  # C's orphaned reading is gone
    assert merged.dropped_above == 11  # the store drops its rows above the lowest cut
    assert merged.block.number == 14


def test_price_rounds_are_bounded_per_asset_and_drops_are_counted() -> None:
    pending = PendingWrites(rounds_per_asset=3)
    pending.add_rounds(asset_price("ETH", str(2000 + i), 100.0 + i) for i in range(5))
    pending.add_rounds([asset_price("USDC", "1", 100.0)])
    assert (pending.rounds, pending.dropped_rounds) == (4, 2)
    rounds = pending.take().rounds
    assert [(p.symbol, p.round_at) for p in rounds] == [
        ("ETH", 102.0),
        ("ETH", 103.0),
        ("ETH", 104.0),
        ("USDC", 100.0),
    ]


def test_a_failed_batch_goes_back_under_what_arrived_since() -> None:
    pending = PendingWrites(rounds_per_asset=2)
    pending.add_balances([update(10, {A: 1, B: 1})])
    pending.add_rounds([asset_price("ETH", "2000", 100.0), asset_price("ETH", "1990", 101.0)])
    pending.add_accounts(np.array([0, 5], dtype=np.intp))
    failed = pending.take()

    # While the write failed: a newer reading of A, a new round, another account.
    pending.add_balances([update(11, {A: 2})])
    pending.add_rounds([asset_price("ETH", "1800", 102.0)])
    pending.add_accounts(np.array([7], dtype=np.intp))
    pending.put_back(failed)

    batch = pending.take()
    (merged,) = batch.balances
    assert raw_of(merged) == {A: (2, 11), B: (1, 10)}  # the newer reading wins
    assert merged.block.number == 11
    assert [p.round_at for p in batch.rounds] == [101.0, 102.0]  # the newest two
    assert pending.dropped_rounds == 1
    assert batch.accounts.tolist() == [0, 5, 7]


def test_a_reorg_while_a_batch_was_out_orphans_its_readings() -> None:
    pending = PendingWrites()
    pending.add_balances([update(10, {A: 1, B: 1}), update(11, {C: 1})])
    failed = pending.take()
    pending.add_balances([update(11, {B: 7}, dropped=9)])  # blocks 10 and 11 replaced
    pending.put_back(failed)
    (merged,) = pending.take().balances
    assert raw_of(merged) == {B: (7, 11)}
    assert merged.dropped_above == 9


def test_accounts_are_a_set_of_engine_rows() -> None:
    pending = PendingWrites()
    pending.add_accounts(np.array([3, 1, 3], dtype=np.intp))
    pending.add_accounts(np.array([100_000], dtype=np.intp))
    pending.add_accounts(np.array([], dtype=np.intp))
    assert pending.accounts == 3
    assert pending.take().accounts.tolist() == [1, 3, 100_000]
    assert pending.accounts == 0
    assert not pending


def columns(number: int, values: dict[str, int | None], *, partial: bool) -> BalanceUpdate:
    """The watcher's form of ``update``: columns, a part of a sweep when ``partial``."""
    at = block(number)
    reads = TokenReads(accounts=list(values), raws=list(values.values()))
    reads.failed = sum(raw is None for raw in reads.raws)
    readings = ReadColumns(at.number, at.hash, {TOKEN: reads})
    return BalanceUpdate(chain="l1", block=at, readings=readings, partial=partial)


def test_a_sweeps_parts_are_joined_as_columns_and_a_later_update_still_wins() -> None:
    pending = PendingWrites()
    parts = [columns(10, {A: 1}, partial=True), columns(10, {B: None}, partial=False)]
    pending.add_balances(parts)
    assert pending.balances == 2
    (joined,) = pending.take().balances
    assert isinstance(joined.readings, ReadColumns)  # no Reading per pair was built
    assert raw_of(joined) == {A: (1, 10), B: (None, 10)}
    # After the sweep, a part-free update merges as before (latest wins).
    pending.add_balances([*parts, columns(11, {A: 5}, partial=False)])
    (merged,) = pending.take().balances
    assert raw_of(merged) == {A: (5, 11), B: (None, 10)}


def test_a_bounded_take_leaves_the_other_accounts_pending() -> None:
    pending = PendingWrites()
    pending.add_balances([update(10, {A: 1})])
    pending.add_accounts(np.array([7, 3, 11, 5], dtype=np.intp))
    first = pending.take(max_accounts=3)
    assert first.accounts.tolist() == [3, 5, 7]
    assert len(first.balances) == 1  # balances and rounds go with the first part
    assert pending.accounts == 1
    rest = pending.take(max_accounts=3)
    assert (rest.accounts.tolist(), rest.balances) == ([11], [])
    assert not pending
