"""The Anvil node process: find the npm-installed binary, start it in its own process group on
a free loopback port, wait until it answers, stop the whole group."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import aiohttp

from core.errors import (
    CrossmarginError,
    NonRetryableError,
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
