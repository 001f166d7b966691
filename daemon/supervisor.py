"""Supervised components: a failing component is restarted with backoff, never allowed to
take the others down; cancellation (shutdown) passes straight through."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RESTART_MIN_DELAY_S = 0.5  # first restart delay after a crash
RESTART_MAX_DELAY_S = 30.0  # cap of the doubling delay
HEALTHY_RUN_S = 60.0  # a component that ran this long before failing starts from the min delay


class Supervisor:
    """Runs named components in a TaskGroup, restarting each with backoff when it fails."""

    def spawn(
        self, tasks: asyncio.TaskGroup, name: str, run: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Start ``run`` as the supervised component ``name`` inside ``tasks``."""
        return tasks.create_task(self._supervise(name, run), name=name)

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        delay = RESTART_MIN_DELAY_S
        restarts = 0
        while True:
            started = time.monotonic()
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a component's crash must not spread to the others
                restarts += 1
                log.exception("component_failed name=%s restarts=%d", name, restarts)
            else:
                log.info("component_finished name=%s", name)
                return
            if time.monotonic() - started >= HEALTHY_RUN_S:
                delay = RESTART_MIN_DELAY_S
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(RESTART_MAX_DELAY_S, delay * 2)
            log.warning("component_restarting name=%s", name)
