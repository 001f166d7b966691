"""``morpho_blue`` on a real Morpho Blue (compiled from npm ``@morpho-org/morpho-blue`` with
solc 0.8.19, its OracleMock and IrmMock): accrual to the block equals the contract's own
``accrueInterest``; our liquidatable flag equals whether ``liquidate`` succeeds, for every
position, after accrual and price moves; every plan executes and pays exactly ``seize_raw``.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from chains.blocks import BlockRef
from chains.rpc import RpcPool
from devnet import DevChain
from devnet.aave import impersonate
from devnet.morpho import MorphoDeployment, MorphoMarket, deploy_morpho
from tests.venues.venuekit import (
    KEEPER,
    KEEPER_TX_GAS,
    latest_block,
    make_adapter,
    mine_at,
    run_keeper,
    venue_chain,
)
from venues.errors import VenueSetupError
from venues.model import PlanPricing, VenueResult, VenueSpec
from venues.morpho.evaluate import LIQUIDATION_GAS, accrue_all
from venues.morpho.market import ORACLE_PRICE_SCALE
from venues.morpho.math import WAD, mul_div_down, w_mul_down
from venues.watcher import VenueWatcher

CHAIN_ID = 1011
DAY_S = 86_400


def _user(i: int) -> str:
    return f"0x{0xB0770000 + i:040x}"


@dataclass
class MorphoWorld:
    dev: DevChain
    pool: RpcPool
    deployment: MorphoDeployment
    borrowers: dict[str, list[MorphoMarket]]
    spec: VenueSpec


def _borrow(market: MorphoMarket, collateral: int, share: float) -> int:
    price, lltv = market.spec.price, market.spec.lltv
    limit = w_mul_down(mul_div_down(collateral, price, ORACLE_PRICE_SCALE), lltv)
    return int(limit * share)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world() -> AsyncIterator[MorphoWorld]:
    rng = random.Random(11)
    async with venue_chain(CHAIN_ID) as (_, dev, pool):
        deployment = await deploy_morpho(dev)
        eth, btc, mock = deployment.markets
        plans: dict[str, list[tuple[MorphoMarket, Sequence[Any]]]] = {}
        borrowers: dict[str, list[MorphoMarket]] = {}
        n = 0
        for market, count, unit, most in (
            (eth, 12, 10**18, 40),
            (btc, 8, 10**8, 2),
            (mock, 6, 10**18, 9_000),
        ):
            for _ in range(count):
                collateral = int(rng.uniform(most / 40, most) * unit)
                share = rng.uniform(0.6, 0.995)
                plans[_user(n)] = [
                    (market, ("collateral", collateral)),
                    (market, ("borrow", _borrow(market, collateral, share))),
                ]
                borrowers[_user(n)] = [market]
                n += 1
        for _ in range(3):  # one account in two markets
            plans[_user(n)] = [
                (eth, ("collateral", 5 * 10**18)),
                (btc, ("collateral", 10**8)),
                (eth, ("borrow", _borrow(eth, 5 * 10**18, rng.uniform(0.8, 0.99)))),
                (btc, ("borrow", _borrow(btc, 10**8, rng.uniform(0.8, 0.99)))),
            ]
            borrowers[_user(n)] = [eth, btc]
            n += 1
        for _ in range(3):  # lenders only
            plans[_user(n)] = [(eth, ("supply", 10_000 * 10**6))]
            n += 1
        await deployment.open_positions(plans)
        await dev.increase_time(120 * DAY_S)  # IrmMock: APR = utilization
        await dev.mine()
        spec = VenueSpec(
            name="morpho-dev",
            kind="morpho_blue",
            chain="venues",
            address=deployment.morpho.address,
            known_assets=frozenset({"USDC", "WETH", "WBTC"}),
        )
        yield MorphoWorld(dev, pool, deployment, borrowers, spec)


@pytest_asyncio.fixture(loop_scope="session")
async def isolated(world: MorphoWorld) -> AsyncIterator[MorphoWorld]:
    snapshot = await world.dev.snapshot()
    yield world
    await world.dev.revert(snapshot)


async def _read(world: MorphoWorld) -> tuple[VenueResult, BlockRef, VenueWatcher]:
    watcher = VenueWatcher(make_adapter(world.spec, world.pool), requester=world.pool)
    block = await latest_block(world.dev)
    await watcher.setup(block)
    usd = {
        m.loan.address.lower(): Decimal(1) if m.spec.loan_decimals == 6 else Decimal(2)
        for m in world.deployment.markets
    }
    return await watcher.cycle(block, PlanPricing(usd=usd)), block, watcher


async def _liquidate_succeeds(
    world: MorphoWorld, market: MorphoMarket, user: str, block: BlockRef
) -> bool:
    """Mine a one-share ``liquidate`` of ``user`` at the pinned timestamp; revert after."""
    d = world.deployment
    snapshot = await world.dev.snapshot()
    try:
        await impersonate(world.dev, [KEEPER])
        receipts = await mine_at(
            world.dev,
            [
                d.fund_tx(market.loan, KEEPER, 10**30),
                d.approve_tx(market.loan, KEEPER),
                d.morpho.tx(
                    "liquidate", market.params, user, 0, 1, b"", sender=KEEPER, gas=KEEPER_TX_GAS
                ),
            ],
            block.timestamp,
        )
    finally:
        await world.dev.revert(snapshot)
    assert all(int(r["status"], 16) == 1 for r in receipts[:2])
    return int(receipts[-1]["status"], 16) == 1


async def test_accrual_to_the_block_equals_the_contracts(isolated: MorphoWorld) -> None:
    world = isolated
    _, block, watcher = await _read(world)
    adapter: Any = watcher.adapter
    pairs = {u: [m.id for m in ms] for u, ms in world.borrowers.items()}
    accrued = accrue_all(await adapter.reader.read(pairs, block))
    d = world.deployment
    receipts = await mine_at(
        world.dev,
        [d.morpho.tx("accrueInterest", m.params, sender=d.owner, gas=500_000) for m in d.markets],
        block.timestamp,
    )
    assert all(int(r["status"], 16) == 1 for r in receipts)
    for market in d.markets:
        on_chain = await d.morpho.call("market", market.id_bytes)
        ours = accrued[market.id].state
        assert ours.total_borrow_assets > accrued[market.id].at_block.state.total_borrow_assets
        assert on_chain == (
            ours.total_supply_assets,
            ours.total_supply_shares,
            ours.total_borrow_assets,
            ours.total_borrow_shares,
            ours.last_update,
            ours.fee,
        )


@pytest.mark.parametrize("drop", [Decimal(1), Decimal("0.9")])
async def test_liquidatable_flag_equals_whether_liquidate_succeeds(
    isolated: MorphoWorld, drop: Decimal
) -> None:
    world = isolated
    for market in world.deployment.markets:
        await market.oracle.transact("setPrice", int(market.spec.price * drop))
    result, block, _ = await _read(world)
    flags: dict[tuple[str, str], bool] = {}
    for user, markets in world.borrowers.items():
        exact = result.accounts[user].exact
        for market in markets:
            flags[(user, market.id)] = (
                exact[f"borrowed:{market.id}"] > exact[f"maxBorrow:{market.id}"]
            )
    # the venue entry's flag is any of its markets'
    for user, markets in world.borrowers.items():
        assert result.accounts[user].liquidatable == any(flags[(user, m.id)] for m in markets)
    assert 0 < sum(flags.values()) < len(flags)  # accrual alone made some liquidatable
    outcomes = {
        (user, market.id): await _liquidate_succeeds(world, market, user, block)
        for user, markets in world.borrowers.items()
        for market in markets
    }
    assert outcomes == flags


async def test_every_plan_executes_and_pays_exactly_seize_raw(isolated: MorphoWorld) -> None:
    world = isolated
    d = world.deployment
    for market in d.markets:
        await market.oracle.transact("setPrice", market.spec.price * 82 // 100)
    result, block, _ = await _read(world)
    by_id = {m.id: m for m in d.markets}
    liquidatable = result.liquidatable()
    assert len(liquidatable) >= 8
    branches = set()
    for entry in liquidatable:
        plan = entry.plan
        assert plan is not None
        assert plan.market is not None
        market = by_id[plan.market]
        seized_arg, shares_arg = int(plan.call["seizedAssets"]), int(plan.call["repaidShares"])
        branches.add("seize" if seized_arg else "repay")
        snapshot = await world.dev.snapshot()
        try:
            run = await run_keeper(
                world.dev,
                fund=market.loan,
                fund_amount=plan.repay_raw,
                fund_tx=d.fund_tx(market.loan, KEEPER, plan.repay_raw),
                spender=d.morpho.address,
                collateral=market.collateral,
                liquidation=d.morpho.tx(
                    "liquidate",
                    market.params,
                    entry.account,
                    seized_arg,
                    shares_arg,
                    b"",
                    sender=KEEPER,
                    gas=KEEPER_TX_GAS,
                ),
                timestamp=block.timestamp,
            )
        finally:
            await world.dev.revert(snapshot)
        assert (run.received, run.paid) == (plan.seize_raw, plan.repay_raw), entry.account
        assert run.gas_used <= LIQUIDATION_GAS
        lltv = market.spec.lltv
        assert (
            plan.bonus
            == Decimal(min(115 * 10**16, WAD * WAD // (WAD - 3 * (WAD - lltv) // 10)) - WAD) / WAD
        )
        if market.spec.loan_decimals == 6:
            assert plan.profit_usd is not None
            assert plan.profit_usd > 0
    assert branches == {"seize", "repay"}


async def test_morpho_positions_and_wrong_addresses(world: MorphoWorld) -> None:
    result, _, watcher = await _read(world)
    lenders = [_user(n) for n in range(29, 32)]
    assert watcher.accounts >= set(world.borrowers) | set(lenders)
    for lender in lenders:
        entry = result.accounts[lender]
        (line,) = entry.positions
        assert entry.health_raw is None
        assert line.supplied_raw > 10_000 * 10**6
    mock_user = result.accounts[_user(20)]
    assert {p.decimals for p in mock_user.positions} == {None}  # ERC20Mock has no decimals()
    assert mock_user.collateral_value is None  # no USD price, no made-up zero
    block = await latest_block(world.dev)
    for address, problem in [
        ("0x000000000000000000000000000000000000dEaD", "no contract code at morpho"),
        (world.deployment.markets[0].oracle.address, "does not answer market()/idToMarketParams()"),
    ]:
        spec = VenueSpec(name="morpho-wrong", kind="morpho_blue", chain="venues", address=address)
        wrong = VenueWatcher(make_adapter(spec, world.pool), requester=world.pool)
        with pytest.raises(VenueSetupError, match=f"^venue morpho-wrong: .*{re.escape(problem)}"):
            await wrong.setup(block)
    unknown = VenueSpec(
        name="morpho-ids",
        kind="morpho_blue",
        chain="venues",
        address=world.spec.address,
        markets=("0x" + "ab" * 32,),
    )
    with pytest.raises(
        VenueSetupError, match=f"venue morpho-ids: market 0x{'ab' * 32} does not exist"
    ):
        await VenueWatcher(make_adapter(unknown, world.pool), requester=world.pool).setup(block)
