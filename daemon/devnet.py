"""Local Anvil chains for tests, ``crossmargin demo`` and benchmarks.

``AnvilNode`` runs the real Anvil binary (npm ``@foundry-rs/anvil``) as a child process in its
own process group on a free loopback port; ``DevChain`` drives one node over JSON-RPC: deploy the
Solidity fixtures from ``contracts/artifacts``, send transactions, read state, move time, take
snapshots. This is setup tooling, not the hot path: ABI work goes through eth_abi/eth_utils
(the web3.py stack), with plain eth_abi address rules: any hex case is accepted.

    async with AnvilNode(chain_id=1001) as node, DevChain(node.url) as dev:
        token = await dev.deploy("MintableERC20", "USD Coin", "USDC", 6)
        await dev.transact(token, "MintableERC20", "mint", dev.accounts[1], 10**6)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import os
import signal
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

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

from core.contracts import load_artifact
from core.errors import (
    CrossmarginError,
    ExecutionReverted,
    JsonRpcError,
    NonRetryableError,
    RpcError,
)

ANVIL_ENV_VAR = "CROSSMARGIN_ANVIL"
REPO_ROOT = Path(__file__).resolve().parent.parent
ANVIL_PACKAGE_GLOB = "node_modules/@foundry-rs/anvil-*/bin/anvil"
ANVIL_PREFERRED_PACKAGE = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
HOST = "127.0.0.1"

STARTUP_TIMEOUT_S = 30.0  # a fork start fetches the fork block first: allow for slow machines
STARTUP_POLL_S = 0.05
STARTUP_PROBE_TIMEOUT_S = 0.5  # one eth_chainId probe; a miss is simply retried
STOP_GRACE_S = 5.0  # SIGTERM → SIGKILL
PORT_ATTEMPTS = 5  # only the bind-probe fallback can lose a port race
STDERR_TAIL_CHARS = 2_000
RPC_TIMEOUT_S = 60.0
RECEIPT_TIMEOUT_S = 60.0
RECEIPT_POLL_S = 0.02
RPC_BATCH_SIZE = 250  # requests per JSON-RPC batch (mint_many, receipt polling)
MINT_GAS = 200_000  # fixed gas per mint: skips one eth_estimateGas round trip per transaction
MINT_TIP_WEI = 10**9  # priority fee of mint_many transactions (Anvil's default suggestion)

# Linux exposes each process's sockets, so Anvil can bind port 0 itself and we read the port
# back: no window in which another process could take a pre-probed port.
_PROC_NET = Path("/proc/self/net/tcp").exists()
_TCP_LISTEN = "0A"


class DevnetError(CrossmarginError):
    """Base of the errors raised while starting or driving a local dev chain."""


class AnvilNotFound(DevnetError, NonRetryableError):
    """No Anvil binary could be located."""

    def __init__(self, searched: Sequence[str]) -> None:
        super().__init__(
            f"Anvil binary not found (looked at: {', '.join(searched)}); "
            f"run `make install` or set {ANVIL_ENV_VAR} to the binary"
        )


class AnvilStartError(DevnetError, NonRetryableError):
    """Anvil exited or did not answer ``eth_chainId`` in time; carries its stderr tail."""

    def __init__(self, problem: str, stderr_tail: str) -> None:
        self.stderr_tail = stderr_tail
        tail = stderr_tail.strip() or "(empty)"
        super().__init__(f"anvil did not start: {problem}; anvil stderr:\n{tail}")


def find_anvil_binary() -> Path:
    """``$CROSSMARGIN_ANVIL``, else the npm platform package's binary under ``node_modules``."""
    override = os.environ.get(ANVIL_ENV_VAR)
    if override:
        if not Path(override).is_file():
            raise AnvilNotFound([f"${ANVIL_ENV_VAR}={override}"])
        return Path(override)
    preferred = REPO_ROOT / ANVIL_PREFERRED_PACKAGE
    candidates = [preferred, *sorted(REPO_ROOT.glob(ANVIL_PACKAGE_GLOB))]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AnvilNotFound([str(REPO_ROOT / ANVIL_PACKAGE_GLOB)])


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state held by process ``pid`` (Linux ``/proc``)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _TCP_LISTEN and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _probe_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class _PortTaken(Exception):
    """The pre-probed port was taken before Anvil bound it (bind-probe fallback only)."""


