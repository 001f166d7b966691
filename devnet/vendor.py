"""Protocol contracts from npm on a dev chain: load, link, deploy, call.

Two sources of compiled protocol code, both pinned in ``package.json``:

- ``@aave/core-v3`` ships Hardhat artifacts (``artifacts/contracts/**/X.sol/X.json``) whose
  bytecode carries *link references*: placeholders where a library's address goes. ``link``
  writes the deployed library addresses at the recorded byte offsets.
- ``@morpho-org/morpho-blue`` ships Solidity only; ``scripts/build-vendor-contracts.mjs``
  compiles it with the pinned solc 0.8.19 into the committed ``contracts/vendor/morpho-blue``.

``BoundContract`` is a deployed contract plus its ABI, driven through a ``DevChain`` (setup
tooling, not the hot path: eth_abi does the encoding).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.abi import is_encodable
from eth_utils.abi import (
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)
from eth_utils.address import to_checksum_address

from devnet.anvil import REPO_ROOT, DevnetError
from devnet.contracts import load_artifact
from devnet.driver import DevChain

AAVE_ARTIFACTS = REPO_ROOT / "node_modules" / "@aave" / "core-v3" / "artifacts" / "contracts"
VENDOR_ARTIFACTS = REPO_ROOT / "contracts" / "vendor"
ADDRESS_BYTES = 20


@dataclass(frozen=True, slots=True)
class VendorArtifact:
    """A compiled contract: ABI, creation code (maybe with link placeholders) and the byte
    offsets of each library's placeholders (``{library name: (offset, …)}``)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    links: Mapping[str, tuple[int, ...]]

    def link(self, libraries: Mapping[str, str]) -> bytes:
        """Creation code with every library placeholder replaced by its deployed address."""
        missing = sorted(set(self.links) - set(libraries))
        if missing:
            raise DevnetError(f"{self.name} needs library addresses for {', '.join(missing)}")
        code = bytearray(self.bytecode)
        for library, offsets in self.links.items():
            address = bytes.fromhex(libraries[library].removeprefix("0x"))
            for offset in offsets:
                code[offset : offset + ADDRESS_BYTES] = address
        return bytes(code)


class VendorArtifactNotFound(DevnetError):
    """A protocol artifact is missing: the npm packages are not installed or not built."""

    def __init__(self, name: str, where: Path) -> None:
        super().__init__(
            f"no compiled artifact {name!r} under {where}; run `make install` "
            "(and `make contracts` for contracts/vendor)"
        )


@functools.cache
def _aave_index() -> dict[str, Path]:
    if not AAVE_ARTIFACTS.is_dir():
        return {}
    return {
        path.stem: path
        for path in sorted(AAVE_ARTIFACTS.rglob("*.json"))
        if not path.name.endswith(".dbg.json")
    }


@functools.cache
def aave_artifact(name: str) -> VendorArtifact:
    """An ``@aave/core-v3`` artifact by contract name (``Pool``, ``AToken``, …)."""
    path = _aave_index().get(name)
    if path is None:
        raise VendorArtifactNotFound(name, AAVE_ARTIFACTS)
    raw = json.loads(path.read_text(encoding="utf-8"))
    bytecode = bytes.fromhex(_placeholders_zeroed(raw["bytecode"]))
    links = {
        library: tuple(ref["start"] for ref in refs)
        for per_file in raw.get("linkReferences", {}).values()
        for library, refs in per_file.items()
    }
    return VendorArtifact(name=raw["contractName"], abi=raw["abi"], bytecode=bytecode, links=links)


def _placeholders_zeroed(bytecode_hex: str) -> str:
    """Hex with ``__$…$__`` placeholders (40 hex chars each) zeroed so it parses as bytes."""
    text = bytecode_hex.removeprefix("0x")
    out: list[str] = []
    i = 0
    while (j := text.find("__", i)) != -1:
        out.append(text[i:j])
        out.append("0" * 40)
        i = j + 40
    out.append(text[i:])
    return "".join(out)


@functools.cache
def vendor_artifact(package_dir: str, name: str) -> VendorArtifact:
    """A committed ``contracts/vendor/<package_dir>/<name>.json`` artifact."""
    path = VENDOR_ARTIFACTS / package_dir / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VendorArtifactNotFound(name, path.parent) from exc
    return VendorArtifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
        links={},
    )


def fixture_artifact(name: str) -> VendorArtifact:
    """One of our own ``contracts/artifacts`` fixtures, in the same shape."""
    artifact = load_artifact(name)
    return VendorArtifact(name=name, abi=artifact.abi, bytecode=artifact.bytecode, links={})


def _entry(abi: Sequence[dict[str, Any]], kind: str, name: str | None, args: Sequence[Any]) -> Any:
    entries = [e for e in abi if e.get("type") == kind and (name is None or e.get("name") == name)]
    if kind == "constructor" and not entries:
        entries = [{"type": "constructor", "inputs": []}]
    for entry in entries:
        types = get_abi_input_types(cast(Any, entry))
        if len(types) == len(args) and all(map(is_encodable, types, args)):
            return entry
    raise DevnetError(f"no {kind} {name or ''} accepting arguments {list(args)!r}")


