"""The watcher's account of failing reads per token, on Anvil: a token whose ``balanceOf``
reverts is counted for every account read, a reorg keeps the counts in step with what is held,
and a token that answers again is counted no more (what ``/readyz`` and the gauge show)."""

from __future__ import annotations

import pytest

from chains.watcher import ChainWatcher
from devnet import DevChain
from devnet.contracts import load_artifact
from tests.waitkit import eventually
from tests.watchkit import chain_entry, make_config, running_watcher, token_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

ACCOUNTS = [f"0x{0xFA11:08x}{i:032x}" for i in range(1, 4)]


def recounted(watcher: ChainWatcher) -> dict[str, tuple[int, int]]:
    """``read_failures`` computed from scratch from the holdings."""
    counts: dict[str, tuple[int, int]] = {}
    for (_, token), reading in watcher.holdings.items():
        failed, read = counts.get(token, (0, 0))
        counts[token] = (failed + (reading.raw is None), read + 1)
    return {token: c for token, c in counts.items() if c[0]}


async def test_failing_reads_are_counted_per_token_and_cleared(dev_a: DevChain) -> None:
    good = (await dev_a.deploy("MintableERC20", "G", "G", 6)).lower()
    broken = (await dev_a.deploy("MintableERC20", "B", "B", 6)).lower()
    await dev_a.set_code(broken, load_artifact("RevertingToken").deployed_bytecode)
    config = make_config(
        [chain_entry("a", dev_a.chain_id, dev_a.url, sweep_interval_s=0.2)],
        [token_entry("a", good), token_entry("a", broken)],
        ACCOUNTS,
    )
    async with running_watcher(config, config.chains[0]) as running:
        watcher = running.watcher
        await running.until(lambda _: len(watcher.holdings) == 2 * len(ACCOUNTS))
        assert watcher.read_failures() == {broken: (3, 3)}
        assert watcher.status().failed_reads == 3

        # A rollback drops the readings above the new head; they are read again.
        async def read_whole() -> int | None:
            await dev_a.rpc("evm_mine")
            block = (await running.next_update()).block.number
            return block if {r.block_number for r in watcher.holdings.values()} == {block} else None

        # a block per look until the sweep interval has passed and a block is read whole
        await eventually(read_whole, what="a block read whole", poll_s=0.1)
        await dev_a.rpc("anvil_rollback", [1])
        await running.until(lambda u: u.dropped_above is not None)
        assert watcher.read_failures() == recounted(watcher) == {broken: (3, 3)}

        # The token answers again (a MintableERC20, its storage empty: zero balances).
        await dev_a.set_code(broken, load_artifact("MintableERC20").deployed_bytecode)

        async def cleared() -> bool:
            await dev_a.rpc("evm_mine")  # a new block to read (and, once due, sweep) at
            await running.next_update()
            return not watcher.read_failures()

        await eventually(cleared, what="read failures cleared", poll_s=0.1)
        assert watcher.status().failed_reads == 0
        assert all(r.raw == 0 for (_, t), r in watcher.holdings.items() if t == broken)