class AnvilNode:
    """A running Anvil process; an async context manager (``async with AnvilNode(...)``).

    ``block_time_s=None`` mines a block per transaction (instant mining). ``fork_url`` forks
    another (local) node at its latest block. The chain id defaults to Anvil's (31337, or the
    forked chain's); ``.chain_id`` is what the node actually reports.
    """

    def __init__(
        self,
        *,
        chain_id: int | None = None,
        block_time_s: float | None = None,
        fork_url: str | None = None,
        gas_limit: int | None = None,
        no_request_size_limit: bool = False,
        slots_in_an_epoch: int | None = None,
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self._requested_chain_id = chain_id
        self._args: list[str] = ["--host", HOST, "--silent"]
        if chain_id is not None:
            self._args += ["--chain-id", str(chain_id)]
        if block_time_s is not None:
            self._args += ["--block-time", repr(float(block_time_s))]
        if fork_url is not None:
            self._args += ["--fork-url", fork_url]
        if gas_limit is not None:
            self._args += ["--gas-limit", str(gas_limit)]
        if no_request_size_limit:
            self._args.append("--no-request-size-limit")
        if slots_in_an_epoch is not None:
            self._args += ["--slots-in-an-epoch", str(slots_in_an_epoch)]
        self._args += list(extra_args)
        self._binary = binary
        self._startup_timeout_s = startup_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: IO[bytes] | None = None
        self._port: int | None = None
        self._chain_id: int | None = None

    @property
    def url(self) -> str:
        """HTTP JSON-RPC URL (the same port serves WebSocket at ``ws://``)."""
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket JSON-RPC URL."""
        return f"ws://{HOST}:{self.port}"

    @property
    def port(self) -> int:
        """The loopback port Anvil listens on."""
        if self._port is None:
            raise RuntimeError("AnvilNode is not running")
        return self._port

    @property
    def chain_id(self) -> int:
        """The chain id the running node reports."""
        if self._chain_id is None:
            raise RuntimeError("AnvilNode is not running")
        return self._chain_id

    @property
    def pid(self) -> int:
        """Process id (and process group id) of the Anvil process."""
        if self._proc is None:
            raise RuntimeError("AnvilNode is not running")
        return self._proc.pid

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> Self:
        """Start Anvil and wait until it answers ``eth_chainId``."""
        if self._proc is not None:
            raise RuntimeError("AnvilNode already started")
        binary = self._binary or find_anvil_binary()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = 0 if _PROC_NET else _probe_free_port()
            try:
                await self._spawn(binary, port)
                await self._wait_ready(port)
            except _PortTaken:
                await self.stop()
                if attempt == PORT_ATTEMPTS:
                    raise AnvilStartError(
                        f"no free port after {PORT_ATTEMPTS} attempts", ""
                    ) from None
            except BaseException:
                await self.stop()
                raise
            else:
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    async def stop(self) -> None:
        """Terminate the process group, wait, SIGKILL after the grace period. Idempotent."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                await _terminate_group(proc)
        finally:
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None
            self._port = None
            self._chain_id = None

    async def _spawn(self, binary: Path, port: int) -> None:
        # A file, not a pipe: nobody drains stderr while Anvil runs, and a full pipe blocks it.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._proc = await asyncio.create_subprocess_exec(
            str(binary),
            "--port",
            str(port),
            *self._args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,  # own process group: stop() signals the whole group
        )
        _LIVE_GROUPS.add(self._proc.pid)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL_CHARS))
        return self._stderr.read().decode("utf-8", "replace")

    async def _wait_ready(self, requested_port: int) -> None:
        """Poll until Anvil answers ``eth_chainId``; ``requested_port`` 0 means read it back."""
        proc = self._proc
        assert proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout_s
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        timeout = aiohttp.ClientTimeout(total=STARTUP_PROBE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if proc.returncode is not None:
                    tail = self._stderr_tail()
                    if requested_port and "address already in use" in tail.lower():
                        raise _PortTaken
                    raise AnvilStartError(f"exited with status {proc.returncode}", tail)
                port = requested_port or min(_listening_ports(proc.pid), default=0)
                if port:
                    with contextlib.suppress(
                        aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError
                    ):
                        async with session.post(f"http://{HOST}:{port}", json=payload) as resp:
                            body = await resp.json(content_type=None)
                        chain_id = int(body["result"], 16)
                        # A pre-probed port may answer for another process: only trust it
                        # while our Anvil is alive and the chain id is the one we asked for.
                        expected = self._requested_chain_id
                        if proc.returncode is None and expected in (None, chain_id):
                            self._port, self._chain_id = port, chain_id
                            return
                if loop.time() > deadline:
                    raise AnvilStartError(
                        f"no eth_chainId answer within {self._startup_timeout_s:g}s",
                        self._stderr_tail(),
                    )
                await asyncio.sleep(STARTUP_POLL_S)


# Process groups of nodes still running; SIGKILLed if the interpreter exits without stop().
_LIVE_GROUPS: set[int] = set()


async def _terminate_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, SIGKILL it after ``STOP_GRACE_S``, and reap the leader."""
    try:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    except BaseException:
        # Cancelled while waiting: do not leave the node running behind us.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    _LIVE_GROUPS.discard(proc.pid)


@atexit.register
def _kill_groups_at_exit() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _LIVE_GROUPS.clear()


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


class DevChain:
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

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
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

    async def increase_time(self, seconds: int) -> None:
        """Move the clock of the next mined block forward by ``seconds``."""
        await self.rpc("evm_increaseTime", [seconds])

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
