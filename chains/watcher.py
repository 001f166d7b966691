"""One chain's watcher: follows heads, reads balances at head - confirmations, survives reorgs.

Each cycle targets one block. Transfer logs since the last cycle mark the pairs they touch
dirty (and, with discovery, add new accounts); only dirty and new pairs are re-read, except on
a periodic full sweep that catches balances moving without events (rebasing aTokens). A reorg
that reaches below the blocks we read from drops those readings and re-reads them on the new
canonical chain: nothing read from an orphaned block survives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from chains.blocks import BlockRef, NewBlock, Reorg
from chains.discovery import ZERO_ADDRESS, TransferScanner
from chains.heads import HeadTracker
from chains.holdings import Holdings
from chains.holdings import Reading as Reading  # the watcher's readings, imported from here
from chains.readings import ReadColumns, TokenReads
from chains.reads import BalanceReader, Pair
from core.addresses import lower_address
from core.errors import DecimalsMismatch, RetryableError
from core.requester import Requester

log = logging.getLogger(__name__)

SWEEP_PART_PAIRS = 100_000
"""A sweep is handed over in parts of about this many pairs (``sweep_parts``)."""


class ChainSettings(Protocol):
    """What the watcher needs to know of a chain (``daemon.config.model.ChainConfig`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def ws_url(self) -> str | None: ...
    @property
    def confirmations(self) -> int: ...
    @property
    def poll_interval_s(self) -> float: ...
    @property
    def max_lag_s(self) -> float: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def sweep_interval_s(self) -> float: ...
    @property
    def log_range_blocks(self) -> int: ...
    @property
    def discovery_from_block(self) -> int: ...
    @property
    def multicall_address(self) -> str: ...


class TokenSettings(Protocol):
    """What the watcher needs to know of a token (``daemon.config.model.TokenConfig`` fits)."""

    @property
    def address(self) -> str: ...
    @property
    def decimals(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A watched token as found on chain at start-up."""

    address: str
    decimals: int | None
    problem: str | None = None  # e.g. "no contract code": its reads will all fail


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """What one cycle changed. ``dropped_above`` is set after a reorg: readings from blocks
    above it were orphaned and must be discarded by every consumer that stored them."""

    chain: str
    block: BlockRef
    readings: Mapping[Pair, Reading]
    """The readings that are new or changed (the watcher's: ``ReadColumns``)."""
    dropped_above: int | None = None
    scope: frozenset[str] | None = None
    """The accounts ``dropped_above`` applies to (cluster mode: this replica's accounts; the
    other shards' stored balances belong to their owners). ``None``: every account."""
    partial: bool = False
    """One part of a sweep (``ChainWatcher.sweep_parts``): more parts at the same block
    follow, each with other pairs; the chain is read once the last part (not partial) is in."""


@dataclass(slots=True)
class WatcherStats:
    """What the watcher counts for its status: balances read, and the last cycle's fault."""

    reads: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """A chain's watching state as operators and the engine see it.

    ``last_read_age_s`` is the age of the last block read (by its timestamp); ``stale`` is set
    when that exceeds ``max_lag_s`` or the head has not been fetched for that long.
    """

    chain: str
    chain_id: int
    head_number: int | None
    head_hash: str | None
    last_read_number: int | None
    last_read_hash: str | None
    last_read_age_s: float | None
    since_head_s: float | None
    stale: bool
    reorgs: int
    accounts: int
    holdings: int
    failed_reads: int
    batch_size: int
    last_error: str | None
    endpoints: tuple[object, ...]


class ChainWatcher:
    """Watches every (account, token) pair of one chain."""

    def __init__(
        self,
        *,
        chain: ChainSettings,
        tokens: Sequence[TokenSettings],
        accounts: Iterable[str],
        discover: bool,
        requester: Requester,
        override_code: bytes | None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.chain = chain
        self._owns = owns
        """Cluster mode: the accounts of this replica's shards only (listed or discovered)."""
        self._rpc = requester
        self._token_settings = list(tokens)
        self.tokens: dict[str, TokenInfo] = {}
        lowered = (lower_address(a) for a in accounts)
        self.accounts: set[str] = {a for a in lowered if self.owns(a)}
        self.discover = discover
        self.reader = BalanceReader(
            chain=chain.name,
            requester=requester,
            multicall_address=chain.multicall_address,
            override_code=override_code,
            batch_size=chain.batch_size,
        )
        self.heads = HeadTracker(
            chain=chain.name,
            requester=requester,
            poll_interval_s=chain.poll_interval_s,
            ring_depth=chain.confirmations + 64,
            ws_url=chain.ws_url,
        )
        self.scanner = TransferScanner(
            chain=chain.name,
            requester=requester,
            tokens=[t.address for t in tokens],
            from_block=chain.discovery_from_block,
            max_range=chain.log_range_blocks,
        )
        self.holdings = Holdings()
        self.last_read: BlockRef | None = None
        self.stats = WatcherStats()
        self._last_sweep = float("-inf")
        self._unread: set[Pair] = set()  # pairs whose reading was dropped (reorg) and not re-read
        # per token: accounts whose latest read failed (kept as they change: status is asked
        # several times a second; the pairs with a reading are counted by ``holdings``)
        self._failing: dict[str, set[str]] = {}
        self._sorted: list[str] = []  # ``accounts`` sorted (``sorted_accounts``)

    def owns(self, account: str) -> bool:
        """True when ``account`` (lower-case) is this watcher's to read."""
        return self._owns is None or self._owns(account)

    # -- set-up -----------------------------------------------------------------------------

    async def setup(self) -> BlockRef:
        """Check every token on chain (code, decimals vs config); return the current head."""
        head = await self.heads.latest()
        addresses = [t.address.lower() for t in self._token_settings]
        decimals = await self.reader.decimals(addresses, head)
        for settings, address, on_chain in zip(
            self._token_settings, addresses, decimals, strict=True
        ):
            code = await self._rpc.request("eth_getCode", [address, {"blockHash": head.hash}])
            problem = None
            if code in ("0x", "0x0", None):
                problem = "no contract code at this address"
            elif on_chain is None:
                problem = "decimals() failed"
            configured = settings.decimals
            if configured is not None and on_chain is not None and configured != on_chain:
                raise DecimalsMismatch(self.chain.name, address, configured, on_chain)
            self.tokens[address] = TokenInfo(
                address=address,
                decimals=configured if configured is not None else on_chain,
                problem=problem,
            )
            if problem is not None:
                log.warning("token_problem chain=%s token=%s %s", self.chain.name, address, problem)
        return head

    # -- reading ------------------------------------------------------------------------------

    def pairs(self) -> list[Pair]:
        """Every watched (account, token) pair, tokens in config order, accounts sorted."""
        accounts = self.sorted_accounts()
        return [(account, token) for token in self.tokens for account in accounts]

    def sorted_accounts(self) -> list[str]:
        """``accounts`` sorted, kept between sweeps (sorting a million addresses took ~5 % of
        a million-account start-up). Accounts are only ever added, so a count that moved is a
        change; the list is shared: callers must not modify it."""
        if len(self._sorted) != len(self.accounts):
            self._sorted = sorted(self.accounts)
        return self._sorted

    async def target(self, head: BlockRef) -> BlockRef:
        """The block reads are pinned to: ``head - confirmations`` (from the ring if known)."""
        number = max(0, head.number - self.chain.confirmations)
        known = self.heads.ring.at(number)
        if known is not None:
            return known
        block = await self._rpc.request("eth_getBlockByNumber", [hex(number), False])
        return BlockRef.from_rpc(block)

    async def sweep(self, block: BlockRef) -> BalanceUpdate:
        """Read every pair at ``block`` in one update (the snapshot command)."""
        accounts = await self._begin_sweep(block)
        return await self._read_columns(dict.fromkeys(self.tokens, accounts), block)

    async def sweep_parts(self, block: BlockRef) -> AsyncIterator[BalanceUpdate]:
        """Read every pair at ``block``, handing the readings over in parts of about
        ``SWEEP_PART_PAIRS`` pairs (every token of a run of accounts), each as soon as it is
        read: all but the last are ``partial``. A first sweep of a million accounts took 38 s
        to read and its 2,000,000 balances were then stored in one write after it; in parts,
        the store writes part k while part k + 1 is read. Sets ``last_read`` before the last
        part."""
        accounts = await self._begin_sweep(block)
        step = max(1, SWEEP_PART_PAIRS // max(1, len(self.tokens)))
        for start in range(0, max(1, len(accounts)), step):
            part = accounts[start : start + step]
            update = await self._read_columns(dict.fromkeys(self.tokens, part), block)
            if start + step < len(accounts):
                yield replace(update, partial=True)
            else:
                self.last_read = block
                yield update
            del update

    def sweep_due(self) -> bool:
        """True when the next cycle reads every pair (``sweep_interval_s`` since the last)."""
        return time.monotonic() - self._last_sweep >= self.chain.sweep_interval_s

    async def _begin_sweep(self, block: BlockRef) -> list[str]:
        """Discover up to ``block``, mark the sweep begun; the accounts to read, sorted."""
        if self.discover:
            await self._discover(block)
        self.scanner.cursor = max(self.scanner.cursor, block.number)
        self._last_sweep = time.monotonic()
        self._unread.clear()
        return self.sorted_accounts()

    async def cycle(self, block: BlockRef, dropped_above: int | None = None) -> BalanceUpdate:
        """Bring every pair up to date at ``block``: dirty and new pairs, or all on a sweep."""
        if self.sweep_due():
            update = await self.sweep(block)
        else:
            dirty = await self._discover(block) | self._unread
            self._unread = set()
            by_token: dict[str, list[str]] = {}
            for account, token in sorted(dirty):
                by_token.setdefault(token, []).append(account)
            update = await self._read_columns(by_token, block)
        self.last_read = block
        if dropped_above is not None:
            update = BalanceUpdate(
                chain=update.chain,
                block=update.block,
                readings=update.readings,
                dropped_above=dropped_above,
                scope=None if self._owns is None else frozenset(self.accounts),
            )
        return update

    async def _discover(self, block: BlockRef) -> set[Pair]:
        """Scan Transfer logs up to ``block``; return watched pairs they touched."""
        dirty: set[Pair] = set()
        for seen in await self.scanner.scan_to(block.number):
            for account in (seen.sender, seen.recipient):
                if account == ZERO_ADDRESS:
                    continue
                if self.discover and account not in self.accounts and self.owns(account):
                    self.accounts.add(account)
                    dirty.update((account, token) for token in self.tokens)
                if account in self.accounts and seen.token in self.tokens:
                    dirty.add((account, seen.token))
        return dirty

    async def _read_columns(
        self, accounts: Mapping[str, Sequence[str]], block: BlockRef
    ) -> BalanceUpdate:
        """Read ``accounts`` of each token at ``block``; the update carries the readings that
        are new or changed, as columns (``ReadColumns``: a first sweep is every pair, and a
        ``Reading`` per pair was 2,000,000 objects at a million accounts)."""
        pairs = [(account, token) for token, listed in accounts.items() for account in listed]
        values = await self.reader.balances(pairs, block)
        del pairs
        changed: dict[str, TokenReads] = {}
        start = 0
        for token, listed in accounts.items():
            raws = values[start : start + len(listed)]
            start += len(listed)
            column = changed[token] = TokenReads()
            self.holdings.record_token(token, listed, raws, block, column)
            self._track_failures(token, column)
        self.stats.reads += start
        readings = ReadColumns(block.number, block.hash, changed)
        return BalanceUpdate(chain=self.chain.name, block=block, readings=readings)

    def _track_failures(self, token: str, changed: TokenReads) -> None:
        """Keep ``_failing`` (accounts whose latest read of ``token`` failed) up to date with
        the readings that changed (an unchanged failure is in it already)."""
        failed = self._failing.get(token)
        if not changed.failed:
            if failed:
                failed.difference_update(changed.accounts)
            return
        reads = zip(changed.accounts, changed.raws, strict=True)
        now_failing = [account for account, raw in reads if raw is None]
        if failed:
            failed.difference_update(changed.accounts)
            failed.update(now_failing)
        else:
            self._failing[token] = set(now_failing)

    def roll_back(self, reorg: Reorg) -> int:
        """Drop readings from blocks the reorg orphaned; return the last surviving block."""
        floor = (
            reorg.ancestor.number
            if reorg.ancestor is not None
            else max(0, reorg.head.number - self.heads.ring.depth)
        )
        orphaned = self.holdings.read_above(floor)
        for account, token in orphaned:
            self.holdings.pop((account, token))
            failed = self._failing.get(token)
            if failed:
                failed.discard(account)
        self._unread.update(orphaned)
        self.scanner.rewind(floor)
        if reorg.ancestor is None:
            self._last_sweep = float("-inf")  # deeper than we can reason about: read it all
        if self.last_read is not None and self.last_read.number > floor:
            # What survives was read at or below the ancestor: that is the block the chain is
            # read up to until the orphaned pairs are read again. Not "never read": a reorg
            # is neither a stale chain nor a reason to be unready. (Deeper than the ring:
            # nothing read can be trusted until the full re-read.)
            self.last_read = reorg.ancestor
        log.warning(
            "reorg chain=%s depth=%d ancestor=%s dropped_readings=%d",
            self.chain.name,
            reorg.depth,
            floor,
            len(orphaned),
        )
        return floor

    def read_failures(self) -> dict[str, tuple[int, int]]:
        """Tokens whose latest read failed for some account: token → (failed, read), the
        pairs whose latest read failed and the pairs with a current reading."""
        return {
            token: (len(accounts), self.holdings.count(token))
            for token, accounts in self._failing.items()
            if accounts
        }

    # -- the loop -----------------------------------------------------------------------------

    async def updates(self) -> AsyncIterator[BalanceUpdate]:
        """Follow the chain forever, yielding one ``BalanceUpdate`` per cycle."""
        if not self.tokens:
            await self.setup()
        dropped_above: int | None = None
        async for event in self.heads.events():
            match event:
                case Reorg():
                    dropped_above = self.roll_back(event)
                    head = event.head
                case NewBlock(block=head):
                    pass
            try:
                target = await self.target(head)
                if (
                    self.last_read is not None
                    and target.hash == self.last_read.hash
                    and dropped_above is None  # a rollback to the ancestor: re-read there
                ):
                    continue
                if dropped_above is None and self.sweep_due():
                    # In parts (a reorg's update stays whole: its roll-back goes first).
                    async for part in self.sweep_parts(target):
                        yield part
                        del part
                    continue
                update = await self.cycle(target, dropped_above)
            except RetryableError as exc:
                self.stats.last_error = str(exc)
                log.warning("cycle_failed chain=%s error=%s", self.chain.name, exc)
                continue
            dropped_above = None
            yield update
            # Not kept while the chain idles: the first sweep's update holds every pair.
            del update

    def status(self, endpoints: Sequence[object] = ()) -> ChainStatus:
        """Where this chain stands: head, last read block, lag, reorgs, endpoints."""
        tip = self.heads.ring.tip
        lag = self.lag_s()
        since_head = (
            None if self.heads.last_head_at is None else time.monotonic() - self.heads.last_head_at
        )
        stale = lag is None or lag > self.chain.max_lag_s
        if since_head is None or since_head > self.chain.max_lag_s:
            stale = True
        return ChainStatus(
            chain=self.chain.name,
            chain_id=self.chain.chain_id,
            head_number=None if tip is None else tip.number,
            head_hash=None if tip is None else tip.hash,
            last_read_number=None if self.last_read is None else self.last_read.number,
            last_read_hash=None if self.last_read is None else self.last_read.hash,
            last_read_age_s=lag,
            since_head_s=since_head,
            stale=stale,
            reorgs=self.heads.reorg_count,
            accounts=len(self.accounts),
            holdings=len(self.holdings),
            failed_reads=sum(len(accounts) for accounts in self._failing.values()),
            batch_size=self.reader.batch_size,
            last_error=self.stats.last_error or self.heads.last_error,
            endpoints=tuple(endpoints),
        )

    def lag_s(self, now: float | None = None) -> float | None:
        """Seconds since the timestamp of the last block read (``None`` before any read)."""
        if self.last_read is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.last_read.timestamp)
