"""Option lines in the store (PostgreSQL and SQLite): replaced with the perps in one
transaction, read back in key order, and visible to other replicas' position polls."""

from __future__ import annotations

from daemon.store.writer import HealthStore
from margin.model import Position, Tier
from margin.options import OptionPosition, Right

A = "0x" + "a1" * 20
PERP = Position(
    account=A, asset="ETH", chain="eth", size=-1.0, entry_price=2000.0, mmr_tiers=(Tier(0.05),)
)


def line(strike: float, right: Right = Right.PUT, size: float = -2.0) -> OptionPosition:
    return OptionPosition(
        account=A,
        asset="ETH",
        chain="eth",
        size=size,
        right=right,
        strike=strike,
        expiry=1_900_000_000,
        implied_vol=0.6,
    )


async def test_options_are_replaced_with_the_perps_and_polled(store: HealthStore) -> None:
    removed = await store.replace_positions(A, [PERP], options=[line(1800), line(2200, Right.CALL)])
    assert removed == 0
    assert await store.options(A) == [line(2200, Right.CALL), line(1800)]  # call < put
    state = await store.load_state()
    assert len(state.options) == 2
    before = await store.queries.position_versions()
    assert {key[1] for key in before if key[0] == A} == {
        "ETH",
        "option:ETH/eth/call/2200.0/1900000000",
        "option:ETH/eth/put/1800.0/1900000000",
    }
    # only the options change: another replica's poll still sees the account change
    removed = await store.replace_positions(A, [PERP], options=[line(1800, size=-3.0)], at=1e10)
    assert removed == 1
    after = await store.queries.position_versions()
    assert {k for k in after if k[0] == A} != {k for k in before if k[0] == A}
    assert await store.options(A) == [line(1800, size=-3.0)]
    assert await store.replace_positions(A, [], options=[]) == 2
    assert await store.options() == []
