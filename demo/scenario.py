"""The demo's scenario: calm, then an ETH crash of 30% over a minute on every source, with
one exchange manipulated and one chain stalling during it, a pause at the bottom, a partial
recovery, then steady prices until the demo is stopped.

The timeline is plain data (``build_timeline``) computed up front; ``speed`` divides every
time, except that a stall always outlasts the stalled chain's ``max_lag_s`` (the point of it
is to see the chain go stale). Steps run as tasks, so a feed transaction waiting for its
block never delays the next step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

from demo.world import START_PRICES, DemoWorld

CALM_S = 10.0
CRASH_S = 60.0
CRASH_DROP = Decimal("0.30")
CRASH_STEPS = 20
CANDLE_STEP = 14  # this crash step is one sharp candle ...
CANDLE_DROP = Decimal("0.08")  # ... larger than the oracle's max_jump (6%): the breaker trips
MANIPULATE_AT_S = 12.0  # into the crash
MANIPULATE_S = 15.0
MANIPULATION = Decimal("0.40")  # exchange-b quotes ETH 40% above the others
STALL_CHAIN = "base"
STALL_AT_S = 5.0  # into the crash
STALL_S = 25.0
STALL_MARGIN_S = 5.0  # a stall lasts at least max_lag_s + this, whatever the speed
BOTTOM_S = 30.0
RECOVERY_S = 20.0
RECOVERY_STEPS = 10  # ≈1.4% each: within max_deviation of a feed one block behind
RECOVERY_RISE = Decimal("0.15")  # from the bottom: ETH ends about 20% under where it began
CRASH_ASSET = "ETH"
MANIPULATED_SOURCE = "exchange-b"


class EventLog:
    """Timestamped demo events (seconds since the demo started), optionally echoed."""

    def __init__(self, *, echo: TextIO | None = None) -> None:
        self.started = time.monotonic()
        self.entries: list[tuple[float, str]] = []
        self._echo = echo

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return time.monotonic() - self.started

    def add(self, message: str) -> None:
        """Record ``message`` now."""
        at = self.elapsed()
        self.entries.append((at, message))
        if self._echo is not None:
            self._echo.write(f"[t+{at:6.1f}s] {message}\n")
            self._echo.flush()


Action = Callable[[DemoWorld], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Step:
    """At ``at_s`` after the scenario starts: enter ``phase`` (if set), log, act."""

    at_s: float
    message: str | None
    action: Action | None = None
    phase: str | None = None


def _set_price(asset: str, price: Decimal) -> Action:
    async def act(world: DemoWorld) -> None:
        await world.set_price(asset, price)

    return act


def _manipulate(asset: str, price: Decimal | None) -> Action:
    async def act(world: DemoWorld) -> None:
        world.manipulate(asset, price)

    return act


def _stall(chain: str, stalled: bool) -> Action:
    async def act(world: DemoWorld) -> None:
        producer = world.chain(chain).producer
        if stalled:
            producer.stall()
        else:
            producer.resume()

    return act


def _crash_prices(start: Decimal) -> list[Decimal]:
    """The crash's price after each step: equal steps but one sharp candle, −30% in all."""
    bottom = start * (1 - CRASH_DROP)
    plain = (float(bottom / (start * (1 - CANDLE_DROP)))) ** (1 / (CRASH_STEPS - 1))
    prices, price = [], start
    for step in range(CRASH_STEPS):
        price = price * (1 - CANDLE_DROP) if step == CANDLE_STEP else price * Decimal(plain)
        prices.append(price)
    prices[-1] = bottom  # exact, whatever the float rounding
    return prices


def build_timeline(*, speed: float, stall_min_s: float) -> list[Step]:
    """Every step of the scenario, in time order, ``speed`` times faster than real time."""
    start = START_PRICES[CRASH_ASSET]
    asset = CRASH_ASSET
    steps = [Step(0.0, "calm: prices steady on every source", phase="calm")]
    crash_at = CALM_S
    steps.append(
        Step(
            crash_at,
            f"crash: {asset} falls {CRASH_DROP:.0%} over {CRASH_S:g}s on every source",
            phase="crash",
        )
    )
    interval = CRASH_S / CRASH_STEPS
    prices = _crash_prices(start)
    for i, price in enumerate(prices):
        note = f"sharp candle: {asset} −{CANDLE_DROP:.0%} in one step" if i == CANDLE_STEP else None
        steps.append(Step(crash_at + i * interval, note, _set_price(asset, price)))
    bottom = prices[-1]
    pinned = (prices[0] * (1 + MANIPULATION)).quantize(Decimal("0.01"))
    manipulated_at = crash_at + MANIPULATE_AT_S
    steps += [
        Step(
            manipulated_at,
            f"{MANIPULATED_SOURCE} manipulated: quotes {asset} at {pinned} (+{MANIPULATION:.0%})",
            _manipulate(asset, pinned),
        ),
        Step(
            manipulated_at + MANIPULATE_S,
            f"{MANIPULATED_SOURCE} released: quotes the market again",
            _manipulate(asset, None),
        ),
    ]
    stall_at = crash_at + STALL_AT_S
    # Times here are divided by ``speed`` at the end; a stall must still outlast
    # ``stall_min_s`` of real time, so it is stretched in scenario time.
    stall_s = max(STALL_S, stall_min_s * speed)
    steps += [
        Step(stall_at, f"{STALL_CHAIN} stalls: no new blocks", _stall(STALL_CHAIN, True)),
        Step(
            stall_at + stall_s,
            f"{STALL_CHAIN} resumes block production",
            _stall(STALL_CHAIN, False),
        ),
    ]
    bottom_at = crash_at + CRASH_S
    steps.append(Step(bottom_at, f"bottom: {asset} at {bottom:.2f}", phase="bottom"))
    recovery_at = bottom_at + BOTTOM_S
    steps.append(
        Step(recovery_at, f"recovery: {asset} climbs {RECOVERY_RISE:.0%}", phase="recovery")
    )
    rise = float(1 + RECOVERY_RISE) ** (1 / RECOVERY_STEPS)
    price = bottom
    for i in range(RECOVERY_STEPS):
        price = price * Decimal(rise)
        at = recovery_at + (i + 1) * RECOVERY_S / RECOVERY_STEPS
        steps.append(Step(at, None, _set_price(asset, price)))
    steps.append(
        Step(
            recovery_at + RECOVERY_S + 1,
            "steady: the scenario is over; Ctrl-C stops the demo",
            phase="steady",
        )
    )
    return [
        Step(s.at_s / speed, s.message, s.action, s.phase)
        for s in sorted(steps, key=lambda s: s.at_s)
    ]


class Scenario:
    """Plays a timeline against the world; ``phase`` is what the view shows."""

    def __init__(self, world: DemoWorld, timeline: list[Step], log: EventLog) -> None:
        self.world = world
        self.timeline = timeline
        self.log = log
        self.phase = "starting"
        self.started_at: float | None = None  # EventLog time of the first step

    async def run(self) -> None:
        """Play every step on time, then return (actions still running are awaited)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        self.started_at = self.log.elapsed()
        async with asyncio.TaskGroup() as actions:
            for step in self.timeline:
                await asyncio.sleep(max(0.0, began + step.at_s - loop.time()))
                if step.phase is not None:
                    self.phase = step.phase
                if step.message is not None:
                    self.log.add(step.message)
                if step.action is not None:
                    actions.create_task(step.action(self.world), name="scenario-step")
