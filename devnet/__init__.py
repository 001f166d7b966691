"""Local Anvil chains for tests, ``crossmargin demo`` and benchmarks.

``AnvilNode`` runs the real Anvil binary (npm ``@foundry-rs/anvil``) as a child process in its
own process group on a free loopback port; ``DevChain`` drives one node over JSON-RPC: deploy the
Solidity fixtures from ``devnet/artifacts``, send transactions, read state, move time, take
snapshots. This is setup tooling, not the hot path: ABI work goes through eth_abi/eth_utils
(the web3.py stack), with plain eth_abi address rules: any hex case is accepted.

    async with AnvilNode(chain_id=1001) as node, DevChain(node.url) as dev:
        token = await dev.deploy("MintableERC20", "USD Coin", "USDC", 6)
        await dev.transact(token, "MintableERC20", "mint", dev.accounts[1], 10**6)
"""

from devnet.anvil import (
    REPO_ROOT,
    AnvilNode,
    AnvilNotFound,
    AnvilStartError,
    DevnetError,
    find_anvil_binary,
)
from devnet.driver import DevChain, decode_result, encode_call, encode_deploy

__all__ = [
    "REPO_ROOT",
    "AnvilNode",
    "AnvilNotFound",
    "AnvilStartError",
    "DevChain",
    "DevnetError",
    "decode_result",
    "encode_call",
    "encode_deploy",
    "find_anvil_binary",
]
