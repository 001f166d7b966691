"""The option scan over a book larger than one scan chunk (``SCAN_CHUNK_PAIRS``), with pairs
deeper than the rank sweeps (``MAX_RANK_SWEEPS``): a full pass equals each account evaluated
alone, bit for bit, and the independent implementation within the cents of rounding; chunks
scanned on two threads (stress passes) give the same results as on one."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from margin import portfolio
from margin.kernel import HealthTable
from margin.model import PriceInput
from margin.options import OptionPosition, Right
from margin.portfolio import FEW_LINES, MAX_RANK_SWEEPS, MIN_CHUNKS_PER_THREAD, SCAN_CHUNK_PAIRS
from margin.stress import STRESS_THREADS
from tests.margin.portfolio_kit import CHAINS, World, option

CENT = 0.01
HOLDINGS = ["eth-main", "eth-arb", "eth-slow", "usdc", "btc", "usdc-debt", "usdc-debt-arb"]


def account(i: int) -> str:
    return f"0x{i + 1:040x}"


def random_line(owner: str, rng: random.Random, world: World, asset: str) -> OptionPosition:
    return option(
        owner,
        asset=asset,
        chain=rng.choice(list(CHAINS)),
        size=round(rng.uniform(-5, 5), 3) or 1.0,
        right=rng.choice(list(Right)),
        strike=round(world.prices[asset] * rng.uniform(0.7, 1.3), 2),
        days=rng.choice([-1, 3, 30, 90]),  # an expired line among them
        vol=rng.choice([0.5, 0.8]),
        now=world.now,
    )


def assert_alone_equals_full(world: World, full: HealthTable, owner: str, lines: int) -> None:
    """``owner`` valued alone equals its row of the ``full`` pass bit for bit, and the
    independent implementation within a cent per rounding (``lines`` option lines)."""
    index = world.engine.account_index(owner)
    world.engine.recompute(np.array([index]))
    alone = world.engine.results.select(slice(index, index + 1))
    for name, column in alone.columns().items():
        np.testing.assert_array_equal(column, getattr(full, name)[index : index + 1], name)
    expected = world.expected(owner)
    got = float(full.maintenance[index]) / 100
    assert got == pytest.approx(expected.maintenance, abs=CENT * (2 + 3 + 2 * lines)), owner
    assert expected.maintenance > 0


def test_a_book_of_many_chunks_equals_its_accounts_alone() -> None:
    rng = random.Random(11)
    world = World(volatility={"ETH": 0.9, "BTC": 0.6})
    n = SCAN_CHUNK_PAIRS + 300
    lines_of: dict[str, int] = {}
    for i in range(n):
        owner = account(i)
        for token in rng.sample(HOLDINGS, 3):
            world.hold(owner, token, float(rng.randrange(100, 50_000)))
        depth = {0: MAX_RANK_SWEEPS + 4, 1: 3}.get(i, 1)  # #0: deeper than the sweeps
        lines = [random_line(owner, rng, world, "ETH") for _ in range(depth)]
        if i % 7 == 0:
            lines.append(random_line(owner, rng, world, "BTC"))
        world.options(owner, lines)
        lines_of[owner] = len(lines)
    full = world.engine.recompute_all().select(slice(None))
    # every account again as one batch: a batch's option rows come without the book's kept
    # layout, and beyond FEW_LINES lines the scan lays them out itself
    every = np.array([world.engine.account_index(account(i)) for i in range(n)])
    assert sum(lines_of.values()) > FEW_LINES
    world.engine.recompute(every)
    batch = world.engine.results.select(every)
    for name, column in batch.columns().items():
        np.testing.assert_array_equal(column, getattr(full, name)[every], name)
    sample = [0, 1, 2, *range(SCAN_CHUNK_PAIRS - 5, SCAN_CHUNK_PAIRS + 5), n - 1]
    sample += rng.sample(range(n), 20)
    for i in sample:
        assert_alone_equals_full(world, full, account(i), lines_of[account(i)])


def test_a_full_pass_adds_up_pairs_of_a_few_lines_rank_by_rank() -> None:
    """A full pass (the book's kept layout) sums the lines of pairs of at most
    MAX_RANK_SWEEPS + 1 lines one rank at a time: pairs of 2, 3 and MAX_RANK_SWEEPS + 1
    lines, after pairs of one, each equal to its account valued alone (the short scan, one
    bincount) bit for bit, and to the oracle within a cent per line."""
    rng = random.Random(23)
    world = World(volatility={"ETH": 0.9, "BTC": 0.6})
    depths = [1, 2, 1, 3, MAX_RANK_SWEEPS + 1, 2]
    owners = [account(i) for i in range(len(depths))]
    for owner, depth in zip(owners, depths, strict=True):
        world.hold(owner, "usdc", float(rng.randrange(20_000, 60_000)))
        world.options(owner, [random_line(owner, rng, world, "ETH") for _ in range(depth)])
    full = world.engine.recompute_all().select(slice(None))
    for owner, depth in zip(owners, depths, strict=True):
        assert_alone_equals_full(world, full, owner, depth)


@pytest.mark.parametrize("offset", [0, 100_000])
def test_the_layout_groups_pairs_and_numbers_contracts_dense_or_sparse(offset: int) -> None:
    """``option_layout`` as documented: one-line pairs first, then the others, each part by
    pair; per row its place in its pair; contracts numbered by ascending id, through the
    linear-time table (ids below 8 per row + 4,096) or ``np.unique`` (ids far above)."""
    o_pair = np.array([5, 2, 5, 9, 2, 5, 7], dtype=np.intp)
    contract = np.array([3, 1, 3, 0, 2, 1, 3], dtype=np.intp) + offset
    layout = portfolio.option_layout(o_pair, contract)
    assert o_pair[layout.order].tolist() == [7, 9, 2, 2, 5, 5, 5]
    assert layout.pair_ids.tolist() == [7, 9, 2, 5]
    assert layout.starts.tolist() == [0, 1, 2, 4]
    assert layout.counts.tolist() == [1, 1, 2, 3]
    assert layout.pair_of.tolist() == [0, 1, 2, 2, 3, 3, 3]
    assert layout.rank.tolist() == [0, 0, 0, 1, 0, 1, 2]
    ids = contract[layout.order]
    assert (ids[layout.contract_row] - offset).tolist() == [0, 1, 2, 3]
    assert layout.contract_of.tolist() == [3, 0, 1, 2, 3, 3, 1]


def test_a_full_pass_after_the_options_change_equals_a_fresh_book() -> None:
    """Full passes keep the rows' layout while the option lines and the risk groups stay as
    they are (a price move changes neither): after lines are added, replaced and closed, then
    after a perp on a new asset adds a group, a full pass and a stress snapshot equal a book
    built from scratch."""
    rng = random.Random(5)
    owners = [account(i) for i in range(40)]
    world = World(volatility={"ETH": 0.9, "BTC": 0.6})
    first = {o: [random_line(o, rng, world, "ETH")] for o in owners}
    final: dict[str, list[OptionPosition]] = {}
    for i, owner in enumerate(owners):
        if i % 3 == 0:
            final[owner] = [*first[owner], random_line(owner, rng, world, "BTC")]
        elif i % 3 == 1:
            final[owner] = []
        else:
            final[owner] = [random_line(owner, rng, world, "ETH")]

    def populate(book: World, lines_of: dict[str, list[OptionPosition]], sol: bool) -> None:
        holdings = random.Random(6)
        for owner in owners:
            book.hold(owner, holdings.choice(HOLDINGS), float(holdings.randrange(100, 9_000)))
        for owner, lines in lines_of.items():
            book.options(owner, lines)
        if sol:
            book.perp(owners[1], "SOL", "main", 3.0, 100.0)

    def check(sol: bool) -> None:
        got = world.engine.recompute_all().select(slice(None))
        fresh = World(volatility={"ETH": 0.9, "BTC": 0.6})
        populate(fresh, final, sol)
        want = fresh.engine.recompute_all()
        snapshot = world.engine.snapshot()
        stressed = snapshot.evaluate(snapshot.prices).table
        for name, column in got.columns().items():
            np.testing.assert_array_equal(column, getattr(want, name), err_msg=name)
            np.testing.assert_array_equal(getattr(stressed, name), column, err_msg=name)

    populate(world, first, sol=False)
    world.engine.recompute_all()
    for owner, lines in final.items():
        world.options(owner, lines)
    check(sol=False)
    world.perp(owners[1], "SOL", "main", 3.0, 100.0)  # a new group; no option line changes
    check(sol=True)


def test_a_stress_pass_on_two_threads_equals_the_engines_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stress pass scans option chunks and computes linear losses on ``STRESS_THREADS``
    threads, the engine on one: with small chunks and blocks (many of them, pairs of one line
    and of many) both give the same results bit for bit, at the current prices and after a
    move."""
    monkeypatch.setattr(portfolio, "SCAN_CHUNK_PAIRS", 16)
    monkeypatch.setattr(portfolio, "BLOCK_ACCOUNTS", 16)  # linear blocks on threads too
    rng = random.Random(12)
    world = World(volatility={"ETH": 0.9, "BTC": 0.6})
    for i in range(400):
        owner = account(i)
        for token in rng.sample(HOLDINGS, 3):
            world.hold(owner, token, float(rng.randrange(100, 50_000)))
        lines = [random_line(owner, rng, world, "ETH") for _ in range(1 + i % 3)]
        if i % 5 == 0:
            lines.append(random_line(owner, rng, world, "BTC"))
        world.options(owner, lines)
    assert STRESS_THREADS > 1
    for move in (1.0, 0.8):
        world.engine.set_prices(
            [PriceInput(asset="ETH", price=world.prices["ETH"] * move, volatility=0.9)]
        )
        single = world.engine.recompute_all()
        snapshot = world.engine.snapshot()
        threaded = snapshot.evaluate(snapshot.prices, threads=STRESS_THREADS).table
        for name, column in single.columns().items():
            np.testing.assert_array_equal(getattr(threaded, name), column, err_msg=name)


def test_chunks_run_once_each_on_two_threads_at_once() -> None:
    """``_run_chunks`` hands every chunk to exactly one of the threads, which run together
    (each waits at a barrier for the other: one thread alone would time out there)."""
    starts = range(0, 64 * MIN_CHUNKS_PER_THREAD, 32)
    together = threading.Barrier(2, timeout=60)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def scan(start: int) -> None:
        me = threading.get_ident()
        with lock:
            first = all(ident != me for _, ident in seen)
            seen.append((start, me))
        if first:
            together.wait()

    portfolio._run_chunks(scan, starts, 2)
    assert sorted(start for start, _ in seen) == list(starts)
    assert len({ident for _, ident in seen}) == 2
    alone: list[int] = []
    portfolio._run_chunks(alone.append, range(0, 32 * MIN_CHUNKS_PER_THREAD, 32), 2)
    assert alone == list(range(0, 32 * MIN_CHUNKS_PER_THREAD, 32))  # too few: in order, here


@pytest.mark.parametrize("chunks", [5, 6, 7])
def test_a_few_chunks_more_than_one_threads_share_run_once_each(chunks: int) -> None:
    """Between one and two threads' share of chunks (4 to 8 chunks for 2 threads): the
    thread count is a whole number (1 here), every chunk runs once, in order."""
    seen: list[int] = []
    portfolio._run_chunks(seen.append, range(chunks), 2)
    assert seen == list(range(chunks))


def test_snapshots_share_the_option_rows_until_a_line_changes() -> None:
    """Snapshots reuse one copy of the option rows while no line changes: a snapshot taken
    before a change still values the old lines, one taken after it the new ones."""
    rng = random.Random(13)
    world = World(volatility={"ETH": 0.9, "BTC": 0.6})
    owners = [account(i) for i in range(30)]
    for owner in owners:
        world.hold(owner, rng.choice(HOLDINGS), float(rng.randrange(100, 9_000)))
        world.options(owner, [random_line(owner, rng, world, "ETH")])
    first = world.engine.snapshot()
    was = first.evaluate(first.prices).table.select(slice(None))
    again = world.engine.snapshot()
    assert again.options.size is first.options.size  # shared: nothing changed
    world.options(owners[4], [random_line(owners[4], rng, world, "BTC")])
    world.options(owners[9], [])
    after = world.engine.snapshot()
    now = world.engine.recompute_all()
    for name, column in first.evaluate(first.prices).table.columns().items():
        np.testing.assert_array_equal(column, getattr(was, name), err_msg=name)
    for name, column in after.evaluate(after.prices).table.columns().items():
        np.testing.assert_array_equal(column, getattr(now, name), err_msg=name)
    assert not np.array_equal(now.unrealized_pnl, was.unrealized_pnl)
