"""Supervised components: a failing component is restarted with backoff, never allowed to
take the others down; cancellation (shutdown) passes straight through."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

RESTART_MIN_DELAY_S = 0.5  # first restart delay after a crash
RESTART_MAX_DELAY_S = 30.0  # cap of the doubling delay
HEALTHY_RUN_S = 60.0  # a component that ran this long before failing starts from the min delay


@dataclass(slots=True)
class ComponentState:
    """What operators see of one component: restarts and the last failure."""

    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    last_failure_at: float | None = None


class Supervisor:
    """Runs named components in a TaskGroup, restarting each with backoff when it fails."""

    def __init__(self) -> None:
        self.components: dict[str, ComponentState] = {}

    def spawn(
        self, tasks: asyncio.TaskGroup, name: str, run: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Start ``run`` as the supervised component ``name`` inside ``tasks``."""
        state = self.components.setdefault(name, ComponentState(name))
        return tasks.create_task(self._supervise(state, run), name=name)

    async def _supervise(self, state: ComponentState, run: Callable[[], Awaitable[None]]) -> None:
        delay = RESTART_MIN_DELAY_S
        while True:
            started = time.monotonic()
            state.running = True
            try:
                await run()
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:  # a component's crash must not spread to the others
                state.running = False
                state.restarts += 1
                state.last_error = f"{type(exc).__name__}: {exc}"
                state.last_failure_at = time.time()
                log.exception("component_failed name=%s restarts=%d", state.name, state.restarts)
            else:
                state.running = False
                log.info("component_finished name=%s", state.name)
                return
            if time.monotonic() - started >= HEALTHY_RUN_S:
                delay = RESTART_MIN_DELAY_S
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(RESTART_MAX_DELAY_S, delay * 2)
            log.warning("component_restarting name=%s", state.name)
