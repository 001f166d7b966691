"""Hedged requests: when one endpoint is slow to answer, ask the next one too, keep the first
answer and cancel the other.

A flaky endpoint that holds a request for seconds is not a failure the breaker can see until
the request times out; hedging bounds what it costs to ``delay_s`` (derived by the caller from
the endpoint's observed latency), and the loser is reported so the breaker learns the endpoint
was too slow. Only idempotent reads may be hedged: the same request may reach two nodes.

An *answer* is a result or a definitive error (a revert, a JSON-RPC error, a call too large):
the node worked, so it ends the race. A failure that another endpoint may not share
(``RetryableError``, ``ChainIdMismatch``) does not: while the other request still runs, the
failed one is replaced by a hedge to the next endpoint, if any. When every racer has failed, the
last such error is raised (a wrong chain id only when nothing else went wrong), for the caller
to fail over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from core.errors import ChainIdMismatch, RetryableError

# Methods that only read: sending one to two endpoints at once is harmless, so they are hedged.
IDEMPOTENT_READS = frozenset(
    {
        "eth_blockNumber", "eth_call", "eth_chainId", "eth_estimateGas", "eth_feeHistory",
        "eth_gasPrice", "eth_getBalance", "eth_getBlockByHash", "eth_getBlockByNumber",
        "eth_getCode", "eth_getLogs", "eth_getStorageAt", "eth_getTransactionByHash",
        "eth_getTransactionCount", "eth_getTransactionReceipt", "eth_maxPriorityFeePerGas",
        "eth_syncing", "net_version", "web3_clientVersion",
    }
)  # fmt: skip

_T = TypeVar("_T")
Request = Coroutine[Any, Any, _T]


async def first_answer(
    first: Request[_T],
    *,
    delay_s: float,
    start_hedge: Callable[[], Request[_T] | None],
    on_first_lost: Callable[[], None],
) -> _T:
    """Await ``first``; if it has not finished within ``delay_s``, also run ``start_hedge()``
    (``None``: nothing to hedge with) and return (or raise) the first answer.

    A hedge that fails while ``first`` still runs is replaced by another ``start_hedge()``.
    ``on_first_lost`` is called when a hedge answered while ``first`` was still running.
    Whatever still runs when this returns, raises or is cancelled is cancelled.
    """
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(first)]
    try:
        done, _ = await asyncio.wait(tasks, timeout=delay_s)
        if done:
            return tasks[0].result()
        return await _settle(tasks, start_hedge, on_first_lost)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
                task.add_done_callback(_retrieve)


async def _settle(
    tasks: list[asyncio.Task[_T]],
    start_hedge: Callable[[], Request[_T] | None],
    on_first_lost: Callable[[], None],
) -> _T:
    loop = asyncio.get_running_loop()
    pending = set(tasks)
    failures: list[BaseException] = []
    hedge = start_hedge()
    while True:
        if hedge is not None:
            tasks.append(loop.create_task(hedge))
            pending.add(tasks[-1])
        if not pending:
            break
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:  # in start order: the first endpoint wins a tie
            if task not in done:
                continue
            exc = task.exception()
            if exc is None or not isinstance(exc, RetryableError | ChainIdMismatch):
                if task is not tasks[0] and not tasks[0].done():
                    on_first_lost()
                return task.result()
            failures.append(exc)
        hedge = start_hedge() if len(pending) == 1 else None  # keep two requests in flight
    others = [exc for exc in failures if not isinstance(exc, ChainIdMismatch)]
    raise (others or failures)[-1]


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A cancelled racer may still end with an error of its own: fetch it so asyncio stays quiet.
    if not task.cancelled():
        task.exception()
