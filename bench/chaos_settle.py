"""Settled points: wait until the daemon has caught up with what the storm did, then check
everything it shows and stores against the ground truth.

A point is settled when, all at once:
1. a daemon process runs and each chain's last read block is at or past the head the bench
   saw when the episode's faults ended, and is canonical;
2. ``/v1/prices`` shows ETH ``OK`` at the price the bench set;
3. the stored flags of every account (``account_health``) and the replay of every stored
   transition equal the truth: the exact oracle on the balances the bench reads itself at
   the daemon's blocks;
4. every stored transition is marked published and each of its events reached the bench's
   own subscriber;
5. ``/readyz`` is 200 and ``/v1/accounts/{a}`` shows, for every account, the true flags,
   ``actionable``, a health within the oracle's exact bounds and the true raw balances.

An episode that does not get there within its bound is *unsettled*: the storm reports what
was last seen instead of hanging. Once (1) and (2) held, the episode is *caught up*: what the
store says can be judged even if it never matches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

from bench.chaos_book import AmbiguousTruth, State, Truth
from bench.chaos_ledger import Episode, deliveries
from bench.chaos_world import StormWorld
from core.errors import CrossmarginError
from daemon.mqtt.topics import flag_events
from margin.model import Flag, flag_names

SETTLE_POLL_S = 0.25
QUIET_S = 3.0  # after the last episode: anything stored now was not caused by the storm
REQUEST_TIMEOUT_S = 10.0
API_FAN_OUT = 8  # concurrent /v1/accounts requests
HEALTH_TOLERANCE = 1e-9  # relative, around the oracle's exact bounds
EXAMPLES = 3
OBSERVE_ERRORS = (
    aiohttp.ClientError,
    TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    CrossmarginError,
    KeyError,
    ValueError,
    TypeError,
    AmbiguousTruth,
)


class Settler:
    """Checks settled points; ``state`` is the truth's latest inputs."""

    def __init__(self, sw: StormWorld, truth: Truth, timeout_s: float) -> None:
        self.sw = sw
        self.truth = truth
        self.timeout_s = timeout_s
        self.state = State({}, {}, Decimal(2000))
        self.replay: dict[str, int] = {}
        self.replayed_id = 0
        self.event_keys: set[tuple[str, int]] = set()
        self.delivered: dict[tuple[str, int], list[bytes]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def prepare(self, eth: Decimal) -> None:
        """Read the starting balances."""
        self.state = await self.sw.chains.state_at_heads(self.sw.accounts, eth)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def settle(self, episode: Episode, timeout_s: float | None = None) -> None:
        """Wait for a settled point (or give up and record what was last seen)."""
        chains = self.sw.chains
        targets = {name: (await chains.head(name))[0] for name in ("l1", "l2")}
        began = time.monotonic()
        deadline = began + (timeout_s or self.timeout_s)
        while True:
            try:
                reason = await self.observe(episode, targets)
            except OBSERVE_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if reason is None:
                episode.settled = True
                episode.last_seen = ""
                break
            episode.last_seen = reason
            if time.monotonic() > deadline:
                episode.settled = False
                log = self.sw.daemon.current
                where = "" if log is None else f" [log {log.log_path}]"
                episode.last_seen = f"{reason}{where}"
                break
            await asyncio.sleep(SETTLE_POLL_S)
        episode.settle_s = time.monotonic() - began
        episode.last_id = self.replayed_id  # the transitions checked belong to this episode

    async def quiet(self, episode: Episode) -> None:
        """After the last episode: wait, note anything stored meanwhile, settle again."""
        before = self.replayed_id
        await asyncio.sleep(QUIET_S)
        late = await self.sw.store.transitions(before)
        if late:
            episode.detail.append(f"{len(late)} transitions stored after the last settle")
        await self.settle(episode)

    async def wait_daemon_read(self, chain: str, number: int, timeout_s: float) -> bool:
        """Wait until the daemon has read ``chain`` at ``number`` or later."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                status, body = await self._get("/v1/chains")
            except OBSERVE_ERRORS:
                status, body = 0, {}
            if status == 200:
                read = {c["name"]: c["last_read_block"] for c in body["chains"]}
                if (read.get(chain) or 0) >= number:
                    return True
            await asyncio.sleep(0.1)
        return False

    async def observe(self, episode: Episode, targets: Mapping[str, int]) -> str | None:
        """``None`` when the point is settled, else what is not there yet."""
        if not self.sw.daemon.alive:
            return "daemon not running"
        status, body = await self._get("/v1/chains")
        if status != 200:
            return f"/v1/chains answered {status}"
        read = {c["name"]: c for c in body["chains"]}
        hashes: dict[str, str] = {}
        for name, target in targets.items():
            number, block_hash = read[name]["last_read_block"], read[name]["last_read_hash"]
            if number is None or number < target:
                return f"{name} read up to {number}, the head was {target}"
            if not await self.sw.chains.canonical(name, number, block_hash):
                return f"{name} last read block {number} is not canonical"
            hashes[name] = block_hash
        status, body = await self._get("/v1/prices")
        eth = next((p for p in body.get("prices", []) if p["asset"] == "ETH"), None)
        if eth is None:
            return f"/v1/prices {status} without ETH"
        if eth["status"] != "OK" or Decimal(eth["price"]) != self.state.eth:
            return f"ETH {eth['status']} at {eth['price']}, set to {self.state.eth}"
        accounts = self.sw.accounts
        state = State(
            await self.sw.chains.balances("l1", accounts, hashes["l1"]),
            await self.sw.chains.balances("l2", accounts, hashes["l2"]),
            self.state.eth,
        )
        episode.legit.add(state)
        self.state = state
        expected = {a: int(f) for a, f in self.truth.all_flags(state).items()}
        episode.expected = expected
        episode.caught_up = True
        return await self._check_store(expected) or await self._check_api(episode, expected)

    async def _check_store(self, expected: Mapping[str, int]) -> str | None:
        store = self.sw.store
        stored = await store.account_flags()
        wrong = _differences(expected, stored)
        if wrong:
            return f"stored flags differ from the truth for {wrong}"
        for row in await store.transitions(self.replayed_id):
            self.replay[row["account"].lower()] = int(row["to_flags"])
            self.replayed_id = int(row["id"])
            kinds = flag_events(int(row["from_flags"]), int(row["to_flags"]))
            self.event_keys.update((kind, self.replayed_id) for kind in kinds)
        wrong = _differences(expected, self.replay)
        if wrong:
            return f"stored transitions end elsewhere than the truth for {wrong}"
        unpublished = await store.scalar(
            "SELECT count(*) FROM health_transitions WHERE published_at IS NULL"
        )
        self.delivered = deliveries(self.sw.events.messages, self.sw.w.prefix)
        missing = self.event_keys - self.delivered.keys()
        if unpublished or missing:
            return f"{unpublished} transitions unpublished, {len(missing)} events not received"
        return None

    async def _check_api(self, episode: Episode, expected: Mapping[str, int]) -> str | None:
        status, body = await self._get("/readyz")
        if status != 200:
            return f"/readyz {status}: {body.get('reasons')}"
        accounts = self.sw.accounts
        answers: list[tuple[int, Any]] = []
        for start in range(0, len(accounts), API_FAN_OUT):
            chunk = accounts[start : start + API_FAN_OUT]
            answers += await asyncio.gather(*(self._get(f"/v1/accounts/{a}") for a in chunk))
        canonical: dict[tuple[str, int, str], bool] = {}
        episode.orphan_refs = 0
        for account, (status, body) in zip(accounts, answers, strict=True):
            if status != 200 or body.get("state") is None:
                return f"/v1/accounts/{account} answered {status} without a state"
            problem = self._account_problem(account, body, expected[account])
            if problem is not None:
                return problem
            for line in body["balances"]:
                key = (line["chain"], int(line["block"]), str(line["block_hash"]))
                if key not in canonical:
                    canonical[key] = await self.sw.chains.canonical(*key)
                episode.orphan_refs += not canonical[key]
        return None

    def _account_problem(self, account: str, body: Any, flags: int) -> str | None:
        shown = body["state"]
        names = flag_names(Flag(flags))
        if shown["flags"] != names or shown["actionable"] != bool(flags & Flag.LIQUIDATABLE):
            return (
                f"/v1/accounts/{account}: flags {shown['flags']} actionable "
                f"{shown['actionable']}, true {names}"
            )
        weth, debt = self.state.weth[account], self.state.debt[account]
        low, high = self.truth.health_bounds(weth, debt, self.state.eth)
        health = shown["health"]
        if health is None:
            if debt != 0:
                return f"/v1/accounts/{account}: health null with debt {debt}"
        elif not low * (1 - HEALTH_TOLERANCE) <= health <= high * (1 + HEALTH_TOLERANCE):
            return f"/v1/accounts/{account}: health {health}, true [{low}, {high}]"
        for line in body["balances"]:
            want = weth if line["chain"] == "l1" else debt
            if line["raw"] is None or int(line["raw"]) != want or line["read_failed"]:
                return f"/v1/accounts/{account}: {line['chain']} balance {line}, true {want}"
        return None

    async def _get(self, path: str) -> tuple[int, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            )
        async with self._session.get(self.sw.api + path) as response:
            return response.status, await response.json(content_type=None)


def _differences(expected: Mapping[str, int], stored: Mapping[str, int]) -> str:
    wrong = [a for a, flags in expected.items() if stored.get(a, 0) != flags]
    shown = ", ".join(
        f"{a[:10]} {'|'.join(flag_names(Flag(stored.get(a, 0)))) or 'NONE'}"
        f" (true {'|'.join(flag_names(Flag(expected[a]))) or 'NONE'})"
        for a in wrong[:EXAMPLES]
    )
    return f"{len(wrong)} [{shown}]" if wrong else ""
