"""Waiting with a deadline must never lose a cancellation.

The case that hung a test run: a background loop waits for a wake-up with a deadline, the
wake-up and then the owner's ``task.cancel()`` land in the same loop turn. ``asyncio.wait_for``
on Python 3.11 returns the event's result and drops the cancellation, so the loop goes round
again forever and ``await task`` on shutdown never returns. These tests reproduce that turn
exactly (the event is set, then the task cancelled, before it runs again); both fail with a
``wait_for`` inside ``within``/``wait_event``.
"""

from __future__ import annotations

import asyncio

import pytest

from core.lifecycle import wait_event, within


async def background_loop(wake: asyncio.Event, rounds: list[int]) -> None:
    """The shape of every poller in the daemon: wait for a wake-up or the poll interval."""
    while True:
        wake.clear()
        rounds.append(len(rounds))
        await wait_event(wake, 5.0)


async def test_a_cancel_that_meets_a_wake_up_still_ends_the_loop() -> None:
    wake = asyncio.Event()
    rounds: list[int] = []
    task = asyncio.create_task(background_loop(wake, rounds))
    await asyncio.sleep(0)  # one step: the loop is parked in wait_event
    assert rounds == [0]
    wake.set()
    task.cancel()  # the same turn: both are delivered when the task next runs
    await asyncio.wait({task}, timeout=2.0)  # never cancels the task itself
    assert task.cancelled(), "the cancellation was lost: the loop is still running"
    assert rounds == [0]


async def test_a_cancel_that_meets_a_result_is_not_swallowed() -> None:
    ready = asyncio.Event()
    reached: list[bool] = []

    async def reader() -> None:
        await within(ready.wait(), 5.0)
        reached.append(True)  # only reached if the cancellation was lost

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    ready.set()
    task.cancel()
    await asyncio.wait({task}, timeout=2.0)
    assert task.cancelled(), "the cancellation was lost"
    assert reached == []


async def test_deadlines_still_expire() -> None:
    never = asyncio.Event()
    assert await wait_event(never, 0.01) is False
    with pytest.raises(TimeoutError):
        await within(never.wait(), 0.01)
    ready = asyncio.Event()
    ready.set()
    assert await wait_event(ready, 0.01) is True
    assert await within(asyncio.sleep(0, result="ok"), 1.0) == "ok"
