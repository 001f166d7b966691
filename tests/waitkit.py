"""Waiting in tests: on the event or state itself, never on the clock's verdict.

A test never asserts how long something took (speed belongs in ``bench/``): it waits for what
it expects with a generous bound, and when the bound runs out it fails with what it saw last,
so a failure on a loaded machine says what was missing, not just "timed out". The bound is a
safety net for a hang, not a target: two cores are shared by several test runs here.

A fixed sleep is left only where a test proves that something does NOT happen; keep those short
and say so in a comment.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

WAIT_S = 60.0
"""Generous bound for a condition a test waits for (a hang, not a slow machine, exceeds it)."""
POLL_S = 0.05


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    *,
    what: str,
    timeout_s: float = WAIT_S,
    poll_s: float = POLL_S,
    seen: Callable[[], object] | None = None,
) -> Any:
    """Call ``check`` (sync or async) until it returns something truthy; return that.

    After ``timeout_s`` fail with ``what`` and the last value seen: ``check``'s last result,
    or ``seen()`` when given (say, the state a predicate looked at).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            last = seen() if seen is not None else result
            raise AssertionError(f"not seen within {timeout_s:g} s: {what}; last seen: {last!r}")
        await asyncio.sleep(poll_s)
