"""The market's cache of unit P&Ls (``margin.portfolio.UnitTable``) and the short scan of an
incremental recompute (``_scan_few``) that reads it.

The cache keeps its rows in the order they were computed and finds them through its sorted
keys: when a later call brings keys smaller than those kept, sorted positions and rows part
ways, and a lookup that confused the two would hand one contract another's P&L. These cases
make it do exactly that, directly and through the engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from margin import portfolio
from margin.model import PriceInput
from margin.options import Right
from margin.portfolio import UnitTable
from tests.margin import portfolio_oracle as oracle
from tests.margin.portfolio_kit import World, option

ACCOUNTS = [f"0x{i:040x}" for i in range(1, 7)]
CENT = 0.01


def _rows_of(keys: np.ndarray) -> np.ndarray:
    """A row per key that names it: (key, 2·key, −key)."""
    k = keys.astype(np.float64)
    return np.column_stack([k, 2 * k, -k])


def test_rows_follow_their_keys_whatever_order_they_were_computed_in() -> None:
    table = UnitTable()
    asked: list[list[int]] = []
    batches = ([50, 40, 30], [10, 40, 20, 10], [5, 45, 30], [60, 5, 10, 50, 20], [45, 5, 60, 10])
    for batch in batches:
        keys = np.array(batch, dtype=np.intp)

        def rows(at: np.ndarray, keys: np.ndarray = keys) -> np.ndarray:
            asked.append(sorted(keys[at].tolist()))
            return _rows_of(keys[at])

        assert np.array_equal(table.rows(keys, rows), _rows_of(keys)), batch
    # each key computed once (duplicates within a call too); the last batch all kept
    assert asked == [[30, 40, 50], [10, 20], [5, 45], [60]]
    assert len(table) == 8


def test_a_full_table_starts_again_and_still_answers_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(portfolio, "CACHED_CONTRACTS", 1)  # at most 4 rows
    table = UnitTable()
    for batch in ([3, 1], [2, 0], [9, 7, 8], [1, 3]):
        keys = np.array(batch, dtype=np.intp)
        got = table.rows(keys, lambda at, keys=keys: _rows_of(keys[at]))
        assert np.array_equal(got, _rows_of(keys)), batch
        assert len(table) <= 4


def test_a_table_grown_past_its_first_capacity_keeps_its_rows() -> None:
    # 200 keys: the first rows are made for 400; 300 more make the table grow (to 1,000
    # rows): the rows kept are copied over, and every key still answers its own row
    table = UnitTable()
    first, second = np.arange(0, 400, 2, dtype=np.intp), np.arange(1, 600, 2, dtype=np.intp)
    for keys in (first, second, np.union1d(first, second)):
        got = table.rows(keys, lambda at, keys=keys: _rows_of(keys[at]))
        assert np.array_equal(got, _rows_of(keys))
    assert len(table) == 500


def test_incremental_recomputes_in_any_order_equal_a_full_pass() -> None:
    """Accounts recomputed one at a time, last posted first, so that each brings contracts
    (and horizon levels) below those already kept; then every one again: each time equal to
    a full pass bit for bit, and to the oracle within cents."""
    world = World(volatility={"ETH": 0.7, "BTC": 0.5})
    chains = ["main", "arb", "main", "arb", "main", "arb"]
    for i, (account, chain) in enumerate(zip(ACCOUNTS, chains, strict=True)):
        world.hold(account, "usdc", 40_000 + 1_000 * i)
        world.options(
            account,
            [
                option(account, size=-1 - i, strike=1700 + 100 * i, days=3 + 9 * i, chain=chain),
                option(account, size=1, right=Right.PUT, strike=2100 - 50 * i, chain="main"),
            ],
        )
    engine = world.engine
    engine.recompute_all()
    full = engine.results.select(slice(None))
    # a new market empties the cache; then accounts one by one, newest contracts first
    engine.set_prices([PriceInput(asset="ETH", price=2000.0, volatility=0.71)])
    engine.set_prices([PriceInput(asset="ETH", price=2000.0, volatility=0.7)])
    for account in [*reversed(ACCOUNTS), *ACCOUNTS]:
        index = engine.account_index(account)
        engine.recompute(np.array([index], dtype=np.intp))
        for name, column in engine.results.columns().items():
            assert column[index] == full.columns()[name][index], (account, name)
    for account in ACCOUNTS:
        want = oracle.evaluate(world.setup(), world.book(account))
        got = engine.account_health(account)
        assert float(got.maintenance) == pytest.approx(want.maintenance, abs=8 * CENT)
