"""The Solidity fixtures on a real Anvil, the artifact freshness check, and the devnet kit."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chains.contracts import ArtifactNotFound, load_artifact
from core.errors import ExecutionReverted
from devnet import AnvilNode, AnvilNotFound, AnvilStartError, DevChain, encode_call
from devnet import anvil as devnet_anvil
from tests.conftest import (
    CHAIN_A_ID,
    CHAIN_FORK_ID,
    FORK_MARKER,
    FORK_MARKER_WEI_PER_BLOCK,
    PRE_FORK_BLOCKS,
)
from tests.waitkit import eventually

REPO = Path(__file__).resolve().parents[2]
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
ERROR_STRING_SELECTOR = keccak(text="Error(string)")[:4]
ZERO_TOPIC = "0x" + "00" * 32
NO_CODE = to_checksum_address("0x000000000000000000000000000000000000dEaD")
TIME_BASE = 2_000_000_000  # block timestamps set by tests start here (after Anvil's genesis)


def _topic_address(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


async def _block_of(dev: DevChain, tx_hash: str) -> int:
    receipt = await dev.wait_receipt(tx_hash)
    return int(receipt["blockNumber"], 16)


# --- artifacts --------------------------------------------------------------------------------


def test_artifacts_are_up_to_date() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is required to check contract artifacts: run `make install`")
    result = subprocess.run(
        [node, "scripts/build-contracts.mjs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_load_artifact_reads_committed_json() -> None:
    artifact = load_artifact("Multicall3")
    assert artifact.name == "Multicall3"
    names = {entry.get("name") for entry in artifact.abi}
    assert {"aggregate3", "getBlockNumber", "getEthBalance"} <= names
    assert artifact.deployed_bytecode
    assert len(artifact.bytecode) > len(artifact.deployed_bytecode)
    assert load_artifact("Multicall3") is artifact  # cached
    with pytest.raises(ArtifactNotFound, match="make contracts") as info:
        load_artifact("NoSuchContract")
    assert isinstance(info.value, FileNotFoundError)


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("isolated_chains")
@pytest.mark.parametrize("decimals", [6, 18])
async def test_mintable_erc20_mint_transfer_burn(dev_a: DevChain, decimals: int) -> None:
    alice, bob = dev_a.accounts[1], dev_a.accounts[2]
    token = await dev_a.deploy("MintableERC20", "Test Token", "TT", decimals)
    assert await dev_a.call(token, "MintableERC20", "decimals") == decimals
    assert await dev_a.call(token, "MintableERC20", "symbol") == "TT"

    minted = 123 * 10**decimals
    tx = await dev_a.transact(token, "MintableERC20", "mint", alice, minted)
    (log,) = (await dev_a.wait_receipt(tx))["logs"]
    assert log["topics"] == [TRANSFER_TOPIC, ZERO_TOPIC, log["topics"][2]]
    assert _topic_address(log["topics"][2]) == alice
    assert int(log["data"], 16) == minted

    await dev_a.transact(token, "MintableERC20", "transfer", bob, 23, sender=alice)
    await dev_a.transact(token, "MintableERC20", "burn", bob, 3)
    assert await dev_a.call(token, "MintableERC20", "balanceOf", alice) == minted - 23
    assert await dev_a.call(token, "MintableERC20", "balanceOf", bob) == 20
    assert await dev_a.call(token, "MintableERC20", "totalSupply") == minted - 3
    with pytest.raises(ExecutionReverted, match="transfer exceeds balance"):
        await dev_a.transact(token, "MintableERC20", "transfer", alice, 21, sender=bob)


@pytest.mark.usefixtures("isolated_chains")
async def test_mint_many_seeds_every_balance(dev_a: DevChain) -> None:
    token = await dev_a.deploy("MintableERC20", "Seed", "SEED", 18)
    holders = [to_checksum_address(f"0x{0xC0FFEE00 + i:040x}") for i in range(600)]
    await dev_a.mint_many(token, [(h, 10**18 + i) for i, h in enumerate(holders)])
    assert await dev_a.call(token, "MintableERC20", "balanceOf", holders[0]) == 10**18
    assert await dev_a.call(token, "MintableERC20", "balanceOf", holders[-1]) == 10**18 + 599
    expected_supply = sum(10**18 + i for i in range(600))
    assert await dev_a.call(token, "MintableERC20", "totalSupply") == expected_supply
    assert await dev_a.rpc("anvil_getAutomine") is True  # restored after the burst


@pytest.mark.usefixtures("isolated_chains")
async def test_rebasing_token_moves_balances_without_transfer_logs(dev_a: DevChain) -> None:
    holder = dev_a.accounts[3]
    token = await dev_a.deploy("RebasingToken", "Aave Test USDC", "aTUSDC", 6)
    assert await dev_a.call(token, "RebasingToken", "decimals") == 6
    mint_tx = await dev_a.transact(token, "RebasingToken", "mint", holder, 1_000 * 10**6)
    mint_logs = (await dev_a.wait_receipt(mint_tx))["logs"]
    assert [log["topics"][0] for log in mint_logs] == [TRANSFER_TOPIC]

    rebase_tx = await dev_a.transact(token, "RebasingToken", "setIndex", 105 * 10**16)
    block = hex(await _block_of(dev_a, rebase_tx))
    logs = await dev_a.rpc(
        "eth_getLogs", [{"address": token, "fromBlock": block, "toBlock": block}]
    )
    assert logs == []
    assert await dev_a.call(token, "RebasingToken", "balanceOf", holder) == 1_050 * 10**6
    assert await dev_a.call(token, "RebasingToken", "totalSupply") == 1_050 * 10**6

    await dev_a.transact(token, "RebasingToken", "setIndex", 2 * 10**18)
    await dev_a.transact(token, "RebasingToken", "mint", holder, 1)  # credits 1, not 0 or 2
    assert await dev_a.call(token, "RebasingToken", "balanceOf", holder) == 2_000 * 10**6 + 1


async def test_reverting_token_balance_of_reverts(dev_a: DevChain) -> None:
    token = await dev_a.deploy("RevertingToken")
    assert await dev_a.call(token, "RevertingToken", "decimals") == 18
    with pytest.raises(ExecutionReverted, match="RevertingToken: balanceOf disabled"):
        await dev_a.call(token, "RevertingToken", "balanceOf", dev_a.accounts[0])


# --- Multicall3 by state override -------------------------------------------------------------


async def _aggregate3_overridden(dev: DevChain, calls: list[tuple[str, bool, bytes]]) -> Any:
    data = "0x" + encode_call("Multicall3", "aggregate3", calls).hex()
    runtime = "0x" + load_artifact("Multicall3").deployed_bytecode.hex()
    raw = await dev.rpc(
        "eth_call", [{"to": MULTICALL3, "data": data}, "latest", {MULTICALL3: {"code": runtime}}]
    )
    (results,) = abi_decode(["(bool,bytes)[]"], bytes.fromhex(raw[2:]))
    return results


@pytest.mark.usefixtures("isolated_chains")
async def test_multicall3_runtime_by_state_override(dev_a: DevChain) -> None:
    holder = dev_a.accounts[1]
    good = await dev_a.deploy("MintableERC20", "Good", "GOOD", 6)
    bad = await dev_a.deploy("RevertingToken")
    await dev_a.transact(good, "MintableERC20", "mint", holder, 4_242)
    assert await dev_a.rpc("eth_getCode", [MULTICALL3, "latest"]) == "0x"  # deploy-less
    assert await dev_a.rpc("eth_getCode", [NO_CODE, "latest"]) == "0x"

    balance_of = encode_call("MintableERC20", "balanceOf", holder)
    results = await _aggregate3_overridden(
        dev_a, [(good, True, balance_of), (bad, True, balance_of), (NO_CODE, True, balance_of)]
    )
    assert results[0] == (True, (4_242).to_bytes(32, "big"))
    ok, revert_data = results[1]
    assert ok is False
    assert revert_data[:4] == ERROR_STRING_SELECTOR
    assert abi_decode(["string"], revert_data[4:]) == ("RevertingToken: balanceOf disabled",)
    assert results[2] == (True, b"")  # no code: EVM success, empty return

    head, _ = await dev_a.head()
    block_number = encode_call("Multicall3", "getBlockNumber")
    eth_balance = encode_call("Multicall3", "getEthBalance", holder)
    helpers = await _aggregate3_overridden(
        dev_a, [(MULTICALL3, False, block_number), (MULTICALL3, False, eth_balance)]
    )
    chain_balance = int(await dev_a.rpc("eth_getBalance", [holder, "latest"]), 16)
    assert int.from_bytes(helpers[0][1], "big") == head  # eth_call "latest" runs in that block
    assert int.from_bytes(helpers[1][1], "big") == chain_balance

    with pytest.raises(ExecutionReverted, match="Multicall3: call failed"):
        await _aggregate3_overridden(dev_a, [(bad, False, balance_of)])


# --- oracles ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("isolated_chains")
async def test_mock_aggregator_rounds_and_revert_switch(dev_a: DevChain) -> None:
    feed = await dev_a.deploy("MockAggregatorV3", 8, "ETH / USD", 3_000 * 10**8)
    assert await dev_a.call(feed, "MockAggregatorV3", "decimals") == 8
    assert await dev_a.call(feed, "MockAggregatorV3", "description") == "ETH / USD"
    assert await dev_a.call(feed, "MockAggregatorV3", "version") == 4
    deployed_at = await dev_a.block_timestamp()
    assert await dev_a.call(feed, "MockAggregatorV3", "latestRoundData") == (
        1,
        3_000 * 10**8,
        deployed_at,
        deployed_at,
        1,
    )

    await dev_a.set_next_block_timestamp(TIME_BASE)
    await dev_a.transact(feed, "MockAggregatorV3", "setAnswer", 3_100 * 10**8)
    assert await dev_a.call(feed, "MockAggregatorV3", "latestRoundData") == (
        2,
        3_100 * 10**8,
        TIME_BASE,
        TIME_BASE,
        2,
    )
    assert await dev_a.call(feed, "MockAggregatorV3", "latestAnswer") == 3_100 * 10**8
    old_round = await dev_a.call(feed, "MockAggregatorV3", "getRoundData", 1)
    assert old_round[:2] == (1, 3_000 * 10**8)

    await dev_a.transact(feed, "MockAggregatorV3", "setRoundData", -5, 100, 200)
    assert await dev_a.call(feed, "MockAggregatorV3", "latestRoundData") == (3, -5, 100, 200, 3)

    await dev_a.transact(feed, "MockAggregatorV3", "setReverting", True)
    with pytest.raises(ExecutionReverted, match="feed disabled"):
        await dev_a.call(feed, "MockAggregatorV3", "latestRoundData")
    with pytest.raises(ExecutionReverted):
        await dev_a.call(feed, "MockAggregatorV3", "getRoundData", 2)
    assert await dev_a.call(feed, "MockAggregatorV3", "latestAnswer") == 0  # shut-down feed

    await dev_a.transact(feed, "MockAggregatorV3", "setReverting", False)
    await dev_a.transact(feed, "MockAggregatorV3", "setDecimals", 18)
    assert await dev_a.call(feed, "MockAggregatorV3", "decimals") == 18
    assert (await dev_a.call(feed, "MockAggregatorV3", "latestRoundData"))[1] == -5


@pytest.mark.usefixtures("isolated_chains")
async def test_sequencer_uptime_feed_reports_status_and_since(dev_a: DevChain) -> None:
    feed = await dev_a.deploy("SequencerUptimeFeed")
    deployed_at = await dev_a.block_timestamp()
    round_data = await dev_a.call(feed, "SequencerUptimeFeed", "latestRoundData")
    assert round_data[1:3] == (0, deployed_at)  # up since deployment

    down_at = TIME_BASE + 1_000
    await dev_a.set_next_block_timestamp(down_at)
    await dev_a.transact(feed, "SequencerUptimeFeed", "setStatus", True)
    round_id, answer, started_at, updated_at, _ = await dev_a.call(
        feed, "SequencerUptimeFeed", "latestRoundData"
    )
    assert (round_id, answer, started_at, updated_at) == (2, 1, down_at, down_at)

    await dev_a.transact(feed, "SequencerUptimeFeed", "setStatusAt", False, down_at - 3_600)
    round_data = await dev_a.call(feed, "SequencerUptimeFeed", "latestRoundData")
    assert round_data[:3] == (3, 0, down_at - 3_600)
    assert await dev_a.call(feed, "SequencerUptimeFeed", "decimals") == 0


@pytest.mark.usefixtures("isolated_chains")
async def test_uniswap_pool_observe_gives_twap(dev_a: DevChain) -> None:
    token0, token1 = dev_a.accounts[5], dev_a.accounts[6]
    t0 = TIME_BASE + 10_000
    await dev_a.set_next_block_timestamp(t0)
    pool = await dev_a.deploy("MockUniswapV3Pool", token0, token1, 100)
    assert await dev_a.call(pool, "MockUniswapV3Pool", "token0") == token0
    assert await dev_a.call(pool, "MockUniswapV3Pool", "token1") == token1

    t1 = t0 + 600
    await dev_a.set_next_block_timestamp(t1)
    await dev_a.transact(pool, "MockUniswapV3Pool", "setTick", 200)
    t2 = t1 + 900
    await dev_a.set_next_block_timestamp(t2)
    await dev_a.mine()
    head, _ = await dev_a.head()
    assert await dev_a.block_timestamp(head) == t2

    async def observe(*seconds_ago: int) -> list[int]:
        cumulatives, per_liquidity = await dev_a.call(
            pool, "MockUniswapV3Pool", "observe", list(seconds_ago), block=head
        )
        assert list(per_liquidity) == [0] * len(seconds_ago)
        return list(cumulatives)

    now_cum, window_start = await observe(0, 300)
    assert now_cum == 100 * 600 + 200 * 900
    assert (now_cum - window_start) // 300 == 200  # window after the last setTick
    now_cum, window_start = await observe(0, 1_200)
    # [t0+300, t2]: 300 s at tick 100, then 900 s at tick 200.
    assert now_cum - window_start == 300 * 100 + 900 * 200
    assert (now_cum - window_start) / 1_200 == 175

    await dev_a.set_next_block_timestamp(t2 + 10)
    await dev_a.transact(pool, "MockUniswapV3Pool", "setTick", -887)
    await dev_a.set_next_block_timestamp(t2 + 70)
    await dev_a.mine()
    later, _ = await dev_a.head()
    cumulatives, _ = await dev_a.call(pool, "MockUniswapV3Pool", "observe", [60, 0], block=later)
    assert (cumulatives[1] - cumulatives[0]) // 60 == -887
    with pytest.raises(ExecutionReverted, match="OLD"):
        await dev_a.call(pool, "MockUniswapV3Pool", "observe", [3_600], block=later)


# --- chains, forks, the devnet kit ------------------------------------------------------------


async def test_fork_sees_pre_fork_state_of_chain_a(
    dev_a: DevChain, dev_b: DevChain, dev_fork: DevChain, chain_fork: AnvilNode
) -> None:
    assert dev_a.chain_id == CHAIN_A_ID
    assert chain_fork.chain_id == dev_fork.chain_id == CHAIN_FORK_ID
    fork_head, _ = await dev_fork.head()
    assert fork_head >= PRE_FORK_BLOCKS
    fork_block = await dev_fork.rpc("eth_getBlockByNumber", [hex(fork_head), False])
    a_block = await dev_a.rpc("eth_getBlockByNumber", [hex(fork_head), False])
    assert fork_block["hash"] == a_block["hash"]

    marker_on_fork = int(await dev_fork.rpc("eth_getBalance", [FORK_MARKER, "latest"]), 16)
    marker_on_a = int(await dev_a.rpc("eth_getBalance", [FORK_MARKER, hex(fork_head)]), 16)
    assert marker_on_fork == marker_on_a >= PRE_FORK_BLOCKS * FORK_MARKER_WEI_PER_BLOCK
    assert await dev_b.rpc("eth_getBalance", [FORK_MARKER, "latest"]) == "0x0"


@pytest.mark.usefixtures("isolated_chains")
async def test_fork_does_not_see_later_state_and_snapshots_revert(
    dev_a: DevChain, dev_fork: DevChain
) -> None:
    token = await dev_a.deploy("MintableERC20", "Later", "LATER", 6)
    assert await dev_a.rpc("eth_getCode", [token, "latest"]) != "0x"
    assert await dev_fork.rpc("eth_getCode", [token, "latest"]) == "0x"

    snapshot_id = await dev_fork.snapshot()
    on_fork = await dev_fork.deploy("MintableERC20", "Fork", "FORK", 6)
    assert await dev_fork.call(on_fork, "MintableERC20", "decimals") == 6
    await dev_fork.revert(snapshot_id)
    assert await dev_fork.rpc("eth_getCode", [on_fork, "latest"]) == "0x"


async def test_anvil_node_interval_mining_and_clean_stop() -> None:
    async with AnvilNode(chain_id=4242, block_time_s=0.2) as node, DevChain(node.url) as dev:
        assert (node.chain_id, dev.chain_id) == (4242, 4242)
        assert node.url == f"http://127.0.0.1:{node.port}"
        pid = node.pid

        async def mined() -> int | None:  # blocks come without any transaction
            head = (await dev.head())[0]
            return head if head >= 2 else None

        await eventually(mined, what="blocks from interval mining")
        token = await dev.deploy("MintableERC20", "Interval", "INT", 6)  # receipt is polled
        holders = [f"0x{0xB10C0000 + i:040x}" for i in range(50)]  # any hex case is accepted
        await dev.mint_many(token, [(h, 7) for h in holders])
        assert await dev.call(token, "MintableERC20", "totalSupply") == 7 * 50
        assert await dev.rpc("anvil_getAutomine") is False  # interval mining left as it was
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped: no defunct child left behind


async def test_anvil_start_failure_reports_stderr() -> None:
    node = AnvilNode(extra_args=["--block-time", "not-a-number"])
    with pytest.raises(AnvilStartError, match="invalid value 'not-a-number'"):
        await node.start()


async def test_anvil_binary_override_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSMARGIN_ANVIL", str(REPO / "no-such-anvil"))
    with pytest.raises(AnvilNotFound, match="make install"):
        await AnvilNode().start()


async def test_bind_probe_fallback_retries_a_port_taken_in_the_race(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The path used where /proc is unavailable: probe a port, and retry when Anvil finds it
    # taken. The first probe returns a port another socket has bound since.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        probes = iter([taken])
        real_probe = devnet_anvil._probe_free_port
        monkeypatch.setattr(devnet_anvil, "_PROC_NET", False)
        monkeypatch.setattr(
            devnet_anvil, "_probe_free_port", lambda: next(probes, None) or real_probe()
        )
        async with AnvilNode(chain_id=4243) as node:
            assert node.port != taken
            assert node.chain_id == 4243
