"""Venues in the real daemon: ``crossmargin run`` as a process on Anvil with a real Aave v3
market and a real Morpho Blue, PostgreSQL and Mosquitto.

The API's venue entries equal ``getUserAccountData`` at the entry's block for every Aave
user; venue positions feed the unified account valued by our oracle; when our sources move
ahead of the venue's oracle the accounts are flagged ``ORACLE_DRIFT`` with a
``health_at_consensus`` that equals the Pool's own health factor once its feed catches up
(mined at the same timestamp: no interest in between); the venue then turns liquidatable,
``/v1/liquidatable?venue=`` ranks it, MQTT carries the venue event and the retained state,
and the plan executes for real, paying exactly ``seize_raw``. Morpho's flag equals whether
``liquidate`` succeeds. A wrong venue address stops the daemon with exit 2, one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from chains.blocks import BlockRef
from chains.rpc import RpcPool
from devnet import REPO_ROOT, DevChain
from devnet.aave import AaveMarket, deploy_aave_market, feed_answer, impersonate, open_positions
from devnet.morpho import DEFAULT_MARKETS, MorphoDeployment, deploy_morpho, oracle_price
from devnet.vendor import send_batch
from tests.clikit import crossmargin
from tests.daemonkit import eventually, get_json, running_daemon
from tests.faultproxy import FaultMode, FaultProxy
from tests.mqttkit import Mosquitto, Subscriber
from tests.pricekit import PriceServer, free_port, generic
from tests.storekit import postgres_database
from tests.venues.venuekit import KEEPER, KEEPER_TX_GAS, calls_at, mine_at, run_keeper, venue_chain

CHAIN_ID = 1031
ACCOUNT_FIELDS = (
    "totalCollateralBase",
    "totalDebtBase",
    "availableBorrowsBase",
    "currentLiquidationThreshold",
    "ltv",
    "healthFactor",
)
ALICE, BOB, CAROL, DAVE, ERIN = (f"0x{0xA1A0000 + i:040x}" for i in range(5))
M1, M2 = (f"0x{0xB1B0000 + i:040x}" for i in range(2))
ETH, WAD = 10**18, 10**18


@dataclass
class VenueWorld:
    dev: DevChain
    pool: RpcPool
    aave: AaveMarket
    morpho: MorphoDeployment
    prices: PriceServer
    broker: Mosquitto
    workdir: Path
    database_url: str
    api_port: int
    prefix: str
    proxy: FaultProxy  # between the daemon and the chain

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def config(self) -> dict[str, Any]:
        market = self.morpho.markets[0]
        weth = self.aave.reserve("WETH").address.lower()
        return {
            "chains": [
                {
                    "name": "venues",
                    "chain_id": CHAIN_ID,
                    "rpc_urls": [self.proxy.url],
                    "poll_interval_s": 0.2,
                    "request_timeout_s": 10,
                }
            ],
            "database_url": self.database_url,
            "oracle_polling": {"round_interval_s": 0.3},
            "assets": [
                {
                    "symbol": symbol,
                    "oracle": {"min_sources": 1, "max_jump": 0.9},
                    "sources": [generic(self.prices, symbol, max_age_s=60, poll_interval_s=0.2)],
                }
                for symbol in ("ETH", "USDC", "DAI")
            ],
            "venues": [
                {
                    "name": "aave-e2e",
                    "kind": "aave_v3",
                    "chain": "venues",
                    "pool_addresses_provider": self.aave.provider.address,
                    "assets": {weth: "ETH"},  # USDC and DAI by symbol; WBTC maps to nothing
                    "drift_threshold": 0.05,
                },
                {
                    "name": "morpho-e2e",
                    "kind": "morpho_blue",
                    "chain": "venues",
                    "morpho": self.morpho.morpho.address,
                    "assets": {market.collateral.address.lower(): "ETH"},
                    "drift_threshold": 0.05,
                },
            ],
            "mqtt": {"url": self.broker.url, "topic_prefix": self.prefix, "reconnect_min_s": 0.2},
            "api": {"listen": f"127.0.0.1:{self.api_port}"},
        }


@contextlib.asynccontextmanager
async def venue_world(workdir: Path) -> AsyncIterator[VenueWorld]:
    async with (
        postgres_database() as url,
        venue_chain(CHAIN_ID) as (_, dev, pool),
        PriceServer() as prices,
        FaultProxy(dev.url) as proxy,
    ):
        aave = await deploy_aave_market(dev)
        units = {s: aave.reserve(s).units for s in ("WETH", "WBTC", "USDC", "DAI")}
        await open_positions(
            aave,
            {
                ALICE: [("supply", "WETH", ETH), ("borrow", "USDC", units["USDC"](2_300))],
                BOB: [("supply", "WETH", 2 * ETH), ("borrow", "DAI", units["DAI"](1_000))],
                CAROL: [
                    ("supply", "USDC", units["USDC"](10_000)),
                    ("emode", 1),
                    ("borrow", "DAI", units["DAI"](9_000)),
                ],
                DAVE: [
                    ("supply", "WBTC", units["WBTC"](Decimal("0.1"))),
                    ("supply", "WETH", ETH),
                    ("borrow", "USDC", units["USDC"](3_000)),
                ],
                ERIN: [("supply", "USDC", units["USDC"](5_000))],
            },
        )
        morpho = await deploy_morpho(dev, markets=DEFAULT_MARKETS[:1])
        market = morpho.markets[0]
        await morpho.open_positions(
            {
                M1: [(market, ("collateral", ETH)), (market, ("borrow", 2_400 * 10**6))],
                M2: [(market, ("collateral", 2 * ETH)), (market, ("borrow", 2_000 * 10**6))],
            }
        )
        for symbol, price in (("ETH", "3000"), ("USDC", "1"), ("DAI", "1")):
            prices.set(symbol, price)
        broker = Mosquitto(workdir)
        await broker.start()
        try:
            yield VenueWorld(
                dev=dev,
                pool=pool,
                aave=aave,
                morpho=morpho,
                prices=prices,
                broker=broker,
                workdir=workdir,
                database_url=url,
                api_port=free_port(),
                prefix=f"xm-venues-{free_port()}",
                proxy=proxy,
            )
        finally:
            await broker.kill()


async def venue_entry(w: VenueWorld, account: str, venue: str) -> dict[str, Any] | None:
    status, body = await get_json(w, f"/v1/accounts/{account}")
    if status != 200:
        return None
    return next((v for v in body["venues"] if v["venue"] == venue), None)


async def head(dev: DevChain) -> BlockRef:
    return BlockRef.from_rpc(await dev.rpc("eth_getBlockByNumber", ["latest", False]))


async def entries_at_head(w: VenueWorld, accounts: list[str], venue: str) -> dict[str, Any]:
    """Every account's entry once all are read at the chain's current head."""
    tip = await head(w.dev)

    async def current() -> dict[str, Any] | None:
        found = {a: await venue_entry(w, a, venue) for a in accounts}
        if all(e is not None and e["block_hash"] == tip.hash for e in found.values()):
            return found
        return None

    result: dict[str, Any] = await eventually(current, what=f"{venue} entries at {tip.number}")
    return result


async def assert_equals_the_pool(w: VenueWorld, entries: dict[str, Any]) -> None:
    """health_raw (and liquidatable) of every entry = getUserAccountData at its block."""
    block_hash = next(iter(entries.values()))["block_hash"]
    block = BlockRef.from_rpc(await w.dev.rpc("eth_getBlockByHash", [block_hash, False]))
    users = list(entries)
    found = await calls_at(w.pool, w.aave.pool, "getUserAccountData", [(u,) for u in users], block)
    for user, on_chain in zip(users, found, strict=True):
        data = dict(zip(ACCOUNT_FIELDS, on_chain, strict=True))
        entry = entries[user]
        owes = data["totalDebtBase"] != 0
        assert entry["health_raw"] == (str(data["healthFactor"]) if owes else None), user
        assert entry["liquidatable"] == (owes and data["healthFactor"] < WAD), user
        assert Decimal(entry["collateral_value"]) == Decimal(data["totalCollateralBase"]) / 10**8


async def liquidate_succeeds(w: VenueWorld, user: str, block: BlockRef) -> bool:
    """A one-share Morpho ``liquidate`` of ``user`` mined at ``block``'s timestamp, reverted."""
    d, market = w.morpho, w.morpho.markets[0]
    snapshot = await w.dev.snapshot()
    try:
        await impersonate(w.dev, [KEEPER])
        receipts = await mine_at(
            w.dev,
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
        await w.dev.revert(snapshot)
    return int(receipts[-1]["status"], 16) == 1


async def test_venues_in_the_daemon_equal_the_protocols(tmp_path: Path) -> None:
    async with venue_world(tmp_path) as w:
        sub_topic = f"{w.prefix}/#"
        async with Subscriber(w.broker.port, sub_topic) as sub, running_daemon(w) as daemon:
            aave_users = [ALICE, BOB, CAROL, DAVE, ERIN]
            entries = await entries_at_head(w, aave_users, "aave-e2e")
            await assert_equals_the_pool(w, entries)
            assert entries[ERIN]["health"] is None  # supply only: no debt
            assert "UNMAPPED_ASSET" in entries[DAVE]["flags"]  # WBTC valued in the venue only
            assert "venue_asset_unmapped venue=aave-e2e" in daemon.log_path.read_text()

            # A borrow the daemon has read is orphaned by a reorg: the entry follows the chain.
            await send_batch(w.dev, [w.aave.borrow_tx("USDC", ERIN, 1_000 * 10**6)])
            borrowed = await entries_at_head(w, [ERIN], "aave-e2e")
            assert borrowed[ERIN]["health"] is not None
            await w.dev.rpc("anvil_reorg", [1, []])  # the borrow's block, replaced empty
            reorged = await entries_at_head(w, aave_users, "aave-e2e")
            await assert_equals_the_pool(w, reorged)
            assert reorged[ERIN]["health"] is None
            assert reorged[ERIN]["block"] == borrowed[ERIN]["block"]  # same height, new block

            # The unified account: Aave positions valued by our oracle (ETH 3000, USDC 1),
            # collateral weighted by the venue's liquidation threshold (82.5 %), debt by 1.
            _, alice = await get_json(w, f"/v1/accounts/{ALICE}")
            state = alice["state"]
            assert state is not None
            assert [v["venue"] for v in state["venues"]] == ["aave-e2e"]
            weth = next(p for p in entries[ALICE]["positions"] if p["asset_name"] == "ETH")
            assert weth["collateral_weight"] == "0.825"
            collateral = Decimal(weth["collateral_raw"]) / ETH * 3000
            assert Decimal(state["collateral_value"]) == collateral.quantize(Decimal("0.01"))
            weighted = (collateral * Decimal("0.825")).quantize(Decimal("0.01"), "ROUND_DOWN")
            assert Decimal(state["weighted_collateral"]) == weighted
            morpho = await entries_at_head(w, [M1, M2], "morpho-e2e")
            assert [e["liquidatable"] for e in morpho.values()] == [False, False]

            # Our sources run ahead of the venues' oracles: ETH 3000 -> 2700 (10 % > 5 %).
            w.prices.set("ETH", "2700")

            async def drifted() -> dict[str, Any] | None:
                found = {a: await venue_entry(w, a, "aave-e2e") for a in (ALICE, BOB, CAROL)}
                found[M1] = await venue_entry(w, M1, "morpho-e2e")
                ok = all(e and "ORACLE_DRIFT" in e["flags"] for k, e in found.items() if k != CAROL)
                return found if ok else None

            drift = await eventually(drifted, what="ORACLE_DRIFT on ETH users")
            assert "ORACLE_DRIFT" not in drift[CAROL]["flags"]  # stables only: no drift
            assert drift[ALICE]["liquidatable"] is False  # drift is never actionable
            assert drift[M1]["liquidatable"] is False
            assert Decimal(drift[ALICE]["health_at_consensus"]) < 1
            assert Decimal(drift[M1]["health_at_consensus"]) < 1
            _, alice = await get_json(w, f"/v1/accounts/{ALICE}")
            assert "ORACLE_DRIFT" in alice["state"]["flags"]

            # The venues' oracles catch up in one block at the read block's timestamp (no
            # interest in between): the Pool's health factor is what we announced.
            entries = await entries_at_head(w, aave_users, "aave-e2e")
            pinned = BlockRef.from_rpc(
                await w.dev.rpc("eth_getBlockByHash", [entries[ALICE]["block_hash"], False])
            )
            market = w.morpho.markets[0]
            await mine_at(
                w.dev,
                [
                    w.aave.reserve("WETH").feed.tx(
                        "setAnswer", feed_answer(Decimal(2700)), sender=w.aave.admin, gas=200_000
                    ),
                    market.oracle.tx(
                        "setPrice",
                        oracle_price(2700, 1, 18, 6),
                        sender=w.morpho.owner,
                        gas=200_000,
                    ),
                ],
                pinned.timestamp,
            )
            caught_up = await entries_at_head(w, aave_users, "aave-e2e")
            await assert_equals_the_pool(w, caught_up)
            assert caught_up[ALICE]["health_raw"] == str(
                int(Decimal(entries[ALICE]["health_at_consensus"]) * WAD)
            )
            assert caught_up[ALICE]["liquidatable"] is True
            assert "ORACLE_DRIFT" not in caught_up[ALICE]["flags"]

            status, ranked = await get_json(w, "/v1/liquidatable?venue=aave-e2e")
            assert status == 200
            assert [e["account"] for e in ranked["venue_positions"]] == [ALICE]
            assert ranked["venue_total"] == 1
            status, bad = await get_json(w, "/v1/liquidatable?venue=nope")
            assert status == 400
            assert bad["error"]["field"] == "venue"

            def venue_events(kind: str) -> list[dict[str, Any]]:
                return [
                    p
                    for p in map(json.loads, sub.payloads(f"{w.prefix}/events/{kind}"))
                    if "venue" in p
                ]

            events = await eventually(
                lambda: _async(
                    {(e["venue"], e["account"]) for e in venue_events("liquidatable")}
                    >= {("aave-e2e", ALICE), ("morpho-e2e", M1)}
                ),
                what="venue liquidatable events",
            )
            assert events
            (event,) = [
                e
                for e in venue_events("liquidatable")
                if (e["venue"], e["account"]) == ("aave-e2e", ALICE)
            ]
            assert (event["venue_kind"], event["health_raw"]) == (
                "aave_v3",
                caught_up[ALICE]["health_raw"],
            )
            assert event["plan"] == caught_up[ALICE]["plan"]

            async def retained_entry() -> dict[str, Any] | None:
                payload = sub.latest().get(f"{w.prefix}/accounts/{ALICE}")
                state = json.loads(payload) if payload else {"venues": []}
                found = [v for v in state["venues"] if v["venue"] == "aave-e2e"]
                return found[0] if found and found[0]["liquidatable"] else None

            # The retained MQTT state carries the same entry as the API.
            assert await eventually(retained_entry, what="retained venue entry") == caught_up[ALICE]

            morpho = await entries_at_head(w, [M1, M2], "morpho-e2e")
            block = BlockRef.from_rpc(
                await w.dev.rpc("eth_getBlockByHash", [morpho[M1]["block_hash"], False])
            )
            for user, entry in morpho.items():
                assert entry["liquidatable"] == await liquidate_succeeds(w, user, block), user

            # The plan as the API shows it executes for real and pays exactly seize_raw.
            plan = caught_up[ALICE]["plan"]
            pinned = BlockRef.from_rpc(
                await w.dev.rpc("eth_getBlockByHash", [caught_up[ALICE]["block_hash"], False])
            )
            usdc, weth_reserve = w.aave.reserve("USDC"), w.aave.reserve("WETH")
            assert (plan["debt_asset"], plan["collateral_asset"]) == (
                usdc.address.lower(),
                weth_reserve.address.lower(),
            )
            snapshot = await w.dev.snapshot()
            try:
                repay = int(plan["repay_raw"])
                run = await run_keeper(
                    w.dev,
                    fund=usdc.token,
                    fund_amount=repay,
                    fund_tx=w.aave.mint_tx("USDC", KEEPER, repay),
                    spender=w.aave.pool.address,
                    collateral=weth_reserve.token,
                    liquidation=w.aave.pool.tx(
                        "liquidationCall",
                        weth_reserve.address,
                        usdc.address,
                        ALICE,
                        int(plan["call"]["debtToCover"]),
                        False,
                        sender=KEEPER,
                        gas=KEEPER_TX_GAS,
                    ),
                    timestamp=pinned.timestamp,
                )
            finally:
                await w.dev.revert(snapshot)
            assert abs(run.received - int(plan["seize_raw"])) <= 1
            assert run.paid == repay

            # The venue's chain stops answering: entries stay, stale, with their last values.
            before = (await entries_at_head(w, [ALICE], "aave-e2e"))[ALICE]
            await w.proxy.set_mode(FaultMode.HTTP500)

            async def stale() -> dict[str, Any] | None:
                found = await venue_entry(w, ALICE, "aave-e2e")
                return found if found and found["stale"] else None

            kept = await eventually(stale, what="a stale venue entry")
            assert "STALE_CHAIN" in kept["flags"]
            fields = ("health_raw", "liquidatable", "positions", "plan", "block_hash")
            assert {k: kept[k] for k in fields} == {k: before[k] for k in fields}
            await w.proxy.set_mode(FaultMode.PASS)

            async def fresh() -> dict[str, Any] | None:
                found = await venue_entry(w, ALICE, "aave-e2e")
                return found if found and not found["stale"] else None

            back = await eventually(fresh, what="the venue entry read again")
            assert "STALE_CHAIN" not in back["flags"]
            assert back["health_raw"] == before["health_raw"]
            assert await daemon.stop() == 0

        # ``crossmargin health --json`` reads the venues once and prints the same entries.
        code, out, err = await crossmargin(
            "health", "-c", str(w.workdir / "config.yaml"), "--json", "--account", ALICE
        )
        assert code == 0, err
        (document,) = [json.loads(line) for line in out.splitlines()]
        (aave_entry,) = document["venues"]
        tip = await head(w.dev)
        (on_chain,) = await calls_at(w.pool, w.aave.pool, "getUserAccountData", [(ALICE,)], tip)
        assert aave_entry["block_hash"] == tip.hash
        assert aave_entry["health_raw"] == str(on_chain[5])
        assert aave_entry["liquidatable"] is True
        assert "LIQUIDATABLE" in document["flags"]


async def _async(value: Any) -> Any:
    return value


async def test_a_venue_address_without_code_stops_the_daemon_with_exit_2(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/venues.sqlite3"
    async with venue_chain(CHAIN_ID + 1) as (_, dev, _pool):
        config = {
            "chains": [{"name": "venues", "chain_id": CHAIN_ID + 1, "rpc_urls": [dev.url]}],
            "database_url": url,
            "venues": [
                {
                    "name": "aave-typo",
                    "kind": "aave_v3",
                    "chain": "venues",
                    "pool_addresses_provider": "0x" + "12" * 20,
                }
            ],
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon.cli",
            "run",
            "-c",
            str(path),
            "--migrate",
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    lines = [line for line in err.decode().splitlines() if line.startswith("crossmargin:")]
    assert lines == [
        f"crossmargin: venue aave-typo: no contract code at pool_addresses_provider 0x{'12' * 20}"
    ]
    assert "Traceback" not in err.decode()
    assert out == b""
