"""Helpers of the venue tests: a venue Anvil, adapters over a real RPC pool, pinned blocks,
keeper liquidations mined in one block at the pinned block's timestamp."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from chains.blocks import BlockRef
from chains.rpc import RpcPool
from devnet import AnvilNode, DevChain
from devnet.aave import AAVE_ANVIL_ARGS, AAVE_GAS_LIMIT, impersonate
from devnet.contracts import load_artifact
from devnet.vendor import BoundContract, decode_function
from venues.adapter import VenueAdapter, create_adapter
from venues.model import VenueSpec

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
KEEPER = "0x00000000000000000000000000000000000Ee9e2"
KEEPER_TX_GAS = 3_000_000


@asynccontextmanager
async def venue_chain(chain_id: int) -> AsyncIterator[tuple[AnvilNode, DevChain, RpcPool]]:
    """An Anvil fit for protocol deployments, its driver and an RPC pool on it."""
    async with (
        AnvilNode(chain_id=chain_id, gas_limit=AAVE_GAS_LIMIT, extra_args=AAVE_ANVIL_ARGS) as node,
        DevChain(node.url) as dev,
        RpcPool(chain="venues", chain_id=chain_id, urls=[node.url], request_timeout_s=30) as pool,
    ):
        yield node, dev, pool


def make_adapter(spec: VenueSpec, pool: RpcPool) -> VenueAdapter:
    """The adapter of ``spec`` reading through ``pool`` (Multicall3 by state override)."""
    return create_adapter(
        spec,
        requester=pool,
        multicall_address=MULTICALL3,
        override_code=load_artifact("Multicall3").deployed_bytecode,
    )


async def latest_block(dev: DevChain) -> BlockRef:
    """The head as a ``BlockRef``."""
    return BlockRef.from_rpc(await dev.rpc("eth_getBlockByNumber", ["latest", False]))


async def calls_at(
    pool: RpcPool,
    contract: BoundContract,
    fn_name: str,
    args: Sequence[Sequence[Any]],
    block: BlockRef,
) -> list[Any]:
    """``fn_name(*a)`` for each ``a`` at ``block`` (by hash) in JSON-RPC batches, decoded; a
    reverted call comes back as its exception."""
    out: list[Any] = []
    for start in range(0, len(args), 200):
        chunk = args[start : start + 200]
        calls = [
            (
                "eth_call",
                [
                    {"to": contract.address, "data": contract.encode(fn_name, *a)},
                    {"blockHash": block.hash},
                ],
            )
            for a in chunk
        ]
        for a, reply in zip(chunk, await pool.batch(calls), strict=True):
            if isinstance(reply, Exception):
                out.append(reply)
            else:
                raw = bytes.fromhex(reply[2:])
                out.append(decode_function(contract.abi, fn_name, raw, *a))
    return out


@dataclass(frozen=True, slots=True)
class KeeperRun:
    """What one liquidation transaction did for the keeper."""

    received: int  # collateral underlying gained
    paid: int  # debt asset spent
    gas_used: int
    logs: list[dict[str, Any]]


async def mine_at(dev: DevChain, txs: Sequence[Mapping[str, str]], timestamp: int) -> list[Any]:
    """Mine ``txs`` (in order) in one block whose timestamp is ``timestamp``: a block with the
    pinned block's timestamp accrues no interest since it, so the venue computes exactly
    what was planned from the pinned state."""
    sender_nonces: dict[str, int] = {}
    await dev.rpc("evm_setAutomine", [False])
    hashes: list[str] = []
    try:
        for tx in txs:
            sender = tx["from"]
            if sender not in sender_nonces:
                sender_nonces[sender] = int(
                    await dev.rpc("eth_getTransactionCount", [sender, "pending"]), 16
                )
            sent = {**tx, "nonce": hex(sender_nonces[sender])}
            sender_nonces[sender] += 1
            hashes.append(await dev.rpc("eth_sendTransaction", [sent]))
        await dev.rpc("evm_setNextBlockTimestamp", [timestamp])
        await dev.rpc("evm_mine")
    finally:
        await dev.rpc("evm_setAutomine", [True])
    return [await dev.rpc("eth_getTransactionReceipt", [h]) for h in hashes]


async def run_keeper(
    dev: DevChain,
    *,
    fund: BoundContract,
    fund_amount: int,
    fund_tx: dict[str, str],
    spender: str,
    collateral: BoundContract,
    liquidation: dict[str, str],
    timestamp: int,
) -> KeeperRun:
    """Fund the impersonated keeper, approve ``spender``, send ``liquidation``; all in one
    block at ``timestamp``. Returns the keeper's gains and costs (raises if a tx failed)."""
    await impersonate(dev, [KEEPER])
    before_collateral = await collateral.call("balanceOf", KEEPER)
    before_debt = await fund.call("balanceOf", KEEPER)
    approve = fund.tx("approve", spender, 2**256 - 1, sender=KEEPER, gas=200_000)
    receipts = await mine_at(dev, [fund_tx, approve, liquidation], timestamp)
    for receipt in receipts:
        if int(receipt["status"], 16) != 1:
            await dev.wait_receipt(receipt["transactionHash"])  # raises with the reason
    after_collateral = await collateral.call("balanceOf", KEEPER)
    after_debt = await fund.call("balanceOf", KEEPER)
    return KeeperRun(
        received=after_collateral - before_collateral,
        paid=before_debt + fund_amount - after_debt,
        gas_used=int(receipts[-1]["gasUsed"], 16),
        logs=receipts[-1]["logs"],
    )
