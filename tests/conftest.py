"""Shared fixtures: real Anvil chains, started once per session and only when a test asks.

- ``chain_a`` (chain id 1001), ``chain_b`` (1002): fresh Anvil nodes, instant mining.
- ``chain_fork`` (1003): an Anvil forking ``chain_a`` after ``PRE_FORK_BLOCKS`` value transfers
  to ``FORK_MARKER`` were mined there, so the fork has pre-fork state a fresh chain lacks.
- ``dev_a`` / ``dev_b`` / ``dev_fork``: ``DevChain`` drivers for them.
- ``isolated_chains``: snapshot all three before the test, revert after. Tests that change
  chain state request it. (It starts all three chains, the fork before the snapshot, so a
  revert of ``chain_a`` can never drop the block the fork is pinned to.)

All nodes run with ``--slots-in-an-epoch 1`` so the ``finalized`` tag follows the head.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest_asyncio
from eth_utils.address import to_checksum_address
from hypothesis import settings

from devnet import AnvilNode, DevChain

if os.environ.get("CROSSMARGIN_MUTATION") == "1":
    # `make mutate`: the same examples for every mutant (a mutant is killed or not, not by
    # luck), and no example database shared between mutants. Loaded before any test module
    # builds its settings, which inherit what they do not set themselves.
    settings.register_profile("mutation", derandomize=True, database=None)
    settings.load_profile("mutation")

CHAIN_A_ID = 1001
CHAIN_B_ID = 1002
CHAIN_FORK_ID = 1003
SLOTS_IN_AN_EPOCH = 1
PRE_FORK_BLOCKS = 2
FORK_MARKER = to_checksum_address("0x00000000000000000000000000000000f0f0f0f0")
FORK_MARKER_WEI_PER_BLOCK = 10**18


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chain_a() -> AsyncIterator[AnvilNode]:
    async with AnvilNode(chain_id=CHAIN_A_ID, slots_in_an_epoch=SLOTS_IN_AN_EPOCH) as node:
        yield node


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chain_b() -> AsyncIterator[AnvilNode]:
    async with AnvilNode(chain_id=CHAIN_B_ID, slots_in_an_epoch=SLOTS_IN_AN_EPOCH) as node:
        yield node


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_a(chain_a: AnvilNode) -> AsyncIterator[DevChain]:
    async with DevChain(chain_a.url) as dev:
        yield dev


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_b(chain_b: AnvilNode) -> AsyncIterator[DevChain]:
    async with DevChain(chain_b.url) as dev:
        yield dev


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chain_fork(chain_a: AnvilNode, dev_a: DevChain) -> AsyncIterator[AnvilNode]:
    for _ in range(PRE_FORK_BLOCKS):
        tx = {
            "from": dev_a.accounts[0],
            "to": FORK_MARKER,
            "value": hex(FORK_MARKER_WEI_PER_BLOCK),
        }
        await dev_a.wait_receipt(await dev_a.rpc("eth_sendTransaction", [tx]))
    async with AnvilNode(
        chain_id=CHAIN_FORK_ID, fork_url=chain_a.url, slots_in_an_epoch=SLOTS_IN_AN_EPOCH
    ) as node:
        yield node


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_fork(chain_fork: AnvilNode) -> AsyncIterator[DevChain]:
    async with DevChain(chain_fork.url) as dev:
        yield dev


@pytest_asyncio.fixture(loop_scope="session")
async def isolated_chains(
    dev_a: DevChain, dev_b: DevChain, dev_fork: DevChain
) -> AsyncIterator[None]:
    """``evm_snapshot`` every chain before the test and ``evm_revert`` after it."""
    devs = (dev_a, dev_b, dev_fork)
    snapshots = [await dev.snapshot() for dev in devs]
    yield
    for dev, snapshot_id in zip(devs, snapshots, strict=True):
        await dev.revert(snapshot_id)
