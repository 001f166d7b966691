"""``crossmargin demo``: the whole product on one machine, playing a market crash.

Starts three Anvil chains with different block times and liquidation latencies
(``demo.world``), deploys tokens and Chainlink-style feeds, runs two loopback exchanges,
seeds random cross-chain portfolios (``demo.portfolios``), runs the real daemon
in-process on SQLite with its keeper API (MQTT only if a broker answers on 127.0.0.1:1883),
posts perp positions through that API, then plays the scenario (``demo.scenario``)
while a live view (``demo.view``) shows accounts turning latency-risky, liquidatable
and held. Ctrl-C or SIGTERM stops the daemon gracefully, then the exchanges and the chains.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import random
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from core.errors import CrossmarginError
from daemon.config.model import API_DEFAULT_LISTEN, parse_listen
from daemon.service import Daemon
from demo.config import DEMO_API_TOKEN, MQTT_TOPIC_PREFIX, demo_config, mqtt_broker_url
from demo.portfolios import draw_portfolios, mint_portfolios, post_positions
from demo.scenario import STALL_CHAIN, STALL_MARGIN_S, EventLog, Scenario, build_timeline
from demo.view import ACTIONABLE, DemoState, changes, observe, render_frame, summary_line
from demo.world import CHAIN_SPECS, DemoError, DemoWorld, open_world

DEFAULT_ACCOUNTS = 1000
DEFAULT_SEED = 7
VIEW_REFRESH_S = 1.0
HEDGED_SHARE = 0.1  # --model portfolio: basis trades among the accounts
SUMMARY_EVERY_S = 2.0  # --no-view: one summary line this often
READY_TIMEOUT_S = 90.0
READY_POLL_S = 0.2
VIEW_REPORTED_EVENTS = ("oracle.status",)  # log events the view reports in its own words
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    """What ``crossmargin demo`` was asked to do."""

    duration_s: float | None = None  # from start-up; None: until Ctrl-C
    accounts: int = DEFAULT_ACCOUNTS
    api: str = API_DEFAULT_LISTEN
    view: bool = True
    speed: float = 1.0
    seed: int = DEFAULT_SEED
    model: str = "weighted"  # weighted | tiered | portfolio (with hedged accounts)


class _EventLogHandler(logging.Handler):
    """Warnings of the daemon as view events, so they do not scribble over the view."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith(VIEW_REPORTED_EVENTS):
            self.log.add(f"log {record.levelname.lower()}: {message}")


