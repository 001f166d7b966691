"""``DevChain``: drive one dev node over JSON-RPC (deploy fixtures, transact, call, move time,
snapshots), and the ABI helpers it uses. Setup tooling, not the hot path."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from typing import Any, cast

import aiohttp
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.abi import is_encodable
from eth_utils.abi import (
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)
from eth_utils.address import to_checksum_address

from core.errors import (
    ExecutionReverted,
    JsonRpcError,
    RpcError,
)
from core.lifecycle import AsyncResource
from devnet.anvil import DevnetError
from devnet.contracts import load_artifact

RPC_TIMEOUT_S = 60.0
RECEIPT_TIMEOUT_S = 60.0
RECEIPT_POLL_S = 0.02
RPC_BATCH_SIZE = 250  # requests per JSON-RPC batch (mint_many, receipt polling)
MINT_GAS = 200_000  # fixed gas per mint: skips one eth_estimateGas round trip per transaction
MINT_TIP_WEI = 10**9  # priority fee of mint_many transactions (Anvil's default suggestion)


def _abi_entry(artifact_name: str, kind: str, name: str | None, args: Sequence[Any]) -> Any:
    """The ABI entry of ``kind`` (and ``name``) that can encode ``args`` (overloads by fit)."""
    entries = [
        entry
        for entry in load_artifact(artifact_name).abi
        if entry.get("type") == kind and (name is None or entry.get("name") == name)
    ]
    if kind == "constructor" and not entries:
        entries = [{"type": "constructor", "inputs": []}]  # the implicit constructor
    for entry in entries:
        types = get_abi_input_types(cast(Any, entry))
        if len(types) == len(args) and all(map(is_encodable, types, args)):
            return entry
    raise DevnetError(
        f"{artifact_name} has no {kind} {name or ''} accepting arguments {list(args)!r}"
    )


def encode_call(artifact_name: str, fn_name: str, *args: Any) -> bytes:
    """Calldata (selector + ABI arguments) for ``fn_name(*args)`` of an artifact's ABI.

    Addresses may be given in any case (plain eth_abi rules, not web3's checksum-only ones).
    """
    entry = _abi_entry(artifact_name, "function", fn_name, args)
    return function_abi_to_4byte_selector(entry) + abi_encode(get_abi_input_types(entry), args)


def encode_deploy(artifact_name: str, *ctor_args: Any) -> bytes:
    """Creation code followed by the ABI-encoded constructor arguments."""
    entry = _abi_entry(artifact_name, "constructor", None, ctor_args)
    encoded = abi_encode(get_abi_input_types(entry), ctor_args)
    return load_artifact(artifact_name).bytecode + encoded


def decode_result(artifact_name: str, fn_name: str, data: bytes, *args: Any) -> Any:
    """Decode a return value: one output → the value, several → a tuple, none → None.

    ``args`` (the call's arguments) pick among overloads. Addresses come back checksummed.
    """
    entry = _abi_entry(artifact_name, "function", fn_name, args)
    types = get_abi_output_types(entry)
    values = tuple(map(_checksum_addresses, types, abi_decode(types, data)))
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _checksum_addresses(kind: str, value: Any) -> Any:
    if kind == "address":
        return to_checksum_address(value)
    if kind.startswith("address["):
        return [to_checksum_address(v) for v in value]
    return value


class DevChain(AsyncResource):
    """Async JSON-RPC driver for one dev node, over one keep-alive aiohttp session.

    Use as ``async with DevChain(url) as dev``; ``dev.accounts`` are the node's unlocked dev
    accounts, and transactions are sent from ``accounts[0]`` unless ``sender`` says otherwise.
    """

    def __init__(self, url: str, *, timeout_s: float = RPC_TIMEOUT_S) -> None:
        self.url = url
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._accounts: list[str] = []
        self.chain_id = 0

    async def start(self) -> None:
        """Create the session and read the chain id and dev accounts."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            )
        try:
            self.chain_id = int(await self.rpc("eth_chainId"), 16)
            self._accounts = [to_checksum_address(a) for a in await self.rpc("eth_accounts")]
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the HTTP session. Idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def accounts(self) -> list[str]:
        """The node's unlocked dev accounts (checksummed)."""
        if not self._accounts:
            raise RuntimeError("DevChain is not open")
        return list(self._accounts)

    async def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One raw JSON-RPC request; the ``result`` or a raised ``CrossmarginError``."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        return self._result(await self._post(request))

    async def rpc_batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """A JSON-RPC batch; results in request order, raising on the first error."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        requests = [
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            for request_id, (method, params) in zip(ids, calls, strict=True)
        ]
        replies = await self._post(requests)
        if not isinstance(replies, list):
            return [self._result(replies)]  # one error for the whole batch (e.g. too large)
        by_id = {reply.get("id"): reply for reply in replies if isinstance(reply, dict)}
        return [self._result(by_id.get(request_id, {})) for request_id in ids]

    async def _post(self, body: Any) -> Any:
        if self._session is None:
            raise RuntimeError("DevChain is not open")
        try:
            async with self._session.post(self.url, json=body) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RpcError(self.url, f"{type(exc).__name__}: {exc}") from exc
        try:
            return json.loads(text)
        except ValueError:
            raise RpcError(self.url, f"HTTP {status}: {text[:200]!r}") from None

    def _result(self, reply: Any) -> Any:
        error = reply.get("error") if isinstance(reply, dict) else {"message": repr(reply)}
        if error is None:
            if "result" not in reply:
                raise RpcError(self.url, f"reply without result: {reply!r}")
            return reply["result"]
        message = str(error.get("message", ""))
        code = int(error.get("code", 0))
        if code == 3 or "revert" in message.lower():
            data = error.get("data")
            raise ExecutionReverted(self.url, message, data if isinstance(data, str) else None)
        raise JsonRpcError(self.url, code, message)

    async def deploy(self, artifact_name: str, *ctor_args: Any, sender: str | None = None) -> str:
        """Deploy an artifact; returns the checksummed contract address."""
        data = "0x" + encode_deploy(artifact_name, *ctor_args).hex()
        tx = {"from": self._from(sender), "data": data}
        receipt = await self.wait_receipt(await self.rpc("eth_sendTransaction", [tx]))
        return to_checksum_address(receipt["contractAddress"])

    async def transact(
        self,
        address: str,
        artifact_name: str,
        fn_name: str,
        *args: Any,
        sender: str | None = None,
        value: int = 0,
    ) -> str:
        """Send ``fn_name(*args)`` and wait for its receipt; returns the tx hash.

        Raises ``ExecutionReverted`` if gas estimation or the mined transaction reverts.
        """
        tx = {
            "from": self._from(sender),
            "to": address,
            "data": "0x" + encode_call(artifact_name, fn_name, *args).hex(),
            "value": hex(value),
        }
        tx_hash: str = await self.rpc("eth_sendTransaction", [tx])
        await self.wait_receipt(tx_hash)
        return tx_hash

    async def call(
        self,
        address: str,
        artifact_name: str,
        fn_name: str,
        *args: Any,
        block: str | int = "latest",
    ) -> Any:
        """``eth_call`` of ``fn_name(*args)``, decoded (see ``decode_result``)."""
        data = "0x" + encode_call(artifact_name, fn_name, *args).hex()
        tag = hex(block) if isinstance(block, int) else block
        raw = await self.rpc("eth_call", [{"to": address, "data": data}, tag])
        return decode_result(artifact_name, fn_name, bytes.fromhex(raw[2:]), *args)

    async def encode(self, address: str, artifact_name: str, fn_name: str, *args: Any) -> str:
        """0x-hex calldata of ``fn_name(*args)`` for a transaction built by hand (for example
        the replacement transactions of ``anvil_reorg``).

        Checks that ``address`` holds code: a transaction to an empty address would succeed
        and do nothing, which makes a wrong address in a test silently pass.
        """
        if await self.rpc("eth_getCode", [address, "latest"]) in ("0x", "0x0"):
            raise DevnetError(f"no contract code at {address}")
        return "0x" + encode_call(artifact_name, fn_name, *args).hex()

    async def wait_receipt(self, tx_hash: str) -> Any:
        """Wait for the receipt; raises ``ExecutionReverted`` if the transaction failed."""
        (receipt,) = await self.wait_receipts([tx_hash])
        return receipt

    async def wait_receipts(
        self, tx_hashes: Sequence[str], *, timeout_s: float = RECEIPT_TIMEOUT_S
    ) -> list[Any]:
        """Poll (in batches) until every transaction is mined; raise if any reverted."""
        receipts: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout_s):
                while pending := [h for h in tx_hashes if h not in receipts][:RPC_BATCH_SIZE]:
                    calls = [("eth_getTransactionReceipt", [h]) for h in pending]
                    found = await self.rpc_batch(calls)
                    receipts.update((h, r) for h, r in zip(pending, found, strict=True) if r)
                    if not all(found):
                        await asyncio.sleep(RECEIPT_POLL_S)
        except TimeoutError as exc:
            missing = [h for h in tx_hashes if h not in receipts]
            raise DevnetError(
                f"{len(missing)} transaction(s) not mined within {timeout_s:g}s "
                f"(first {missing[0]}); is mining disabled?"
            ) from exc
        failed = [h for h in tx_hashes if int(receipts[h]["status"], 16) != 1]
        if failed:
            reason, data = await self._replay_revert(failed[0], receipts[failed[0]])
            count = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise ExecutionReverted(self.url, f"{reason} [transaction {failed[0]}{count}]", data)
        return [receipts[h] for h in tx_hashes]

    async def _replay_revert(self, tx_hash: str, receipt: Any) -> tuple[str, str | None]:
        """Revert reason of a mined, failed transaction, by replaying it as an eth_call on
        its parent block's state (Anvil mines reverting transactions without complaint)."""
        tx = await self.rpc("eth_getTransactionByHash", [tx_hash])
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        parent = hex(int(receipt["blockNumber"], 16) - 1)
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": "eth_call"}
        reply = await self._post({**request, "params": [call, parent]})
        error = reply.get("error") if isinstance(reply, dict) else None
        if not error:
            return "reverted (not reproducible by eth_call on the parent block)", None
        data = error.get("data")
        return str(error.get("message", "reverted")), data if isinstance(data, str) else None

    async def mint_many(
        self,
        token: str,
        mints: Sequence[tuple[str, int]],
        *,
        artifact_name: str = "MintableERC20",
        sender: str | None = None,
    ) -> None:
        """Call ``mint(account, amount)`` for every pair, fast enough for thousands.

        Transactions carry explicit nonces, a fixed gas limit and a fee cap with headroom (no
        per-transaction estimation or receipt round trip). Under automine (or no mining),
        mining is paused, transactions go out in JSON-RPC batches and each batch is mined as
        a block or two before the next is sent; under interval mining they are sent one by
        one, in nonce order, and the node mines them. This works around Anvil 1.7.1
        behaviour measured here: a batch is processed concurrently, and transactions arriving
        out of nonce order while their predecessors are being mined can stay queued forever;
        and a burst of full blocks raises the base fee until Anvil silently drops the
        transactions priced before it. Every receipt is checked: a reverted mint raises
        ``ExecutionReverted``.
        """
        sender = self._from(sender)
        nonce = int(await self.rpc("eth_getTransactionCount", [sender, "pending"]), 16)
        txs = [
            {
                "from": sender,
                "to": token,
                "data": "0x" + encode_call(artifact_name, "mint", account, amount).hex(),
                "gas": hex(MINT_GAS),
                "maxPriorityFeePerGas": hex(MINT_TIP_WEI),
                "nonce": hex(nonce + i),
            }
            for i, (account, amount) in enumerate(mints)
        ]
        hashes: list[str] = []
        if await self.rpc("anvil_getIntervalMining") is not None:
            fee_cap = hex(await self._fee_cap_for(len(txs) * MINT_GAS))
            for tx in txs:  # one at a time: the interval miner must see them in nonce order
                tx_hash = await self.rpc("eth_sendTransaction", [{**tx, "maxFeePerGas": fee_cap}])
                hashes.append(tx_hash)
        else:
            automine = bool(await self.rpc("anvil_getAutomine"))
            if automine:
                await self.rpc("evm_setAutomine", [False])
            try:
                for start in range(0, len(txs), RPC_BATCH_SIZE):
                    chunk = txs[start : start + RPC_BATCH_SIZE]
                    fee_cap = hex(await self._fee_cap_for(len(chunk) * MINT_GAS))
                    sends = [
                        ("eth_sendTransaction", [{**tx, "maxFeePerGas": fee_cap}]) for tx in chunk
                    ]
                    hashes += await self.rpc_batch(sends)
                    await self._mine_pending(max_blocks=len(chunk))
            finally:
                if automine:
                    await self.rpc("evm_setAutomine", [True])
        await self.wait_receipts(hashes)

    async def _fee_cap_for(self, gas: int) -> int:
        """A max fee per gas that stays valid while ``gas`` worth of full blocks is mined
        (EIP-1559 lets the base fee grow by 1/8 per full block)."""
        latest = await self.rpc("eth_getBlockByNumber", ["latest", False])
        base_fee = int(latest.get("baseFeePerGas") or "0x0", 16)
        blocks = -(-gas // max(1, int(latest["gasLimit"], 16))) + 1
        return int(base_fee * 9**blocks // 8**blocks) + MINT_TIP_WEI

    async def _mine_pending(self, *, max_blocks: int) -> None:
        """Mine blocks until the pool has no executable transaction left."""
        for _ in range(max_blocks):
            status = await self.rpc("txpool_status")
            if int(status["pending"], 16) == 0:
                return
            await self.rpc("evm_mine")

    async def increase_time(self, seconds: int) -> None:
        """Move the clock of the next mined block forward by ``seconds``."""
        await self.rpc("evm_increaseTime", [seconds])

    async def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks now."""
        await self.rpc("anvil_mine", [hex(blocks)])

    async def snapshot(self) -> str:
        """``evm_snapshot``; the id for ``revert``."""
        snapshot_id: str = await self.rpc("evm_snapshot")
        return snapshot_id

    async def revert(self, snapshot_id: str) -> None:
        """``evm_revert`` to a snapshot (which is consumed); raises if the id is unknown."""
        if not await self.rpc("evm_revert", [snapshot_id]):
            raise DevnetError(f"evm_revert({snapshot_id}) failed: unknown snapshot")

    async def set_code(self, address: str, code: bytes) -> None:
        """Put runtime ``code`` at ``address`` (``anvil_setCode``)."""
        await self.rpc("anvil_setCode", [address, "0x" + code.hex()])

    async def set_next_block_timestamp(self, timestamp: int) -> None:
        """Timestamp of the next mined block (seconds)."""
        await self.rpc("evm_setNextBlockTimestamp", [timestamp])

    async def head(self) -> tuple[int, str]:
        """(number, hash) of the latest block."""
        block = await self.rpc("eth_getBlockByNumber", ["latest", False])
        return int(block["number"], 16), str(block["hash"])

    async def block_timestamp(self, block: str | int = "latest") -> int:
        """Timestamp (seconds) of a block."""
        tag = hex(block) if isinstance(block, int) else block
        found = await self.rpc("eth_getBlockByNumber", [tag, False])
        return int(found["timestamp"], 16)

    def _from(self, sender: str | None) -> str:
        return sender if sender is not None else self.accounts[0]
