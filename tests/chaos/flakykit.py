"""Change-to-visible under a flaky first RPC URL: a real ``ChainWatcher`` + ``RpcPool`` on Anvil.

The pool gets two URLs, as an operator would configure them: a ``FaultProxy`` in front of the
node first (in ``FaultMode.RANDOM``: a share of its requests reset, answered 500, 429 with
``Retry-After``, garbage, or held ``hang_s`` seconds), the node itself second. Everything else
is the daemon's default (``poll_interval_s``, ``request_timeout_s``, the pool's breaker).

One mint per change, each to a fresh account, ``interval_s`` apart, sent straight to the node.
A change is *visible* when the watcher yields a reading of its account with the minted amount;
its latency runs from the moment the node accepted the transaction (instant mining: the block
exists then) to that reading. Used by ``tests/chaos/test_flaky_rpc.py`` and
``bench/flaky_rpc.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chains.reads import Pair
from chains.rpc import RpcPool
from chains.rpc_endpoint import EndpointStatus
from daemon.config.load import parse_config
from daemon.wiring import build_watcher
from devnet import DevChain
from devnet.driver import encode_call
from tests.faultproxy import FaultMode, FaultProxy, RandomFault

FAKE_KEY_PATH = "/v2/flakyKEY0123456789abcdef"  # the proxy accepts any path; keys look like this
MINT_UNIT = 10**15  # change i mints (i + 1) units: every expected balance is distinct
SETTLE_S = 0.05  # poll period of the wait for the last changes


@dataclass(frozen=True, slots=True)
class Faults:
    """The first URL's misbehaviour: ``rate`` of its requests fail, drawn from ``seed``."""

    rate: float = 0.3
    seed: int = 8
    hang_s: float = 5.0
    retry_after: str = "1"


@dataclass(slots=True)
class Visibility:
    """What one run saw: latency of every visible change, the missed ones, the faults."""

    latencies_s: list[float]
    missed: list[int]  # indexes of the changes never seen within ``bound_s``
    faults: Counter[RandomFault] = field(default_factory=Counter)
    proxy_requests: int = 0
    endpoints: list[EndpointStatus] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile (``q`` in (0, 100]) of the latencies; NaN when none."""
        if not self.latencies_s:
            return math.nan
        ordered = sorted(self.latencies_s)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]

    def summary(self) -> str:
        """One line for a report or an assertion message."""
        late = max(self.latencies_s, default=math.nan)
        faults = ", ".join(f"{k.value}={v}" for k, v in sorted(self.faults.items())) or "none"
        states = ", ".join(
            f"{e.state.value}/requests={e.requests}/errors={e.errors}" for e in self.endpoints
        )
        return (
            f"changes={len(self.latencies_s) + len(self.missed)} missed={len(self.missed)} "
            f"p50={self.percentile(50):.2f}s p99={self.percentile(99):.2f}s max={late:.2f}s "
            f"proxy_requests={self.proxy_requests} faults[{faults}] endpoints[{states}]"
        )


def accounts_for(count: int, salt: str) -> list[str]:
    """Fresh holder addresses, distinct per ``salt``."""
    return [
        "0x" + hashlib.sha256(f"flaky-rpc-{salt}-{i}".encode()).hexdigest()[:40]
        for i in range(count)
    ]


async def measure_visibility(
    dev: DevChain,
    *,
    changes: int,
    interval_s: float,
    bound_s: float,
    faults: Faults | None,
    salt: str = "run",
) -> Visibility:
    """Make ``changes`` balance changes and time each until the watcher shows it.

    ``faults=None`` runs the same pool with a healthy proxy (the floor). Waits at most
    ``bound_s`` after the last change; changes unseen by then are ``missed``.
    """
    token = (await dev.deploy("MintableERC20", "FLK", "FLK", 18)).lower()
    accounts = accounts_for(changes, salt)
    expected: dict[Pair, int] = {
        (account, token): (i + 1) * MINT_UNIT for i, account in enumerate(accounts)
    }
    seen: dict[Pair, float] = {}
    async with FaultProxy(dev.url) as proxy:
        if faults is not None:
            await proxy.set_mode(
                FaultMode.RANDOM,
                fault_rate=faults.rate,
                seed=faults.seed,
                hang_s=faults.hang_s,
                retry_after=faults.retry_after,
            )
        config = parse_config(
            {
                "chains": [
                    {
                        "name": "flaky",
                        "chain_id": dev.chain_id,
                        "rpc_urls": [proxy.url + FAKE_KEY_PATH, dev.url],
                    }
                ],
                "tokens": [
                    {
                        "chain": "flaky",
                        "address": token,
                        "asset": "ETH",
                        "role": "collateral",
                        "weight": 0.8,
                    }
                ],
                "accounts": accounts,
            }
        )
        chain = config.chains[0]
        async with RpcPool(
            chain=chain.name,
            chain_id=chain.chain_id,
            urls=chain.rpc_urls,
            request_timeout_s=chain.request_timeout_s,
        ) as pool:
            watcher = build_watcher(config, chain, pool)
            await watcher.setup()

            async def follow() -> None:
                async for update in watcher.updates():
                    now = time.monotonic()
                    for pair, reading in update.readings.items():
                        if pair not in seen and reading.raw == expected.get(pair):
                            seen[pair] = now

            follower = asyncio.create_task(follow(), name="flaky-rpc-watcher")
            try:
                mined = await _make_changes(dev, token, accounts, interval_s)
                deadline = max(mined) + bound_s
                while len(seen) < changes and time.monotonic() < deadline:
                    if follower.done():
                        follower.result()  # the watcher died: raise its error
                    await asyncio.sleep(SETTLE_S)
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            endpoints = pool.status()
        pairs = list(expected)
        return Visibility(
            latencies_s=[
                max(0.0, seen[pair] - mined[i]) for i, pair in enumerate(pairs) if pair in seen
            ],
            missed=[i for i, pair in enumerate(pairs) if pair not in seen],
            faults=Counter(proxy.faults),
            proxy_requests=proxy.requests,
            endpoints=endpoints,
        )


async def _make_changes(
    dev: DevChain, token: str, accounts: list[str], interval_s: float
) -> list[float]:
    """Mint to each account in turn; return when each mint's block existed (monotonic s)."""
    mined: list[float] = []
    sender = dev.accounts[0]
    for i, account in enumerate(accounts):
        data = encode_call("MintableERC20", "mint", account, (i + 1) * MINT_UNIT)
        tx: dict[str, Any] = {"from": sender, "to": token, "data": "0x" + data.hex()}
        tx_hash = await dev.rpc("eth_sendTransaction", [tx])
        mined.append(time.monotonic())  # instant mining: the block is there once accepted
        await dev.wait_receipt(tx_hash)
        await asyncio.sleep(interval_s)
    return mined
