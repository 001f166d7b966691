"""The option scan over a book larger than one scan chunk (``SCAN_CHUNK_PAIRS``), with pairs
deeper than the rank sweeps (``MAX_RANK_SWEEPS``): a full pass equals each account evaluated
alone, bit for bit, and the independent implementation within the cents of rounding."""

from __future__ import annotations

import random

import numpy as np
import pytest

from margin.options import OptionPosition, Right
from margin.portfolio import MAX_RANK_SWEEPS, SCAN_CHUNK_PAIRS
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
    sample = [0, 1, 2, *range(SCAN_CHUNK_PAIRS - 5, SCAN_CHUNK_PAIRS + 5), n - 1]
    sample += rng.sample(range(n), 20)
    for i in sample:
        owner = account(i)
        index = world.engine.account_index(owner)
        world.engine.recompute(np.array([index]))
        alone = world.engine.results.select(slice(index, index + 1))
        for name, column in alone.columns().items():
            np.testing.assert_array_equal(column, getattr(full, name)[index : index + 1], name)
        expected = world.expected(owner)
        slack = CENT * (2 + 3 + 2 * lines_of[owner])
        got = float(full.maintenance[index]) / 100
        assert got == pytest.approx(expected.maintenance, abs=slack), owner
        assert expected.maintenance > 0
