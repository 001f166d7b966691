"""The daemon under the storm and the lines it depends on: ``crossmargin run`` supervised as an
init system would, and TCP proxies that remember when they cut the database or the broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from tests.daemonkit import DaemonProcess
from tests.tcpproxy import TcpProxy

RESTART_DELAY_S = 1.0  # like systemd's RestartSec: an exited daemon is started again after this
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 6


class FaultLine:
    """A ``TcpProxy`` in front of one service that remembers when it was down."""

    def __init__(self, name: str, proxy: TcpProxy) -> None:
        self.name = name
        self.proxy = proxy
        self.outages: list[tuple[float, float | None]] = []  # (start, end) monotonic

    @property
    def down(self) -> bool:
        """Cut or stalled right now."""
        return bool(self.outages) and self.outages[-1][1] is None

    def cut(self, *, stall: bool = False) -> None:
        """Reset every connection and refuse new ones (``stall``: hold every byte instead)."""
        if stall:
            self.proxy.pause()
        else:
            self.proxy.cut()
        self.outages.append((time.monotonic(), None))

    async def restore(self) -> None:
        """Accept and forward again (idempotent)."""
        self.proxy.resume()
        await self.proxy.restore()
        if self.down:
            self.outages[-1] = (self.outages[-1][0], time.monotonic())

    def overlaps(self, start: float, end: float) -> bool:
        """Whether it was down at some moment of [start, end]."""
        return any(s <= end and (e is None or e >= start) for s, e in self.outages)


@dataclass
class Exit:
    """A daemon process that ended without being killed by the bench."""

    run: int
    code: int | None
    life_s: float
    store_down: bool  # the database was cut or stalled during its life
    log_tail: str


class Supervisor:
    """``crossmargin run`` kept running as an init system would: a process that exits on its
    own is recorded and started again after ``RESTART_DELAY_S``; ``kill`` is the bench's
    SIGKILL, after which nothing runs until ``start``."""

    def __init__(self, config_path: Path, workdir: Path, database: FaultLine) -> None:
        self.config_path = config_path
        self.workdir = workdir
        self.database = database
        self.runs = 0
        self.exits: list[Exit] = []
        self.current: DaemonProcess | None = None
        self._want = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._ours: set[DaemonProcess] = set()  # processes the bench killed or stopped
        self._keeper: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        """A process is running."""
        proc = None if self.current is None else self.current.proc
        return proc is not None and proc.returncode is None

    async def start(self) -> None:
        """Keep a process running from now on."""
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep(), name="chaos-supervisor")
        self._want.set()

    async def kill(self) -> None:
        """SIGKILL the running process and wait until it is reaped."""
        self._want.clear()
        daemon = self.current
        if daemon is not None:
            self._ours.add(daemon)
            daemon.kill()  # a process still being spawned is killed by the keeper
        await self._idle.wait()

    async def stop(self) -> int | None:
        """SIGTERM and wait: the exit code (``None`` if nothing ran or it had to be killed)."""
        self._want.clear()
        daemon = self.current
        code: int | None = None
        if daemon is not None and daemon.proc is not None and daemon.proc.returncode is None:
            self._ours.add(daemon)
            try:
                code = await daemon.stop(STOP_TIMEOUT_S)
            except TimeoutError:
                daemon.kill()
        await self._idle.wait()
        return code

    async def close(self) -> None:
        """Kill whatever runs and end the keeper."""
        await self.kill()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper

    async def _keep(self) -> None:
        while True:
            await self._want.wait()
            self.runs += 1
            run = self.runs
            daemon = DaemonProcess(self.config_path, self.workdir / f"daemon-{run:03d}.log")
            self.current = daemon
            self._idle.clear()
            try:
                await daemon.start()
                if not self._want.is_set():
                    self._ours.add(daemon)
                    daemon.kill()
                started = time.monotonic()
                assert daemon.proc is not None
                code = await daemon.proc.wait()
            finally:
                self._idle.set()
            if daemon in self._ours:
                continue
            ended = time.monotonic()
            tail = daemon.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            self.exits.append(
                Exit(
                    run=run,
                    code=code,
                    life_s=ended - started,
                    store_down=self.database.overlaps(started, ended),
                    log_tail="\n".join(tail),
                )
            )
            await asyncio.sleep(RESTART_DELAY_S)
