"""The chaos storm: faults injected into the real daemon's world, each hidden behind a change
that moves accounts across the liquidation threshold, each followed by a settled point.

Episodes (shuffled by the seed):
- ``reorg``: a change lands on one chain (the daemon has read it, or not yet), then
  ``anvil_reorg`` replaces the blocks with a different change, or ``anvil_rollback`` drops
  them; depth from 1 up to the blocks since the episode began.
- ``kill``: SIGKILL of the daemon right after a cycle committed transitions (0-15 ms later), at
  a random moment after a change, or a change made while it is down; then a restart.
- ``db_cut`` / ``broker_cut``: the proxy resets every connection and refuses new ones (some
  database outages stall every byte instead) for a random length, with a change during it and,
  for some, a SIGKILL and restart inside the outage.

The settled-point checks live in ``bench/chaos_settle.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass, replace

from bench.chaos_book import Truth, Tx
from bench.chaos_ledger import Episode
from bench.chaos_settle import Settler
from bench.chaos_world import StormWorld

KILL_WINDOW_S = 0.015  # "right after a commit": SIGKILL this long at most after it was seen
COMMIT_POLL_S = 0.001
COMMIT_WAIT_S = 5.0  # a change that flips nobody commits no transition: kill anyway after this
RANDOM_KILL_S = 2.0  # a random-moment kill falls this long at most after the change
DOWN_TIME_S = 2.0  # a killed daemon stays down this long at most
SEEN_SHARE = 0.7  # reorgs whose orphaned change the daemon has read before the reorg
SHALLOW_BLOCKS = 2  # blocks before and after the orphaned change, at most …
DEEP_BLOCKS = 8  # … or, for DEEP_SHARE of the reorgs, this many
DEEP_SHARE = 0.2
ROLLBACK_SHARE = 0.2
STALL_SHARE = 0.25  # database outages that stall bytes instead of resetting connections
MAX_REORG_DEPTH = 60  # the daemon's head ring keeps 64 blocks
HEAD_WAIT_S = 30.0
DAEMON_READ_WAIT_S = 10.0
ACTION_TIMEOUT_S = 180.0  # one episode's fault actions; beyond it the episode is reported hung
CHANGE_KINDS = ("price", "l1", "l2")
CHANGE_WEIGHTS = (0.3, 0.35, 0.35)


@dataclass(frozen=True)
class StormParams:
    """What to inject, and how long to wait."""

    reorgs: int = 100
    kills: int = 50
    db_cuts: int = 20
    broker_cuts: int = 20
    overlap_kills: int = 10  # of ``kills``: made inside database or broker outages
    accounts: int = 36
    seed: int = 8
    cut_min_s: float = 1.0
    cut_max_s: float = 20.0
    settle_timeout_s: float = 90.0
    max_unsettled: int = 3  # consecutive unsettled episodes end the storm


class Storm:
    """Runs the episodes; ``episodes`` holds what each did and saw."""

    def __init__(self, sw: StormWorld, params: StormParams, rng: random.Random) -> None:
        self.sw = sw
        self.p = params
        self.rng = rng
        self.truth = Truth(sw.w.weth, sw.w.debt)
        self.settler = Settler(sw, self.truth, params.settle_timeout_s)
        self.episodes: list[Episode] = []
        self.aborted: str | None = None
        self.stop_code: int | None = None
        self.loads: list[float] = [os.getloadavg()[0]]  # 1-minute load, after every episode

    @property
    def current(self) -> int:
        """Index of the running episode (for the prober)."""
        return len(self.episodes) - 1

    def plan(self) -> list[tuple[str, bool]]:
        """(kind, with a kill inside) per episode, shuffled."""
        p = self.p
        overlap = min(p.overlap_kills, p.kills, p.db_cuts + p.broker_cuts)
        cuts = ["db_cut"] * p.db_cuts + ["broker_cut"] * p.broker_cuts
        with_kill = set(self.rng.sample(range(len(cuts)), k=overlap))
        plan = [("reorg", False)] * p.reorgs + [("kill", False)] * (p.kills - overlap)
        plan += [(kind, i in with_kill) for i, kind in enumerate(cuts)]
        self.rng.shuffle(plan)
        return plan

    async def run(self) -> None:
        """The whole storm: start, every episode, and a clean stop."""
        s = self.sw
        start = self._new("start")
        start.legit.add(self.settler.state)
        await s.daemon.start()
        await self.settler.settle(start, self.p.settle_timeout_s * 2)
        unsettled = 0
        for number, (kind, with_kill) in enumerate(self.plan(), start=1):
            episode = self._new(kind)
            episode.legit.add(self.settler.state)
            began = time.monotonic()
            try:
                async with asyncio.timeout(ACTION_TIMEOUT_S):
                    await self._inject(episode, with_kill)
            except Exception as exc:
                episode.detail.append(f"actions failed: {exc!r}")
            finally:
                await s.database.restore()
                await s.broker.restore()
                await s.daemon.start()
            await self.settler.settle(episode)
            unsettled = 0 if episode.settled else unsettled + 1
            self.loads.append(os.getloadavg()[0])
            print(_progress(number, episode, time.monotonic() - began), flush=True)
            if unsettled >= self.p.max_unsettled:
                self.aborted = f"{unsettled} episodes in a row could not settle"
                break
        if self.aborted is None:
            await self.settler.quiet(self.episodes[-1])
        self.stop_code = await s.daemon.stop()

    def _new(self, kind: str) -> Episode:
        episode = Episode(index=len(self.episodes), kind=kind)
        self.episodes.append(episode)
        return episode

    async def _inject(self, episode: Episode, with_kill: bool) -> None:
        if episode.kind == "reorg":
            await self._reorg(episode)
        elif episode.kind == "kill":
            await self._kill(episode)
        else:
            await self._outage(episode, with_kill)

    # -- changes -----------------------------------------------------------------------------

    def _txs(self, chain: str, episode: Episode) -> list[Tx]:
        state = self.settler.state
        count = self.rng.randint(1, max(1, len(self.sw.accounts) // 6))
        if chain == "l1":
            txs = self.sw.planner.transfers(state, count)
            episode.detail.append(f"{len(txs)} WETH transfers")
        else:
            txs = self.sw.planner.debt_changes(state, count)
            episode.detail.append(f"{len(txs)} debt changes")
        return txs

    async def _change(self, episode: Episode) -> None:
        """One random change: an ETH move, WETH transfers on l1 or debt changes on l2."""
        kind = self.rng.choices(CHANGE_KINDS, weights=CHANGE_WEIGHTS)[0]
        state = self.settler.state
        if kind == "price":
            level = self.sw.planner.price_move(state)
            self.sw.w.set_eth(str(level))
            self.settler.state = replace(state, eth=level)
            episode.legit.eth.add(level)
            episode.detail.append(f"ETH {state.eth} -> {level}")
            return
        await self.sw.chains.send(self._txs(kind, episode))
        await self._snapshot(episode)

    async def _snapshot(self, episode: Episode) -> None:
        after = await self.sw.chains.state_at_heads(self.sw.accounts, self.settler.state.eth)
        episode.legit.add(after)
        self.settler.state = after

    # -- faults ------------------------------------------------------------------------------

    async def _reorg(self, episode: Episode) -> None:
        chains = self.sw.chains
        chain = self.rng.choice(("l1", "l2"))
        start_head, _ = await chains.head(chain)
        fork_state = self.settler.state
        spread = DEEP_BLOCKS if self.rng.random() < DEEP_SHARE else SHALLOW_BLOCKS
        before = self.rng.randint(0, spread)  # empty blocks of this episode below the change
        await self._wait_head(chain, start_head + before)
        mined = await chains.send(self._txs(chain, episode)) or start_head
        block = await chains.devs[chain].rpc("eth_getBlockByNumber", [hex(mined), False])
        mined_hash = block["hash"]
        await self._wait_head(chain, mined + self.rng.randint(0, spread))
        seen = self.rng.random() < SEEN_SHARE
        if seen:
            seen = await self.settler.wait_daemon_read(chain, mined, DAEMON_READ_WAIT_S)
        await self._snapshot(episode)  # the state the reorg orphans
        head, _ = await chains.head(chain)
        # Down to the change, and maybe into the episode's own empty blocks below it (never
        # further: what lies below belongs to settled episodes).
        below = min(before, mined - start_head - 1)
        depth = head - mined + 1 + self.rng.randint(0, max(0, below))
        depth = max(1, min(depth, head - start_head, MAX_REORG_DEPTH))
        dev = chains.devs[chain]
        if self.rng.random() < ROLLBACK_SHARE:
            await dev.rpc("anvil_rollback", [depth])
            episode.faults["rollback"] += 1
            what = "rollback"
        else:
            self.settler.state = fork_state  # the replacement is planned on the fork point
            episode.detail.append("replaced by")
            replacement = self._txs(chain, episode)
            blocks = [[tx.request(), self.rng.randint(0, depth - 1)] for tx in replacement]
            await dev.rpc("anvil_reorg", [depth, blocks])
            episode.faults["reorg"] += 1
            what = "reorg"
        await chains.resync_clock(chain)
        orphaned = not await chains.canonical(chain, mined, mined_hash)
        episode.detail.append(
            f"{what} {chain} depth {depth}"
            f"{' (daemon had read it)' if seen else ''}{'' if orphaned else ' (change survived)'}"
        )
        await self._snapshot(episode)

    async def _kill(self, episode: Episode) -> None:
        daemon, store = self.sw.daemon, self.sw.store
        mode = self.rng.choice(("after_commit", "after_commit", "random", "while_down"))
        episode.faults["kill"] += 1
        if mode == "while_down":
            await daemon.kill()
            killed = time.monotonic()
            await self._change(episode)
            episode.detail.append("killed, change while down")
        else:
            before = await store.last_transition()
            await self._change(episode)
            if mode == "after_commit":
                waited = await self._wait_commit(before)
                delay = self.rng.uniform(0.0, KILL_WINDOW_S)
                await asyncio.sleep(delay)
                episode.detail.append(
                    f"killed {delay * 1000:.0f} ms after a commit"
                    if waited
                    else "killed (no commit seen)"
                )
            else:
                delay = self.rng.uniform(0.0, RANDOM_KILL_S)
                await asyncio.sleep(delay)
                episode.detail.append(f"killed {delay:.2f} s after the change")
            await daemon.kill()
            killed = time.monotonic()
        await asyncio.sleep(self.rng.uniform(0.0, DOWN_TIME_S))
        await daemon.start()
        episode.fault_s += time.monotonic() - killed

    async def _outage(self, episode: Episode, with_kill: bool) -> None:
        line = self.sw.database if episode.kind == "db_cut" else self.sw.broker
        length = self.rng.uniform(self.p.cut_min_s, self.p.cut_max_s)
        stall = episode.kind == "db_cut" and self.rng.random() < STALL_SHARE
        began = time.monotonic()
        line.cut(stall=stall)
        episode.faults[f"{line.name}_{'stall' if stall else 'cut'}"] += 1
        episode.detail.append(f"{line.name} {'stalled' if stall else 'cut'} {length:.1f} s")
        await asyncio.sleep(self.rng.uniform(0.0, 0.4 * length))
        await self._change(episode)
        if with_kill:
            left = max(0.0, length - (time.monotonic() - began))
            await asyncio.sleep(self.rng.uniform(0.0, 0.6 * left))
            await self.sw.daemon.kill()
            episode.faults["kill"] += 1
            episode.detail.append("killed inside the outage")
            await asyncio.sleep(self.rng.uniform(0.0, DOWN_TIME_S / 2))
            await self.sw.daemon.start()
        await asyncio.sleep(max(0.0, length - (time.monotonic() - began)))
        await line.restore()
        episode.fault_s += time.monotonic() - began

    # -- waiting -----------------------------------------------------------------------------

    async def _wait_head(self, chain: str, number: int) -> None:
        deadline = time.monotonic() + HEAD_WAIT_S
        while (await self.sw.chains.head(chain))[0] < number:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{chain} head did not reach {number}")
            await asyncio.sleep(0.1)

    async def _wait_commit(self, before: int) -> bool:
        deadline = time.monotonic() + COMMIT_WAIT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if await self.sw.store.last_transition() > before:
                    return True
            await asyncio.sleep(COMMIT_POLL_S)
        return False


def _progress(number: int, episode: Episode, took_s: float) -> str:
    verdict = "settled" if episode.settled else f"UNSETTLED: {episode.last_seen}"
    return (
        f"[{number:3d}] {episode.kind:<10} {'; '.join(episode.detail)} -> {verdict} "
        f"({took_s:.1f} s)"
    )
