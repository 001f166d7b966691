"""Chain watchers against real Anvil chains: balances, failed reads, reorgs, discovery, sweeps."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import pytest
import yaml

import chains.watcher
from chains.watcher import BalanceUpdate
from core.errors import DecimalsMismatch
from daemon.commands.snapshot import json_lines, snapshot_rows, take_snapshot
from daemon.config.model import Config
from devnet import AnvilNode, DevChain, encode_call
from tests.faultproxy import FaultMode, FaultProxy, free_port
from tests.waitkit import eventually
from tests.watchkit import chain_entry, make_config, running_watcher, token_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

NO_CODE = "0x000000000000000000000000000000000000dead"
SWEEP_INTERVAL_S = 3.0
POLL_NEVER_S = 600.0  # far beyond any wait here: only a wake-up reads a new block


def fresh_accounts(n: int, salt: int) -> list[str]:
    return [f"0x{salt:08x}{i:032x}" for i in range(1, n + 1)]


async def deploy_token(dev: DevChain, decimals: int, symbol: str = "TKN") -> str:
    address = await dev.deploy("MintableERC20", symbol, symbol, decimals)
    return address.lower()


async def balance_of(dev: DevChain, token: str, account: str) -> int:
    value = await dev.call(token, "MintableERC20", "balanceOf", account)
    assert isinstance(value, int)
    return value


async def test_snapshot_matches_chain_on_every_chain_6_and_18_decimals(
    dev_a: DevChain, dev_b: DevChain, dev_fork: DevChain
) -> None:
    accounts = fresh_accounts(40, salt=1)
    chains, tokens, expected = [], [], {}
    for name, dev in (("a", dev_a), ("b", dev_b), ("fork", dev_fork)):
        usdc, weth = await deploy_token(dev, 6, "USDC"), await deploy_token(dev, 18, "WETH")
        for i, account in enumerate(accounts):
            if i % 3:
                await dev.transact(usdc, "MintableERC20", "mint", account, 1_000_000 * i + 7)
            if i % 2:
                await dev.transact(weth, "MintableERC20", "mint", account, 10**18 * i + 1)
        chains.append(chain_entry(name, dev.chain_id, dev.url))
        tokens += [token_entry(name, usdc, "USDC", decimals=6), token_entry(name, weth, "ETH")]
        for token in (usdc, weth):
            for account in accounts:
                expected[(name, token, account)] = await balance_of(dev, token, account)

    config = make_config(chains, tokens, accounts)
    snapshots = await take_snapshot(config)
    rows = [row for snap in snapshots for row in snapshot_rows(snap)]

    assert len(rows) == len(expected) == 3 * 2 * 40
    # --json prints each row as json.dumps would, through its own formatter
    assert [line for snap in snapshots for line in json_lines(snap)] == [
        json.dumps(row) + "\n" for row in rows
    ]
    for row in rows:
        key = (row["chain"], row["token"], row["account"])
        assert int(str(row["raw"])) == expected[key], key
    by_token = {(r["chain"], r["asset"], r["account"]): r for r in rows}
    assert by_token[("a", "USDC", accounts[4])]["amount"] == "4.000007"
    assert by_token[("b", "ETH", accounts[3])]["amount"] == "3.000000000000000001"
    heads = {snap.chain.name: snap.block for snap in snapshots}
    for name, dev in (("a", dev_a), ("b", dev_b), ("fork", dev_fork)):
        number, block_hash = await dev.head()
        block = heads[name]
        assert block is not None
        assert (block.number, block.hash) == (number, block_hash)


async def test_decimals_mismatch_with_config_is_a_clear_error(dev_a: DevChain) -> None:
    token = await deploy_token(dev_a, 6)
    config = make_config(
        [chain_entry("a", dev_a.chain_id, dev_a.url)],
        [token_entry("a", token, decimals=18)],
        fresh_accounts(1, salt=2),
    )
    (snap,) = await take_snapshot(config)
    assert snap.error is not None
    assert f"token {token}: config says decimals=18, the chain says 6" in snap.error
    with pytest.raises(DecimalsMismatch):
        async with running_watcher(config, config.chains[0]):
            pass


async def test_reverting_token_and_token_without_code_are_failed_reads_not_zeros(
    dev_a: DevChain,
) -> None:
    good = await deploy_token(dev_a, 18)
    reverting = (await dev_a.deploy("RevertingToken")).lower()
    accounts = fresh_accounts(3, salt=3)
    await dev_a.transact(good, "MintableERC20", "mint", accounts[0], 5)
    config = make_config(
        [chain_entry("a", dev_a.chain_id, dev_a.url)],
        [
            token_entry("a", good),
            token_entry("a", reverting),
            token_entry("a", NO_CODE, decimals=18),
        ],
        accounts,
    )
    (snap,) = await take_snapshot(config)
    assert snap.error is None
    rows = {(r["token"], r["account"]): r for r in snapshot_rows(snap)}
    assert rows[(good, accounts[0])]["raw"] == "5"
    assert rows[(good, accounts[1])]["raw"] == "0"  # a true zero stays a zero
    for account in accounts:
        for token in (reverting, NO_CODE):
            assert rows[(token, account)]["raw"] is None
            assert rows[(token, account)]["amount"] is None
            assert rows[(token, account)]["error"]
    assert rows[(NO_CODE, accounts[0])]["error"] == "no contract code at this address"
    assert json_lines(snap) == [json.dumps(row) + "\n" for row in snapshot_rows(snap)]


def single_chain(dev: DevChain, token: str, accounts: list[str], **chain_extra: object) -> Config:
    return make_config(
        [chain_entry("a", dev.chain_id, dev.url, **chain_extra)],
        [token_entry("a", token)],
        accounts,
    )


def reading_of(update: BalanceUpdate, token: str, account: str) -> int | None:
    reading = update.readings.get((account, token))
    return None if reading is None else reading.raw


async def test_reorg_that_changes_a_balance_leaves_nothing_from_the_orphaned_block(
    dev_a: DevChain,
) -> None:
    token = await deploy_token(dev_a, 18)
    (alice,) = fresh_accounts(1, salt=4)
    config = single_chain(dev_a, token, [alice])
    async with running_watcher(config, config.chains[0]) as running:
        await running.next_update()
        await dev_a.transact(token, "MintableERC20", "mint", alice, 111)
        orphan_number, orphan_hash = await dev_a.head()
        seen = await running.until(lambda u: reading_of(u, token, alice) == 111)
        assert seen.block.hash == orphan_hash

        # Replace the mint block with one that mints a different amount.
        mint_222 = "0x" + encode_call("MintableERC20", "mint", alice, 222).hex()
        await dev_a.rpc(
            "anvil_reorg",
            # Explicit gas: Anvil's estimate for a reorg tx runs against the old state (OOG).
            [
                1,
                [[{"from": dev_a.accounts[0], "to": token, "data": mint_222, "gas": "0x30d40"}, 0]],
            ],
        )
        new_number, new_hash = await dev_a.head()
        assert new_number == orphan_number
        assert new_hash != orphan_hash

        update = await running.until(lambda u: reading_of(u, token, alice) == 222)
        assert update.dropped_above == orphan_number - 1
        reading = running.watcher.holdings[(alice, token)]
        assert (reading.raw, reading.block_hash) == (222, new_hash)
        assert all(r.block_hash != orphan_hash for r in running.watcher.holdings.values())
        assert running.watcher.heads.reorg_count == 1


async def test_rollback_drops_readings_above_the_new_head(dev_a: DevChain) -> None:
    token = await deploy_token(dev_a, 18)
    (bob,) = fresh_accounts(1, salt=5)
    config = single_chain(dev_a, token, [bob])
    async with running_watcher(config, config.chains[0]) as running:
        await running.next_update()
        before_number, before_hash = await dev_a.head()
        await dev_a.transact(token, "MintableERC20", "mint", bob, 7)
        await dev_a.transact(token, "MintableERC20", "mint", bob, 8)
        await running.until(lambda u: reading_of(u, token, bob) == 15)

        await dev_a.rpc("anvil_rollback", [2])
        assert await dev_a.head() == (before_number, before_hash)

        update = await running.until(lambda u: reading_of(u, token, bob) == 0)
        assert update.dropped_above == before_number
        assert update.block.hash == before_hash
        assert running.watcher.holdings[(bob, token)].block_number == before_number


async def test_new_accounts_are_discovered_from_transfer_logs(dev_a: DevChain) -> None:
    token = await deploy_token(dev_a, 6)
    holder, newcomer, later = fresh_accounts(3, salt=6)
    await dev_a.transact(token, "MintableERC20", "mint", holder, 50)
    config = make_config(
        [chain_entry("a", dev_a.chain_id, dev_a.url)],
        [token_entry("a", token)],
        [],
        discover=True,
    )
    async with running_watcher(config, config.chains[0]) as running:
        first = await running.next_update()
        assert reading_of(first, token, holder) == 50
        await dev_a.transact(token, "MintableERC20", "mint", newcomer, 9)
        await dev_a.transact(token, "MintableERC20", "mint", later, 10)
        await running.until(lambda u: reading_of(u, token, later) == 10)
        assert {holder, newcomer, later} <= running.watcher.accounts
        assert running.watcher.holdings[(newcomer, token)].raw == 9


async def test_only_dirty_pairs_are_reread_and_the_sweep_catches_rebasing(
    dev_a: DevChain,
) -> None:
    rebasing = (await dev_a.deploy("RebasingToken", "aETH", "aETH", 18)).lower()
    accounts = fresh_accounts(5, salt=7)
    for account in accounts:
        await dev_a.transact(rebasing, "RebasingToken", "mint", account, 1000)
    config = single_chain(dev_a, rebasing, accounts, sweep_interval_s=SWEEP_INTERVAL_S)
    async with running_watcher(config, config.chains[0]) as running:
        await running.next_update()
        reads_after_first = running.watcher.stats.reads
        await dev_a.transact(rebasing, "RebasingToken", "setIndex", 2 * 10**18)
        await dev_a.transact(rebasing, "RebasingToken", "mint", accounts[0], 1)
        update = await running.until(lambda u: (accounts[0], rebasing) in u.readings)
        # Only the pair named by a Transfer log was re-read; the others still show 1000.
        assert running.watcher.stats.reads - reads_after_first <= 2
        assert reading_of(update, rebasing, accounts[0]) == 2001
        assert running.watcher.holdings[(accounts[1], rebasing)].raw == 1000

        async def next_block_read() -> BalanceUpdate | None:
            await dev_a.mine()
            update = await running.next_update()
            return update if (accounts[1], rebasing) in update.readings else None

        # a block per look until the sweep interval has passed and a block is read whole
        swept = await eventually(next_block_read, what="a sweep", poll_s=0.2)
        assert all(reading_of(swept, rebasing, a) == 2000 for a in accounts[1:])


async def test_chunks_halve_when_a_batch_is_too_large_for_one_call(dev_a: DevChain) -> None:
    token = await deploy_token(dev_a, 18)
    accounts = fresh_accounts(5000, salt=8)
    await dev_a.transact(token, "MintableERC20", "mint", accounts[-1], 77)
    await dev_a.transact(token, "MintableERC20", "mint", accounts[2500], 78)
    # 5,000 calls = 2.24 MB of hex calldata: over Anvil's 2 MB request limit in one piece.
    config = single_chain(dev_a, token, accounts, batch_size=5000)
    (snap,) = await take_snapshot(config)
    assert snap.error is None
    assert snap.watcher is not None
    assert snap.watcher.reader.batch_size < 5000
    holdings = snap.watcher.holdings
    assert len(holdings) == 5000
    assert holdings[(accounts[-1], token)].raw == 77
    assert holdings[(accounts[2500], token)].raw == 78
    assert sum(r.raw or 0 for r in holdings.values()) == 155
    assert all(r.raw is not None for r in holdings.values())


@pytest.mark.parametrize(
    "mode",
    [
        FaultMode.REFUSE,
        FaultMode.HANG,
        FaultMode.HTTP500,
        FaultMode.RATE_LIMIT,
        FaultMode.GARBAGE,
        FaultMode.WRONG_CHAIN,
    ],
)
async def test_reads_fail_over_to_the_second_url_and_return_when_healthy(
    dev_a: DevChain, mode: FaultMode
) -> None:
    token = await deploy_token(dev_a, 18)
    (carol,) = fresh_accounts(1, salt=9)
    async with FaultProxy(dev_a.url) as proxy:
        config = make_config(
            [
                chain_entry(
                    "a",
                    dev_a.chain_id,
                    proxy.url + "/v2/KEY0123456789abcdef0",
                    dev_a.url,
                    request_timeout_s=0.5,
                )
            ],
            [token_entry("a", token)],
            [carol],
        )
        async with running_watcher(config, config.chains[0]) as running:
            await running.next_update()
            assert proxy.requests > 0  # the first URL serves while it is healthy

            await proxy.set_mode(mode, retry_after="1")
            for amount in (1, 2, 3):
                await dev_a.transact(token, "MintableERC20", "mint", carol, amount)
            await running.until(lambda u: reading_of(u, token, carol) == 6)

            await proxy.set_mode(FaultMode.PASS)
            served_before = proxy.requests
            # past the first re-activation delay, head polls go back to the first URL
            await eventually(lambda: proxy.requests > served_before, what="first URL used")
            await dev_a.transact(token, "MintableERC20", "mint", carol, 4)
            await running.until(lambda u: reading_of(u, token, carol) == 10)
            assert proxy.requests > served_before  # traffic went back to the first URL


async def test_websocket_new_heads_wake_the_watcher_before_the_poll_interval(
    chain_a: AnvilNode, dev_a: DevChain, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chains.heads")
    token = await deploy_token(dev_a, 18)
    (dave,) = fresh_accounts(1, salt=10)
    config = single_chain(dev_a, token, [dave], poll_interval_s=POLL_NEVER_S, ws_url=chain_a.ws_url)
    async with running_watcher(config, config.chains[0]) as running:
        await running.next_update()
        await eventually(lambda: "heads_ws_connected" in caplog.text, what="subscribed")
        await dev_a.transact(token, "MintableERC20", "mint", dave, 5)
        # The next poll is minutes away: only the newHeads wake-up brings the block within
        # the (generous) wait. How soon it comes is not judged here.
        await running.until(lambda u: reading_of(u, token, dave) == 5)


async def test_chain_status_reports_head_reads_lag_reorgs_and_endpoints(dev_a: DevChain) -> None:
    token = await deploy_token(dev_a, 18)
    accounts = fresh_accounts(3, salt=11)
    config = single_chain(dev_a, token, accounts)
    async with running_watcher(config, config.chains[0]) as running:
        first = await running.next_update()
        status = running.watcher.status(endpoints=("endpoint-a",))
        number, block_hash = await dev_a.head()
        assert status.chain == "a"
        assert status.chain_id == dev_a.chain_id
        assert (status.head_number, status.head_hash) == (number, block_hash)
        assert (status.last_read_number, status.last_read_hash) == (
            first.block.number,
            first.block.hash,
        )
        assert status.last_read_age_s is not None
        assert status.last_read_age_s >= 0
        assert (status.accounts, status.holdings, status.failed_reads) == (3, 3, 0)
        assert status.reorgs == 0
        assert status.endpoints == ("endpoint-a",)
        await dev_a.mine()
        await running.until(lambda u: u.block.number == number + 1)
        await dev_a.rpc("anvil_rollback", [1])
        rolled_back = await running.until(lambda u: u.dropped_above is not None)
        assert rolled_back.dropped_above == number
        assert running.watcher.status().reorgs == 1


async def test_snapshot_command_prints_json_lines_and_fails_on_an_unreachable_chain(
    dev_a: DevChain, tmp_path: Path
) -> None:
    token = await deploy_token(dev_a, 6)
    (erin,) = fresh_accounts(1, salt=12)
    await dev_a.transact(token, "MintableERC20", "mint", erin, 2_500_000)
    dead_port = free_port()
    config = {
        "chains": [
            chain_entry("a", dev_a.chain_id, dev_a.url),
            chain_entry("down", 4242, f"http://127.0.0.1:{dead_port}/v2/SECRETKEY0123456789"),
        ],
        "tokens": [token_entry("a", token, decimals=6), token_entry("down", token)],
        "accounts": [erin],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.cli",
        "snapshot",
        "-c",
        str(path),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    rows = [json.loads(line) for line in stdout.decode().splitlines()]
    number, block_hash = await dev_a.head()
    assert rows[0] == {
        "chain": "a",
        "chain_id": dev_a.chain_id,
        "block_number": number,
        "block_hash": block_hash,
        "token": token,
        "asset": "ETH",
        "account": erin,
        "raw": "2500000",
        "amount": "2.5",
    }
    assert rows[1]["chain"] == "down"
    assert rows[1]["chain_id"] == 4242
    assert "no healthy RPC endpoint" in rows[1]["error"] or "rpc" in rows[1]["error"]
    assert b"chain down unreachable" in stderr
    assert b"SECRETKEY" not in stdout + stderr


async def test_a_large_sweep_is_handed_over_in_parts_that_add_up_to_every_pair(
    dev_a: DevChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sweep_parts``: runs of accounts at one block, all partial but the last, which alone
    marks the chain read (``last_read``); together exactly every pair, as one sweep reads."""
    monkeypatch.setattr(chains.watcher, "SWEEP_PART_PAIRS", 4)  # 1 token: 4 accounts a part
    token = await deploy_token(dev_a, 6, "USDC")
    accounts = fresh_accounts(10, salt=11)
    for i, account in enumerate(accounts):
        if i % 4:  # a few zero balances: a first read of zero is a reading too
            await dev_a.transact(token, "MintableERC20", "mint", account, 1_000 * i + 3)
    config = single_chain(dev_a, token, accounts)
    async with running_watcher(config, config.chains[0]) as running:
        parts = [await running.next_update() for _ in range(3)]
        block = parts[0].block
        assert [p.partial for p in parts] == [True, True, False]
        assert {p.block for p in parts} == {block}
        assert running.watcher.last_read == block
        assert [len(p.readings) for p in parts] == [4, 4, 2]
        read = {pair: r for p in parts for pair, r in p.readings.items()}
        assert {account for account, _ in read} == set(accounts)
        for account in accounts:
            assert read[(account, token)].raw == await balance_of(dev_a, token, account)
        whole = await running.watcher.sweep(block)
        assert not whole.readings  # read again at the same block: nothing changed
