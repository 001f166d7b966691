"""``crossmargin health``: balances on two Anvil chains, a feed and an exchange, one pass."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.commands.health import health_pass
from daemon.config.load import parse_config
from devnet import DevChain
from margin.model import Flag
from tests.pricekit import PriceServer, generic
from tests.watchkit import chain_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

ALICE = "0x" + "a1" * 20  # healthy across two chains
BOB = "0x" + "b0" * 20  # under water: shortfall 100
CAROL = "0x" + "c0" * 20  # no debt
DAVE = "0x" + "d0" * 20  # solvent now, collateral on a chain a week from liquidation
WEEK_S = 7 * 86_400


async def book(dev_a: DevChain, dev_b: DevChain, server: PriceServer) -> dict[str, Any]:
    now = int(time.time())
    feed = await dev_a.deploy("MockAggregatorV3", 8, "ETH / USD", 0)
    await dev_a.transact(feed, "MockAggregatorV3", "setRoundData", 2000 * 10**8, now, now)
    server.set("ETH", "2000")
    server.set("USDC", "1")
    weth_a = (await dev_a.deploy("MintableERC20", "WETH", "WETH", 18)).lower()
    usdc_a = (await dev_a.deploy("MintableERC20", "debt USDC", "dUSDC", 6)).lower()
    weth_b = (await dev_b.deploy("MintableERC20", "WETH", "WETH", 18)).lower()
    eth, usd = 10**18, 10**6
    await dev_a.mint_many(weth_a, [(ALICE, eth), (BOB, eth), (CAROL, 3 * eth)])
    await dev_a.mint_many(usdc_a, [(ALICE, 2500 * usd), (BOB, 1700 * usd), (DAVE, 1500 * usd)])
    await dev_b.mint_many(weth_b, [(ALICE, eth), (DAVE, eth)])
    return {
        "chains": [
            chain_entry("l1", dev_a.chain_id, dev_a.url, liquidation_latency_s=60),
            chain_entry("slow", dev_b.chain_id, dev_b.url, liquidation_latency_s=WEEK_S),
        ],
        "tokens": [
            {"chain": "l1", "address": weth_a, "asset": "ETH", "role": "collateral", "weight": 0.8},
            {
                "chain": "l1",
                "address": usdc_a,
                "asset": "USDC",
                "role": "liability",
                "weight": 1.0,
                "decimals": 6,
            },
            {
                "chain": "slow",
                "address": weth_b,
                "asset": "ETH",
                "role": "collateral",
                "weight": 0.8,
            },
        ],
        "accounts": [ALICE, BOB, CAROL, DAVE],
        "assets": [
            {
                "symbol": "ETH",
                "volatility_floor": 0.8,
                "oracle": {"min_sources": 2},
                "sources": [
                    {"kind": "chainlink", "chain": "l1", "address": feed, "max_age_s": 3600},
                    generic(server, "ETH", max_age_s=60),
                ],
            },
            {
                "symbol": "USDC",
                "volatility_floor": 0.01,
                "oracle": {"min_sources": 1},
                "sources": [generic(server, "USDC", max_age_s=60)],
            },
        ],
    }


async def test_one_pass_values_accounts_across_chains(dev_a: DevChain, dev_b: DevChain) -> None:
    async with PriceServer() as server:
        config = parse_config(await book(dev_a, dev_b, server))
        found = await health_pass(config)
        healths, snapshots = found.healths, found.snapshots
    assert all(s.error is None for s in snapshots)
    by_account = {h.account: h for h in healths}

    alice = by_account[ALICE]  # 2 ETH x 2000 x 0.8 = 3200 against 2500
    assert alice.weighted_collateral == Decimal("3200.00")
    assert alice.liability_value == Decimal("2500.00")
    assert alice.health == pytest.approx(3200 / 2500)
    assert alice.breakdown is not None
    assert {line["chain"] for line in alice.breakdown["holdings"]} == {"l1", "slow"}
    assert not alice.flags & Flag.LIQUIDATABLE

    bob = by_account[BOB]  # 1600 against 1700
    assert bob.health == pytest.approx(1600 / 1700)
    assert bob.shortfall == Decimal("100.00")
    assert bob.flags & Flag.LIQUIDATABLE
    assert bob.actionable  # prices OK, nothing held

    assert by_account[CAROL].health == float("inf")

    dave = by_account[DAVE]  # 1600 against 1500 now; a week of ETH volatility later, not
    assert dave.health == pytest.approx(1600 / 1500)
    assert dave.health_latency < 1
    assert dave.flags & Flag.LATENCY_RISK
    assert not dave.flags & Flag.LIQUIDATABLE


async def test_health_command_prints_liquidatable_first_as_json(
    dev_a: DevChain, dev_b: DevChain, tmp_path: Path
) -> None:
    async with PriceServer() as server:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(await book(dev_a, dev_b, server)))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon.cli",
            "health",
            "-c",
            str(path),
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    rows = [json.loads(line) for line in stdout.decode().splitlines()]
    assert rows[0]["account"] == BOB
    bob = rows[0]
    assert bob["flags"] == ["LIQUIDATABLE"]
    assert bob["shortfall"] == "100.00"
    assert bob["actionable"] is True
    holdings = bob["breakdown"]["holdings"]  # the API's Account document, breakdown nested
    assert {(line["chain"], line["asset"], line["amount"]) for line in holdings} == {
        ("l1", "ETH", "1.000000000000000000"),
        ("l1", "USDC", "1700.000000"),
    }
    carol = next(r for r in rows if r["account"] == CAROL)
    assert carol["health"] is None  # infinite: no liabilities
