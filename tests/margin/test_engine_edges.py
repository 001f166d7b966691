"""The engine's account and row tables seen from outside (``margin.engine``, ``margin.rows``):
which accounts exist, in which order, and what each is worth, with numbers worked out in the
comments. Each case was added for a mutant that survived the fifth mutation pass
(bench/RESULTS.md, "Fifth pass").
"""

from __future__ import annotations

from decimal import Decimal

from margin.model import MarginModel
from tests.margin.portfolio_kit import World

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


def test_a_bulk_load_adds_new_accounts_after_those_already_known() -> None:
    # A is known; a sweep of USDC on main brings B and C (new) and A again (replaced): the
    # new ones get the next indices in the order first seen, and every balance counts whole
    # (USDC at 1, weight 0.8).
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.engine.load_balances(
        "main", "usdc", [B, A, C], [1_000 * 10**6, 2_000 * 10**6, 3 * 10**6], 2
    )
    assert list(world.engine.accounts) == [A, B, C]
    world.engine.recompute_all()
    for account, usd in ((A, 2_000), (B, 1_000), (C, 3)):
        health = world.engine.account_health(account)
        assert health.collateral_value == Decimal(usd)
        assert health.weighted_collateral == Decimal(usd) * Decimal("0.8")


def test_a_bulk_load_of_new_accounts_marks_exactly_them() -> None:
    # A is known and evaluated; a sweep finds B (a zero balance) and C: only B and C are
    # dirty (the next incremental recompute evaluates them, not A again).
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.engine.recompute_all()
    world.engine.load_balances("main", "usdc", [B, C], [0, 5 * 10**6], 2)
    assert world.engine.dirty_accounts().tolist() == [1, 2]
    assert world.engine.recompute_dirty(full_fraction=1.0).tolist() == [1, 2]
    assert world.engine.results.collateral_value.tolist() == [1_000_000.0, 0.0, 500.0]  # cents


def test_an_account_document_recomputes_a_dirty_account_first() -> None:
    # A's USDC drops from 10,000 to 4,000 and nothing recomputes: its document (the API's
    # account view) still shows 4,000, and the incremental recompute has nothing left to do.
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.hold(B, "usdc", 1_000)
    world.engine.recompute_all()
    world.engine.set_balance(A, "main", "usdc", 4_000 * 10**6, 2)
    assert world.engine.dirty_accounts().tolist() == [0]
    health = world.engine.account_health(A)
    assert health.collateral_value == Decimal(4_000)
    assert health.weighted_collateral == Decimal(3_200)
    assert world.engine.dirty_accounts().tolist() == []


def test_an_incremental_recompute_with_nothing_dirty_returns_usable_indices() -> None:
    # ``recompute_dirty`` returns the indices it evaluated: with nothing dirty, an empty
    # array of indices, which indexes the results to nothing (an empty float array, numpy's
    # default, would raise IndexError in a caller that indexes with it).
    world = World(model=MarginModel.WEIGHTED)
    world.hold(A, "usdc", 10_000)
    world.engine.recompute_all()
    touched = world.engine.recompute_dirty(full_fraction=1.0)
    assert touched.dtype.kind == "i"
    assert world.engine.results.health[touched].tolist() == []
    assert world.engine.dirty_accounts().tolist() == []
