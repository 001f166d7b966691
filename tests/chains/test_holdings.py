"""The watcher's compact holdings read exactly like the ``dict[Pair, Reading]`` they replace."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.blocks import BlockRef
from chains.holdings import Holdings, Reading
from chains.readings import TokenReads

ACCOUNTS = [f"0x{i:040x}" for i in range(1, 7)]
TOKENS = ["0x" + "aa" * 20, "0x" + "bb" * 20]


def block(number: int, fork: str = "") -> BlockRef:
    return BlockRef(
        number=number, hash=f"0x{fork}{number:064x}"[:66], parent_hash="0x0", timestamp=number
    )


# (pair indices, raws (None = failed read), block) per step; a negative block number drops
# the readings above abs(number), as a reorg does.
steps = st.lists(
    st.one_of(
        st.tuples(
            st.lists(
                st.tuples(st.integers(0, len(ACCOUNTS) - 1), st.integers(0, len(TOKENS) - 1)),
                unique=True,
                max_size=12,
            ),
            st.lists(st.one_of(st.none(), st.integers(0, 2**256 - 1)), min_size=12, max_size=12),
            st.integers(1, 20),
        ),
        st.integers(-20, -1),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_holdings_behave_like_a_dict_of_readings(script: list[object]) -> None:
    holdings = Holdings()
    model: dict[tuple[str, str], Reading] = {}
    for step in script:
        if isinstance(step, int):
            floor = -step
            expected = sorted(p for p, r in model.items() if r.block_number > floor)
            assert sorted(holdings.read_above(floor)) == expected
            for pair in expected:
                assert holdings.pop(pair) == model.pop(pair)
            continue
        assert isinstance(step, tuple)
        indices, raws, number = step
        pairs = [(ACCOUNTS[a], TOKENS[t]) for a, t in indices]
        at = block(number)
        for token in TOKENS:  # the watcher records a sweep token by token
            mine = [(p, r) for p, r in zip(pairs, raws, strict=False) if p[1] == token]
            changed = TokenReads()
            holdings.record_token(token, [p[0] for p, _ in mine], [r for _, r in mine], at, changed)
            # the readings that are new or differ, in the order given; failed ones counted
            expected = [(p, r) for p, r in mine if p not in model or model[p].raw != r]
            assert list(zip(changed.accounts, changed.raws, strict=True)) == [
                (p[0], r) for p, r in expected
            ]
            assert changed.failed == sum(r is None for _, r in expected)
            for pair, raw in mine:
                model[pair] = Reading(raw, at.number, at.hash)
        assert len(holdings) == len(model)
        assert dict(holdings.items()) == model
        assert list(holdings.items()) == [(pair, holdings[pair]) for pair in holdings]
        assert list(holdings.values()) == [holdings[pair] for pair in holdings]
        assert len(holdings.items()) == len(model)
        assert set(holdings) == set(model)
        for pair, reading in model.items():
            assert holdings[pair] == reading
            assert holdings.get(pair) == reading


def test_a_pair_without_a_reading_is_missing() -> None:
    holdings = Holdings()
    holdings.record_token(TOKENS[0], [ACCOUNTS[0]], [5], block(3), TokenReads())
    assert (ACCOUNTS[0], TOKENS[1]) not in holdings
    assert (ACCOUNTS[1], TOKENS[0]) not in holdings
    assert holdings.get((ACCOUNTS[1], TOKENS[0])) is None
    with pytest.raises(KeyError):
        holdings.pop((ACCOUNTS[0], TOKENS[1]))
    assert holdings.pop((ACCOUNTS[0], TOKENS[0])) == Reading(5, 3, block(3).hash)
    assert len(holdings) == 0
    assert (ACCOUNTS[0], TOKENS[0]) not in holdings
