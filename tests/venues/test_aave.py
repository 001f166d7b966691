"""``aave_v3`` on a real Aave v3 market (npm ``@aave/core-v3`` 1.19.3 on Anvil): our health
equals ``getUserAccountData`` field for field for every user, before and after interest,
price moves and a risk-parameter change; every plan executes for real and pays exactly
``seize_raw``; bad venues fail with one clear error; a failing read leaves stale values.

The market and 60 users are set up once per module; tests that move state snapshot first.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from chains.blocks import BlockRef, Reorg
from chains.rpc import RpcPool
from devnet import DevChain
from devnet.aave import AaveMarket, deploy_aave_market, open_positions
from devnet.vendor import BoundContract, aave_artifact
from tests.faultproxy import FaultMode, FaultProxy
from tests.venues.venuekit import (
    KEEPER,
    KEEPER_TX_GAS,
    calls_at,
    latest_block,
    make_adapter,
    run_keeper,
    venue_chain,
)
from venues.aave.evaluate import LIQUIDATION_GAS
from venues.adapter import VenueAdapter
from venues.errors import VenueSetupError
from venues.model import STALE_CHAIN, UNMAPPED_ASSET, PlanPricing, VenueResult, VenueSpec
from venues.watcher import VenueWatcher

CHAIN_ID = 1010
DAY_S = 86_400
ACCOUNT_FIELDS = (
    "totalCollateralBase",
    "totalDebtBase",
    "availableBorrowsBase",
    "currentLiquidationThreshold",
    "ltv",
    "healthFactor",
)


def _user(i: int) -> str:
    return f"0x{0xA11CE0000 + i:040x}"


def _scenario(market: AaveMarket) -> dict[str, list[tuple[Any, ...]]]:
    """60 users of varied kinds; borrows at 50-99 % of what each may borrow."""
    rng = random.Random(7)
    r = market.reserve
    plans: dict[str, list[tuple[Any, ...]]] = {}

    def units(symbol: str, usd: float) -> int:
        return r(symbol).units(Decimal(str(round(usd / float(r(symbol).spec.price_usd), 8))))

    def share() -> float:
        return rng.uniform(0.5, 0.99)

    n = 0
    for _ in range(12):  # WETH collateral, USDC variable debt
        usd = rng.uniform(3_000, 15_000)
        plans[_user(n)] = [
            ("supply", "WETH", units("WETH", usd)),
            ("borrow", "USDC", units("USDC", usd * 0.80 * share())),
        ]
        n += 1
    for _ in range(8):  # WBTC collateral, DAI debt
        usd = rng.uniform(6_000, 60_000)
        plans[_user(n)] = [
            ("supply", "WBTC", units("WBTC", usd)),
            ("borrow", "DAI", units("DAI", usd * 0.70 * share())),
        ]
        n += 1
    for _ in range(8):  # mixed collateral, both debt assets
        eth, btc = rng.uniform(2_000, 9_000), rng.uniform(2_000, 9_000)
        limit = (eth * 0.80 + btc * 0.70) * share()
        plans[_user(n)] = [
            ("supply", "WETH", units("WETH", eth)),
            ("supply", "WBTC", units("WBTC", btc)),
            ("borrow", "USDC", units("USDC", limit * 0.6)),
            ("borrow", "DAI", units("DAI", limit * 0.4)),
        ]
        n += 1
    for k in range(6):  # supply only
        symbol = "WETH" if k % 2 else "USDC"
        plans[_user(n)] = [("supply", symbol, units(symbol, rng.uniform(500, 5_000)))]
        n += 1
    for _ in range(6):  # WBTC supplied but switched off as collateral
        eth, btc = rng.uniform(3_000, 9_000), rng.uniform(3_000, 9_000)
        plans[_user(n)] = [
            ("supply", "WETH", units("WETH", eth)),
            ("supply", "WBTC", units("WBTC", btc)),
            ("collateral", "WBTC", False),
            ("borrow", "USDC", units("USDC", eth * 0.80 * share())),
        ]
        n += 1
    for _ in range(8):  # e-mode 1 (stables, own price source): USDC in, DAI out
        usd = rng.uniform(1_000, 10_000)
        plans[_user(n)] = [
            ("supply", "USDC", units("USDC", usd)),
            ("emode", 1),
            ("borrow", "DAI", units("DAI", usd * 0.93 * rng.uniform(0.9, 0.99))),
        ]
        n += 1
    for _ in range(6):  # stable-rate USDC debt
        usd = rng.uniform(3_000, 9_000)
        plans[_user(n)] = [
            ("supply", "WETH", units("WETH", usd)),
            ("borrow_stable", "USDC", units("USDC", usd * 0.80 * share())),
        ]
        n += 1
    for _ in range(6):  # DAI + WBTC collateral, WETH debt
        dai, btc = rng.uniform(2_000, 8_000), rng.uniform(1_000, 4_000)
        plans[_user(n)] = [
            ("supply", "DAI", units("DAI", dai)),
            ("supply", "WBTC", units("WBTC", btc)),
            ("borrow", "WETH", units("WETH", (dai * 0.75 + btc * 0.70) * share())),
        ]
        n += 1
    return plans


@dataclass
class AaveWorld:
    dev: DevChain
    pool: RpcPool
    url: str
    market: AaveMarket
    users: list[str]
    spec: VenueSpec


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world() -> AsyncIterator[AaveWorld]:
    async with venue_chain(CHAIN_ID) as (node, dev, pool):
        market = await deploy_aave_market(dev)
        plans = _scenario(market)
        await open_positions(market, plans)
        await dev.increase_time(30 * DAY_S)  # interest accrues on every debt and deposit
        await dev.mine()
        r = market.reserve
        spec = VenueSpec(
            name="aave-dev",
            kind="aave_v3",
            chain="venues",
            address=market.provider.address,
            assets={r("WETH").address.lower(): "ETH", r("USDC").address.lower(): "USDC"},
            known_assets=frozenset({"DAI"}),  # by symbol; WBTC maps to nothing
        )
        yield AaveWorld(dev, pool, node.url, market, list(plans), spec)


@pytest_asyncio.fixture(loop_scope="session")
async def isolated(world: AaveWorld) -> AsyncIterator[AaveWorld]:
    snapshot = await world.dev.snapshot()
    yield world
    await world.dev.revert(snapshot)


async def _adapter(world: AaveWorld) -> tuple[VenueAdapter, Any]:
    adapter = make_adapter(world.spec, world.pool)
    block = await latest_block(world.dev)
    await adapter.setup(block)
    return adapter, block


async def _compare_with_pool(world: AaveWorld, adapter: VenueAdapter) -> VenueResult:
    """Our snapshot at the head vs ``getUserAccountData`` at the same block hash."""
    block = await latest_block(world.dev)
    result = await adapter.snapshot(world.users, block, PlanPricing())
    assert not result.failed
    expected = await calls_at(
        world.pool, world.market.pool, "getUserAccountData", [(u,) for u in world.users], block
    )
    mismatches = []
    for user, on_chain in zip(world.users, expected, strict=True):
        ours = result.accounts[user].exact
        theirs = dict(zip(ACCOUNT_FIELDS, on_chain, strict=True))
        if ours != theirs:
            mismatches.append((user, ours, theirs))
    assert mismatches == []
    pool_liquidatable = {
        u for u, d in zip(world.users, expected, strict=True) if d[1] and d[5] < 10**18
    }
    assert {a.account for a in result.liquidatable()} == pool_liquidatable
    return result


async def test_every_field_of_get_user_account_data_matches(isolated: AaveWorld) -> None:
    world = isolated
    adapter, _ = await _adapter(world)
    before = await _compare_with_pool(world, adapter)
    assert before.liquidatable() == []
    kinds = {len(a.positions) for a in before.accounts.values()}
    assert kinds >= {1, 2}
    # supply-only users: no debt, no health; the switched-off WBTC is supplied, not collateral
    switched_off = before.accounts[_user(34)]
    wbtc = world.market.reserve("WBTC").address.lower()
    (line,) = [p for p in switched_off.positions if p.asset == wbtc]
    assert line.collateral_raw == 0
    assert line.supplied_raw > 0
    assert line.collateral_weight == 0
    assert before.accounts[_user(28)].health_raw is None

    await world.market.set_price("WETH", Decimal(2_300))
    await world.market.set_price("WBTC", Decimal(45_000))
    await world.market.set_price("DAI", Decimal("1.03"))
    await world.market.configurator.transact(
        "setEModeCategory",
        1,
        8_900,
        9_000,
        10_100,
        world.market.emode_feeds[1].address,
        "USD stables",
    )
    await world.dev.increase_time(7 * DAY_S)
    await world.dev.mine()
    after = await _compare_with_pool(world, adapter)
    liquidatable = after.liquidatable()
    assert len(liquidatable) >= 10
    healths = [a.health_raw for a in liquidatable if a.health_raw is not None]
    assert min(healths) < 95 * 10**16 < max(healths)  # both close factors occur
    in_emode = [after.accounts[_user(n)] for n in range(40, 48)]
    assert any(a.liquidatable for a in in_emode)


async def test_every_plan_executes_and_pays_exactly_seize_raw(isolated: AaveWorld) -> None:
    world, market = isolated, isolated.market
    adapter, _ = await _adapter(world)
    await market.set_price("WETH", Decimal(2_250))
    await market.set_price("WBTC", Decimal(44_000))
    await market.configurator.transact(
        "setEModeCategory", 1, 8_900, 9_000, 10_100, market.emode_feeds[1].address, "USD stables"
    )
    block = await latest_block(world.dev)
    result = await adapter.snapshot(world.users, block, PlanPricing())
    plans = [(a.account, a.plan) for a in result.liquidatable()]
    assert len(plans) >= 10
    assert all(plan is not None for _, plan in plans)
    by_address = {r.address.lower(): r for r in market.reserves.values()}
    pairs, gas = set(), []
    for user, plan in plans:
        assert plan is not None
        assert plan.seize_raw > 0
        assert plan.repay_raw > 0
        assert plan.profit_usd is not None
        assert plan.gas_usd is None
        debt, collateral = by_address[plan.debt_asset], by_address[plan.collateral_asset]
        to_cover = int(plan.call["debtToCover"])
        snapshot = await world.dev.snapshot()
        try:
            run = await run_keeper(
                world.dev,
                fund=debt.token,
                fund_amount=to_cover,
                fund_tx=debt.token.tx("mint", KEEPER, to_cover, sender=market.admin, gas=200_000),
                spender=market.pool.address,
                collateral=collateral.token,
                liquidation=market.pool.tx(
                    "liquidationCall",
                    collateral.address,
                    debt.address,
                    user,
                    to_cover,
                    False,
                    sender=KEEPER,
                    gas=KEEPER_TX_GAS,
                ),
                timestamp=block.timestamp,
            )
        finally:
            await world.dev.revert(snapshot)
        assert (run.received, run.paid) == (plan.seize_raw, plan.repay_raw), user
        pairs.add((debt.spec.symbol, collateral.spec.symbol))
        gas.append(run.gas_used)
    assert len(pairs) >= 3
    assert max(gas) <= LIQUIDATION_GAS


async def test_watcher_discovers_every_user_from_pool_events(isolated: AaveWorld) -> None:
    world = isolated
    adapter = make_adapter(world.spec, world.pool)
    watcher = VenueWatcher(adapter, requester=world.pool)
    block = await latest_block(world.dev)
    await watcher.setup(block)
    result = await watcher.cycle(block)
    liquidity_provider = world.dev.accounts[8].lower()
    assert watcher.accounts == {*world.users, liquidity_provider}
    assert set(result.accounts) == watcher.accounts
    # an aToken transfer makes the recipient an account too
    newcomer = "0x00000000000000000000000000000000000b0b0b"
    a_weth = world.market.reserve("WETH").a_token
    a_token = BoundContract(world.dev, a_weth, aave_artifact("AToken").abi, "AToken")
    await a_token.transact("transfer", newcomer, 10**15, sender=world.users[0])
    later = await watcher.cycle(await latest_block(world.dev))
    assert newcomer in later.accounts
    (line,) = later.accounts[newcomer].positions
    assert line.collateral_raw == 10**15


async def test_unmapped_reserve_warns_and_counts_only_in_venue_health(
    isolated: AaveWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world = isolated
    adapter, block = await _adapter(world)
    with caplog.at_level(logging.WARNING, logger="venues"):
        result = await adapter.snapshot(world.users, block, PlanPricing())
    wbtc = world.market.reserve("WBTC").address.lower()
    warnings = [r.getMessage() for r in caplog.records if "venue_asset_unmapped" in r.getMessage()]
    assert warnings == [
        f"venue_asset_unmapped venue=aave-dev asset={wbtc} symbol=WBTC valued_in=venue_health_only"
    ]
    btc_user = result.accounts[_user(12)]
    assert UNMAPPED_ASSET in btc_user.flags
    (line,) = [p for p in btc_user.positions if p.asset == wbtc]
    assert line.asset_name is None
    assert line.collateral_raw > 0
    assert btc_user.exact["totalCollateralBase"] > 0  # still in the venue's own health
    names = {p.asset_name for a in result.accounts.values() for p in a.positions}
    assert {"ETH", "USDC", "DAI", None} == names


async def test_a_venue_address_without_code_or_of_another_contract_fails_clearly(
    world: AaveWorld,
) -> None:
    block = await latest_block(world.dev)
    for address, problem in [
        (
            "0x000000000000000000000000000000000000dEaD",
            "no contract code at pool_addresses_provider",
        ),
        (world.market.pool.address, "does not answer getPool()/getPriceOracle()"),
        (world.market.reserve("USDC").address, "does not answer getPool()/getPriceOracle()"),
    ]:
        spec = VenueSpec(name="aave-wrong", kind="aave_v3", chain="venues", address=address)
        watcher = VenueWatcher(make_adapter(spec, world.pool), requester=world.pool)
        with pytest.raises(VenueSetupError) as info:
            await watcher.setup(block)
        assert str(info.value).startswith("venue aave-wrong: "), str(info.value)
        assert problem in str(info.value)
    with pytest.raises(VenueSetupError, match="venue odd: unknown kind 'compound'"):
        make_adapter(
            VenueSpec(name="odd", kind="compound", chain="venues", address="0x" + "1" * 40),
            world.pool,
        )


async def test_a_failing_read_keeps_the_last_values_marked_stale(isolated: AaveWorld) -> None:
    world = isolated
    adapter = make_adapter(world.spec, world.pool)
    watcher = VenueWatcher(adapter, requester=world.pool)
    block = await latest_block(world.dev)
    await watcher.setup(block)
    good = await watcher.cycle(block)
    assert not good.stale
    assert good.accounts

    # A shut-down WETH feed: AaveOracle falls back to no oracle and getAssetPrice reverts.
    await world.market.reserve("WETH").feed.transact("setReverting", True)
    stale = await watcher.cycle(await latest_block(world.dev))
    assert stale.stale
    assert "getAssetPrice" in (stale.error or "")
    assert stale.accounts.keys() == good.accounts.keys()
    for account, entry in stale.accounts.items():
        assert entry.stale
        assert STALE_CHAIN in entry.flags
        assert (entry.health_raw, entry.exact) == (
            good.accounts[account].health_raw,
            good.accounts[account].exact,
        )

    # The RPC endpoint failing: the same, through a real proxy answering 500.
    await world.market.reserve("WETH").feed.transact("setReverting", False)
    async with (
        FaultProxy(world.url) as proxy,
        RpcPool(
            chain="venues", chain_id=CHAIN_ID, urls=[proxy.url], max_attempts=2, backoff_base_s=0.01
        ) as flaky,
    ):
        watcher2 = VenueWatcher(make_adapter(world.spec, flaky), requester=flaky)
        head = await latest_block(world.dev)
        await watcher2.setup(head)
        first = await watcher2.cycle(head)
        await proxy.set_mode(FaultMode.HTTP500)
        down = await watcher2.cycle(head)
        assert down.stale
        assert down.accounts.keys() == first.accounts.keys()
        assert all(e.stale for e in down.accounts.values())
        assert [e.health_raw for e in down.accounts.values()] == [
            e.health_raw for e in first.accounts.values()
        ]


async def test_a_reorg_rewinds_discovery_and_marks_entries_stale_until_reread(
    isolated: AaveWorld,
) -> None:
    world = isolated
    watcher = VenueWatcher(make_adapter(world.spec, world.pool), requester=world.pool)
    head = await latest_block(world.dev)
    await watcher.setup(head)
    before = await watcher.cycle(head)
    ancestor = BlockRef.from_rpc(
        await world.dev.rpc("eth_getBlockByNumber", [hex(head.number - 3), False])
    )
    orphaned = []
    for n in range(head.number - 2, head.number + 1):
        orphaned.append(
            BlockRef.from_rpc(await world.dev.rpc("eth_getBlockByNumber", [hex(n), False]))
        )
    assert (
        watcher.roll_back(Reorg(ancestor=ancestor, orphaned=tuple(orphaned), head=head))
        == ancestor.number
    )
    assert watcher.scanner.cursor == ancestor.number
    assert watcher.last is not None
    assert watcher.last.stale
    assert all(STALE_CHAIN in e.flags for e in watcher.last.accounts.values())
    after = await watcher.cycle(head)  # the events above the ancestor are scanned again
    assert not after.stale
    assert after.accounts.keys() == before.accounts.keys()
    assert [e.exact for e in after.accounts.values()] == [e.exact for e in before.accounts.values()]