@contextlib.contextmanager
def _logs_into(log: EventLog) -> Iterator[None]:
    """Route log records to ``log`` instead of stderr while the view is drawn."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [_EventLogHandler(log)]
    try:
        yield
    finally:
        root.handlers = saved


def _api_address(listen: str) -> tuple[str, int]:
    """``host:port`` of ``--api``; port 0 is refused (the demo posts to the port it names)."""
    host, port = parse_listen(listen)
    if port == 0:
        raise ValueError("give a real port: the demo posts positions to it and prints it")
    return host, port


def port_problem(host: str, port: int) -> str | None:
    """Why the API cannot listen on ``host:port``, or ``None`` if it can."""
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"{listen} is already in use (another demo or daemon?); "
                    f"free it or pass --api 127.0.0.1:<port>"
                )
            return f"cannot listen on {listen}: {exc.strerror}"
    return None


async def run_demo(options: DemoOptions, *, out: TextIO = sys.stdout) -> int:
    """Run the demo until Ctrl-C/SIGTERM (or ``options.duration_s``); 0 on a clean stop.

    Everything started is stopped on the way out, also when start-up is interrupted.
    """
    try:
        host, port = _api_address(options.api)
    except ValueError as exc:
        print(f"crossmargin demo: --api {options.api}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = port_problem(host, port)
    if problem is not None:
        print(f"crossmargin demo: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    if options.view and not out.isatty():  # a pipe or a file: summaries, not screen redraws
        options = dataclasses.replace(options, view=False)
    stop = asyncio.Event()
    running = asyncio.Event()
    session = _DemoSession(options, stop=stop, running=running, out=out)
    body = asyncio.create_task(session.run(), name="demo")

    def on_signal() -> None:
        if stop.is_set() or not running.is_set():
            body.cancel()  # during start-up, or a second Ctrl-C: unwind now
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await body
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        out.write("demo interrupted; everything it started has been stopped.\n")
    except BaseExceptionGroup as group:  # from a TaskGroup: report the first real failure
        raise _leaf_error(group) from None
    except OSError as exc:
        raise DemoError(f"demo failed: {exc}") from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return EXIT_OK


def _leaf_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception inside ``group``, an ``OSError`` turned into a ``DemoError``."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    if isinstance(leaf, OSError):
        return DemoError(f"demo failed: {leaf}")
    return leaf if isinstance(leaf, CrossmarginError) else group


class _DemoSession:
    """One run of the demo: start the world and the daemon, play, show, stop."""

    def __init__(
        self, options: DemoOptions, *, stop: asyncio.Event, running: asyncio.Event, out: TextIO
    ) -> None:
        self.options = options
        self.stop = stop
        self.running = running  # set once start-up is over (Ctrl-C then stops gracefully)
        self.out = out
        self.log = EventLog(echo=None if options.view else out)
        self.peaks: dict[str, int] = {}
        self.api_url = f"http://{options.api}"

    def say(self, message: str) -> None:
        """A start-up progress line."""
        self.out.write(message + "\n")
        self.out.flush()

    async def run(self) -> None:
        """Everything, from start-up to the final line."""
        options = self.options
        async with contextlib.AsyncExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="crossmargin-demo-"))
            workdir = Path(tmp)
            if options.view:
                stack.enter_context(_logs_into(self.log))
            self.say(f"starting {len(CHAIN_SPECS)} Anvil chains, tokens, feeds and 2 exchanges…")
            world = await open_world(stack)
            hedged = HEDGED_SHARE if options.model == "portfolio" else 0.0
            portfolios = draw_portfolios(
                random.Random(options.seed), options.accounts, hedged_share=hedged
            )
            self.say(f"seeding {len(portfolios)} cross-chain portfolios…")
            mints = await mint_portfolios(world, portfolios)
            mqtt_url = mqtt_broker_url()
            mqtt = f"{mqtt_url} ({MQTT_TOPIC_PREFIX}/…)" if mqtt_url else "off (no broker)"
            config = demo_config(
                world,
                [p.account for p in portfolios],
                listen=options.api,
                workdir=workdir,
                mqtt_url=mqtt_url,
                model=options.model,
            )
            self.say(f"{mints} balances minted; starting the daemon (SQLite, MQTT {mqtt})…")
            daemon = Daemon(config)
            daemon_stop = asyncio.Event()
            async with asyncio.TaskGroup() as tasks:
                daemon_task = tasks.create_task(
                    daemon.run(daemon_stop, auto_migrate=True), name="daemon"
                )
                background = [
                    tasks.create_task(c.producer.run(), name=f"blocks:{c.name}")
                    for c in world.chains
                ]
                try:
                    await _wait_ready(daemon, daemon_task)
                    self.log.add(f"daemon ready; API {self.api_url} (token {DEMO_API_TOKEN})")
                    posted = await post_positions(self.api_url, DEMO_API_TOKEN, portfolios)
                    self.log.add(f"{posted} perp positions posted through PUT /v1/positions")
                    stall_min_s = config.chain(STALL_CHAIN).max_lag_s + STALL_MARGIN_S
                    timeline = build_timeline(speed=options.speed, stall_min_s=stall_min_s)
                    scenario = Scenario(world, timeline, self.log)
                    background.append(tasks.create_task(scenario.run(), name="scenario"))
                    self.running.set()
                    await self.show(daemon, world, scenario, mqtt)
                finally:
                    for task in background:
                        task.cancel()
                    daemon_stop.set()
        peaks = " ".join(f"{k}={v}" for k, v in self.peaks.items() if k != ACTIONABLE)
        self.say(
            f"demo stopped after {self.log.elapsed():.0f}s; peaks: {peaks}; the daemon, both "
            f"exchanges and all {len(CHAIN_SPECS)} Anvil chains are shut down."
        )

    async def show(self, daemon: Daemon, world: DemoWorld, scenario: Scenario, mqtt: str) -> None:
        """Redraw the view (or print summaries) until stopped or ``duration_s`` is over."""
        options, log = self.options, self.log
        title = (
            f"{options.accounts} accounts on {len(CHAIN_SPECS)} chains, ETH crash "
            f"(speed ×{options.speed:g}), SQLite, MQTT {mqtt}"
        )
        previous: DemoState | None = None
        last_summary = float("-inf")
        while not self.stop.is_set() and (
            options.duration_s is None or log.elapsed() < options.duration_s
        ):
            state = observe(
                daemon, world, elapsed_s=log.elapsed(), phase=scenario.phase, peaks=self.peaks
            )
            for line in changes(previous, state):
                log.add(line)
            previous = state
            if options.view:
                self.out.write(
                    render_frame(state, title=title, api=self.api_url, events=log.entries)
                )
                self.out.flush()
            elif state.elapsed_s - last_summary >= SUMMARY_EVERY_S:
                last_summary = state.elapsed_s
                self.say(summary_line(state))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), VIEW_REFRESH_S)


async def _wait_ready(daemon: Daemon, daemon_task: asyncio.Task[None]) -> None:
    """Until every chain is read and every asset priced (or the daemon fails)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while daemon.readiness():
        if daemon_task.done():
            daemon_task.result()  # raises the daemon's error
            raise DemoError("the daemon stopped during start-up")
        if loop.time() > deadline:
            reasons = "; ".join(daemon.readiness())
            raise DemoError(f"daemon not ready within {READY_TIMEOUT_S:g}s: {reasons}")
        await asyncio.sleep(READY_POLL_S)