def encode_function(abi: Sequence[dict[str, Any]], fn_name: str, *args: Any) -> bytes:
    """Calldata of ``fn_name(*args)`` under ``abi`` (overloads chosen by fit)."""
    entry = _entry(abi, "function", fn_name, args)
    return function_abi_to_4byte_selector(entry) + abi_encode(get_abi_input_types(entry), args)


def decode_function(abi: Sequence[dict[str, Any]], fn_name: str, data: bytes, *args: Any) -> Any:
    """Return value of ``fn_name``: one output → the value, several → a tuple, none → None."""
    entry = _entry(abi, "function", fn_name, args)
    types = get_abi_output_types(entry)
    values = tuple(abi_decode(types, data))
    values = tuple(
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)
    )
    if not values:
        return None
    return values[0] if len(values) == 1 else values


async def deploy_artifact(
    dev: DevChain,
    artifact: VendorArtifact,
    *ctor_args: Any,
    libraries: Mapping[str, str] | None = None,
    sender: str | None = None,
) -> BoundContract:
    """Deploy (linking ``libraries`` first) and return the bound contract."""
    entry = _entry(artifact.abi, "constructor", None, ctor_args)
    code = artifact.link(libraries or {}) + abi_encode(get_abi_input_types(entry), ctor_args)
    tx = {"from": sender or dev.accounts[0], "data": "0x" + code.hex()}
    receipt = await dev.wait_receipt(await dev.rpc("eth_sendTransaction", [tx]))
    address = to_checksum_address(receipt["contractAddress"])
    return BoundContract(dev=dev, address=address, abi=artifact.abi, name=artifact.name)


@dataclass(frozen=True, slots=True)
class BoundContract:
    """A deployed contract and its ABI on one dev chain."""

    dev: DevChain
    address: str
    abi: list[dict[str, Any]]
    name: str

    def at(self, address: str) -> BoundContract:
        """The same ABI at another address (a proxy, a token created by a factory)."""
        return BoundContract(
            dev=self.dev, address=to_checksum_address(address), abi=self.abi, name=self.name
        )

    def encode(self, fn_name: str, *args: Any) -> str:
        """0x-hex calldata of ``fn_name(*args)``."""
        return "0x" + encode_function(self.abi, fn_name, *args).hex()

    async def call(self, fn_name: str, *args: Any, block: str | int = "latest") -> Any:
        """``eth_call`` of ``fn_name(*args)``, decoded."""
        tag = hex(block) if isinstance(block, int) else block
        raw = await self.dev.rpc(
            "eth_call", [{"to": self.address, "data": self.encode(fn_name, *args)}, tag]
        )
        return decode_function(self.abi, fn_name, bytes.fromhex(raw[2:]), *args)

    async def transact(self, fn_name: str, *args: Any, sender: str | None = None) -> Any:
        """Send ``fn_name(*args)``, wait for the receipt (raises on revert), return it."""
        tx = {
            "from": sender or self.dev.accounts[0],
            "to": self.address,
            "data": self.encode(fn_name, *args),
        }
        return await self.dev.wait_receipt(await self.dev.rpc("eth_sendTransaction", [tx]))

    def tx(self, fn_name: str, *args: Any, sender: str, gas: int) -> dict[str, str]:
        """A transaction dict for ``send_batch`` (explicit gas: no estimation round trip)."""
        return {
            "from": sender,
            "to": self.address,
            "data": self.encode(fn_name, *args),
            "gas": hex(gas),
        }


BATCH_TXS = 200  # transactions per JSON-RPC batch in send_batch


async def send_batch(dev: DevChain, txs: Sequence[dict[str, str]]) -> list[Any]:
    """Send many transactions fast and check every receipt (raises ``ExecutionReverted``).

    Automine is paused while each chunk goes out as one JSON-RPC batch and is then mined, like
    ``DevChain.mint_many`` (Anvil processes a batch concurrently: transactions from one sender
    must not be mined while later nonces are still arriving). Nonces are assigned here per
    sender, so one sender may send many transactions in a chunk.
    """
    if not txs:
        return []
    senders = sorted({tx["from"] for tx in txs})
    counts = await dev.rpc_batch(
        [("eth_getTransactionCount", [sender, "pending"]) for sender in senders]
    )
    nonces = {s: int(n, 16) for s, n in zip(senders, counts, strict=True)}
    numbered: list[dict[str, str]] = []
    for tx in txs:
        numbered.append({**tx, "nonce": hex(nonces[tx["from"]])})
        nonces[tx["from"]] += 1
    hashes: list[str] = []
    await dev.rpc("evm_setAutomine", [False])
    try:
        for start in range(0, len(numbered), BATCH_TXS):
            chunk = numbered[start : start + BATCH_TXS]
            latest = await dev.rpc("eth_getBlockByNumber", ["latest", False])
            fee_cap = hex(int(latest.get("baseFeePerGas") or "0x0", 16) * 4 + 10**9)
            sends = [("eth_sendTransaction", [{**tx, "maxFeePerGas": fee_cap}]) for tx in chunk]
            hashes += await dev.rpc_batch(sends)
            for _ in range(len(chunk)):
                if int((await dev.rpc("txpool_status"))["pending"], 16) == 0:
                    break
                await dev.rpc("evm_mine")
    finally:
        await dev.rpc("evm_setAutomine", [True])
    return await dev.wait_receipts(hashes)
