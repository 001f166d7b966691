"""The margin engine's inputs, kept as columns so ``margin.kernel`` can evaluate any slice.

``MarginBook`` registers tokens, chains and assets, holds every (account, token) holding and
every (account, asset) position in linked rows (``margin.rows``), the prices and chain
statuses as market vectors (``margin.market``), and marks the accounts an input touches dirty.
``margin.engine.MarginEngine`` adds the evaluation. Accounts are dense indices ``0..n-1`` in
order of first appearance; ``accounts[i]`` is the id of index ``i``. Pure and synchronous.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from core.domain import Role
from margin.health import read_flags
from margin.kernel import FLAG_DTYPE, MarketVectors
from margin.market import build_market
from margin.model import (
    UINT256_MAX,
    ChainInput,
    EngineParams,
    Flag,
    Holding,
    MarginInputError,
    MarginModel,
    Position,
    PriceInput,
    Tier,
    TokenRisk,
)
from margin.rows import AccountTable, BucketTable, HoldingTable, PositionTable, walk
from margin.tiers import IndexArray, TierTable, compile_tiers
from margin.valuation import normalized_amount, normalized_amounts


def empty_index() -> IndexArray:
    """No account indices."""
    return np.zeros(0, dtype=np.intp)


class MarginBook:
    """The engine's inputs as columns: tokens, chains, prices, holdings, positions, and which
    accounts changed since they were last evaluated (``MarginEngine`` evaluates them)."""

    def __init__(
        self,
        *,
        tokens: Iterable[TokenRisk],
        chains: Iterable[ChainInput],
        params: EngineParams | None = None,
    ) -> None:
        self.params = params or EngineParams()
        self._chains: dict[str, ChainInput] = {}
        self._chain_ids: dict[str, int] = {}
        for chain in chains:
            if chain.name in self._chains:
                raise MarginInputError(f"chain {chain.name} given twice")
            self._chain_ids[chain.name] = len(self._chain_ids)
            self._chains[chain.name] = chain
        self._assets: list[str] = []
        self._asset_ids: dict[str, int] = {}
        self._prices: dict[str, PriceInput] = {}
        self._tokens: dict[tuple[str, str], TokenRisk] = {}
        groups: dict[tuple[str, tuple[Tier, ...]], int] = {}
        token_group: list[int] = []
        for risk in tokens:
            if risk.key in self._tokens:
                raise MarginInputError(f"token {risk.chain}/{risk.token} given twice")
            self._chain_id(risk.chain)
            self._asset_id(risk.asset)
            sliced = self.params.model is MarginModel.TIERED and risk.role is Role.COLLATERAL
            key = (risk.asset, risk.tiers)
            token_group.append(groups.setdefault(key, len(groups)) if sliced and risk.tiers else -1)
            self._tokens[risk.key] = risk
        self._token_list = list(self._tokens.values())
        self._token_ids = {key: i for i, key in enumerate(self._tokens)}
        self._token_group = np.array(token_group, dtype=np.intp)
        self._token_rows = [0] * len(self._token_list)
        decimals = self.params.value_decimals
        self._group_tiers = [tiers for _, tiers in groups]
        self._collateral_tiers = TierTable([compile_tiers(t, decimals) for t in self._group_tiers])
        self._mmr_ids: dict[tuple[Tier, ...], int] = {}
        self._mmr_tiers = TierTable([])
        self._accounts = AccountTable(len(groups))
        self._holdings = HoldingTable()
        self._positions = PositionTable()
        self._position_inputs: list[Position] = []
        self._buckets = BucketTable()
        self._token_flags: dict[tuple[str, str], int] = {}
        self._market = self._rebuild_market()

    # ---- accounts --------------------------------------------------------------------

    @property
    def accounts(self) -> Sequence[str]:
        """Account ids by index (read-only)."""
        return self._accounts.ids

    def account_index(self, account: str) -> int:
        """Dense index of a known account."""
        try:
            return self._accounts.index[account]
        except KeyError:
            raise MarginInputError(f"unknown account {account}") from None

    def dirty_accounts(self) -> IndexArray:
        """Accounts whose inputs changed since they were last recomputed."""
        return self._accounts.dirty_indices()

    # ---- inputs --------------------------------------------------------------------------

    def set_balance(self, account: str, chain: str, token: str, raw: int, block: int) -> None:
        """Record ``account``'s raw balance of a token read at ``block`` (a successful read:
        it clears a failure). A token whose decimals are unknown cannot be valued: the read
        counts as failed (``set_read_failed``)."""
        tok = self._token_id(chain, token)
        decimals = self._token_list[tok].decimals
        if decimals is None:
            self.set_read_failed(account, chain, token, block)
            return
        if not 0 <= raw <= UINT256_MAX:
            raise MarginInputError(f"raw balance out of uint256 range: {raw}")
        acct = self._accounts.ensure(account)
        rows = self._holdings
        row = self._row(acct, tok)
        rows.block[row] = block
        changed = bool(rows.flags[row]) or not rows.valued[row]
        rows.flags[row], rows.valued[row] = 0, True
        if rows.raw_int(row) != raw:
            rows.set_raw(row, raw)
            rows.amount[row] = normalized_amount(raw, decimals)
            changed = True
        if changed:
            self._accounts.mark(acct)

    def set_read_failed(
        self,
        account: str,
        chain: str,
        token: str,
        block: int,
        *,
        orphaned_above: int | None = None,
    ) -> None:
        """A read of ``account``'s balance of a token at ``block`` failed: the holding keeps
        its last good value and block and is flagged ``READ_FAILED`` (with ``DEBT_UNKNOWN`` for
        a liability that has no good value). ``orphaned_above``: a reorg orphaned the blocks
        above it, so a last good value read there is forgotten, not kept."""
        tok = self._token_id(chain, token)
        acct = self._accounts.ensure(account)
        rows = self._holdings
        row = self._row(acct, tok)
        changed = False
        if rows.valued[row] and orphaned_above is not None and rows.block[row] > orphaned_above:
            changed = rows.raw_int(row) != 0
            rows.set_raw(row, 0)
            rows.amount[row] = 0.0
            rows.valued[row] = False
        if not rows.valued[row]:
            rows.block[row] = block
        role = self._token_list[tok].role
        flags = FLAG_DTYPE(read_flags(role, failed=True, valued=bool(rows.valued[row])))
        if changed or rows.flags[row] != flags:
            rows.flags[row] = flags
            self._accounts.mark(acct)

    def set_holding(self, holding: Holding, *, orphaned_above: int | None = None) -> None:
        """Record a ``Holding``: its value if it has one, then its failure if it failed (a
        stored holding carries both: its last good value and that the latest read failed)."""
        h = holding
        if h.raw is not None:
            self.set_balance(h.account, h.chain, h.token, h.raw, h.block)
        if h.read_failed:
            self.set_read_failed(
                h.account, h.chain, h.token, h.block, orphaned_above=orphaned_above
            )

    def load_holdings(
        self, holdings: Iterable[Holding], *, orphaned_above: int | None = None
    ) -> None:
        """Record many ``Holding``s: a first sync, a restart's stored balances, a sweep.

        Per token, successful reads of a token that has no rows yet go in vectorized
        (``load_balances``); the rest row by row (``set_holding``). The same holdings in any
        order give the same state (one holding per account and token).
        """
        by_token: dict[tuple[str, str], list[Holding]] = {}
        for holding in holdings:
            by_token.setdefault((holding.chain, holding.token), []).append(holding)
        for (chain, token), group in by_token.items():
            tok = self._token_id(chain, token)
            fresh = self._token_rows[tok] == 0 and self._token_list[tok].decimals is not None
            accounts = [h.account for h in group]
            if not fresh or len(set(accounts)) != len(accounts):
                for holding in group:
                    self.set_holding(holding, orphaned_above=orphaned_above)
                continue
            read = [h for h in group if h.raw is not None and not h.read_failed]
            if read:
                self.load_balances(
                    chain,
                    token,
                    [h.account for h in read],
                    [h.raw for h in read if h.raw is not None],
                    [h.block for h in read],
                )
            for holding in group:
                if holding.raw is None or holding.read_failed:
                    self.set_holding(holding, orphaned_above=orphaned_above)

    def read_failures(self) -> int:
        """How many holdings are flagged ``READ_FAILED`` now."""
        return int(np.count_nonzero(self._holdings.flags[: self._holdings.n]))

    def load_balances(
        self,
        chain: str,
        token: str,
        accounts: Sequence[str],
        raws: Sequence[int] | npt.NDArray[np.uint64],
        block: int | Sequence[int],
    ) -> None:
        """Record many accounts' successful reads of one token at once, at one ``block`` or
        one block each.

        Vectorized for the accounts without a row of the token yet (all of them while the
        token has none; a first sweep's later parts, ``chains.watcher.ChainWatcher.
        sweep_parts``), row by row for those that have one.
        """
        tok = self._token_id(chain, token)
        if len(raws) != len(accounts):
            raise MarginInputError("load_balances: accounts and raws differ in length")
        decimals = self._token_list[tok].decimals
        blocks = [block] * len(accounts) if isinstance(block, int) else list(block)
        if len(blocks) != len(accounts):
            raise MarginInputError("load_balances: accounts and blocks differ in length")
        # Refused before anything is registered or recorded: a refused call changes nothing.
        if len(set(accounts)) != len(accounts):
            raise MarginInputError("load_balances: an account appears twice")
        raws = _checked_raws(raws)
        if decimals is None:  # every read counts as failed (``set_balance``)
            for account, raw, at in zip(accounts, raws, blocks, strict=True):
                self.set_balance(account, chain, token, int(raw), at)
            return
        accts = self._accounts.ensure_many(accounts)
        if self._token_rows[tok]:
            rows = self._holdings
            holders = rows.key[: rows.n][rows.token[: rows.n] == tok] // 2
            held = np.isin(accts, holders)
            if held.any():  # those hold a row of the token already: row by row
                for i in np.flatnonzero(held).tolist():
                    self.set_balance(accounts[i], chain, token, int(raws[i]), blocks[i])
                fresh = np.flatnonzero(~held)
                kept = fresh.tolist()
                accts = accts[fresh]
                raws = raws[fresh] if isinstance(raws, np.ndarray) else [raws[i] for i in kept]
                blocks = [blocks[i] for i in kept]
                if not len(accts):
                    return
        rows = self._holdings
        if isinstance(raws, np.ndarray):  # uint64 (``_checked_raws``)
            amounts = normalized_amounts(raws, decimals)
            new = self._append_rows(accts, tok)
            rows.raw[new, 0] = raws
        else:
            amounts = np.array([normalized_amount(r, decimals) for r in raws], dtype=np.float64)
            new = self._append_rows(accts, tok)
            for row, raw in zip(new.tolist(), raws, strict=True):
                rows.set_raw(row, raw)
        rows.amount[new] = amounts
        rows.block[new] = block if isinstance(block, int) else blocks
        rows.valued[new] = True
        self._accounts.mark_many(accts)

    def add_tokens(self, tokens: Iterable[TokenRisk]) -> int:
        """Tokens learned after start (a venue's reserves, an e-mode weight): appended, how
        many were new. A token already known must be the same; added tokens are flat-weighted
        (a tier schedule would change every account's bucket layout)."""
        added = 0
        for risk in tokens:
            known = self._tokens.get(risk.key)
            if known is not None:
                if known != risk:
                    raise MarginInputError(f"token {risk.chain}/{risk.token} given twice")
                continue
            if risk.tiers:
                raise MarginInputError(f"token {risk.chain}/{risk.token}: added tokens are flat")
            self._chain_id(risk.chain)
            self._asset_id(risk.asset)
            self._tokens[risk.key] = risk
            self._token_ids[risk.key] = len(self._token_list)
            self._token_list.append(risk)
            self._token_rows.append(0)
            self._token_group = np.append(self._token_group, np.intp(-1))
            added += 1
        if added:
            self._market = self._rebuild_market()
        return added

    def set_token_flags(self, flags: Mapping[tuple[str, str], Flag]) -> IndexArray:
        """Replace the flags single tokens add to their holders (``(chain, token)`` → flags;
        a token left out has none); mark and return the accounts holding a changed token."""
        wanted = {key: int(f) for key, f in flags.items() if f}
        changed = {
            k
            for k in set(wanted) | set(self._token_flags)
            if wanted.get(k) != self._token_flags.get(k)
        }
        if not changed:
            return empty_index()
        self._token_flags = wanted
        self._market = self._rebuild_market()
        ids = [self._token_ids[k] for k in changed if k in self._token_ids]
        rows = self._holdings
        hit = np.flatnonzero(np.isin(rows.token[: rows.n], ids))
        return self._mark_dirty(np.unique(rows.key[hit] >> 1))

    def set_prices(self, prices: Iterable[PriceInput]) -> IndexArray:
        """Update asset prices; mark and return the accounts holding the changed assets."""
        changed: list[str] = []
        assets = len(self._assets)
        for price in prices:
            self._asset_id(price.asset)
            if self._prices.get(price.asset) != price:
                self._prices[price.asset] = price
                changed.append(price.asset)
        if not changed and assets == len(self._assets):
            return empty_index()
        self._market = self._rebuild_market()
        return self._mark_dirty(self.accounts_using(assets=changed))

    def set_chain_status(self, chains: Iterable[ChainInput]) -> IndexArray:
        """Update chain statuses; mark and return the accounts with rows on changed chains.

        Only latency, staleness and the sequencer matter: a new ``last_block`` alone changes
        no result and touches no account.
        """
        changed: list[str] = []
        for chain in chains:
            self._chain_id(chain.name)
            old = self._chains[chain.name]
            self._chains[chain.name] = chain
            if (old.liquidation_latency_s, old.stale, old.sequencer_down) != (
                chain.liquidation_latency_s,
                chain.stale,
                chain.sequencer_down,
            ):
                changed.append(chain.name)
        if not changed:
            return empty_index()
        self._market = self._rebuild_market()
        return self._mark_dirty(self.accounts_using(chains=changed))

    def set_position(self, position: Position) -> None:
        """Create or replace ``position.account``'s position in ``position.asset``."""
        chain = self._chain_id(position.chain)
        assets = len(self._assets)
        asset = self._asset_id(position.asset)
        if assets != len(self._assets):
            self._market = self._rebuild_market()
        schedule = self._mmr_schedule(position.mmr_tiers)
        acct = self._accounts.ensure(position.account)
        table = self._positions
        row = table.index.get((acct, asset))
        if row is None:
            table.reserve(1)
            row = table.n
            table.n += 1
            table.index[(acct, asset)] = row
            table.account[row], table.asset[row] = acct, asset
            table.next[row] = self._accounts.position_head[acct]
            self._accounts.position_head[acct] = row
            self._position_inputs.append(position)
        elif self._position_inputs[row] == position:
            return
        self._position_inputs[row] = position
        table.chain[row], table.schedule[row] = chain, schedule
        table.size[row], table.entry[row] = position.size, position.entry_price
        self._accounts.mark(acct)

    def accounts_using(
        self, *, assets: Iterable[str] = (), chains: Iterable[str] = ()
    ) -> IndexArray:
        """Accounts with a holding or position in any of ``assets`` or on any of ``chains``
        (zero balances included): those a price or chain-status change touches."""
        asset_ids = {self._asset_ids[a] for a in assets if a in self._asset_ids}
        chain_ids = {self._chain_ids[c] for c in chains if c in self._chain_ids}
        touched = np.zeros(len(self._accounts), dtype=np.bool_)
        token_hit = np.array(
            [
                self._asset_ids[t.asset] in asset_ids or self._chain_ids[t.chain] in chain_ids
                for t in self._token_list
            ],
            dtype=np.bool_,
        )
        rows = self._holdings
        if token_hit.any():
            hit = np.flatnonzero(token_hit[rows.token[: rows.n]])
            touched[rows.key[hit] >> 1] = True
        table = self._positions
        if table.n:
            hit_p = np.isin(table.asset[: table.n], list(asset_ids)) | np.isin(
                table.chain[: table.n], list(chain_ids)
            )
            touched[table.account[: table.n][hit_p]] = True
        return np.flatnonzero(touched)

    # ---- internals -----------------------------------------------------------------------

    def _rebuild_market(self) -> MarketVectors:
        return build_market(
            params=self.params,
            assets=self._assets,
            prices=self._prices,
            chains=list(self._chains.values()),
            tokens=self._token_list,
            token_group=self._token_group,
            token_flags=self._token_flags,
        )

    def _mark_dirty(self, accts: IndexArray) -> IndexArray:
        self._accounts.mark_many(accts)
        return accts

    def _chain_id(self, chain: str) -> int:
        found = self._chain_ids.get(chain)
        if found is None:
            raise MarginInputError(f"unknown chain {chain}")
        return found

    def _asset_id(self, asset: str) -> int:
        found = self._asset_ids.get(asset)
        if found is None:
            found = self._asset_ids[asset] = len(self._assets)
            self._assets.append(asset)
        return found

    def _token_id(self, chain: str, token: str) -> int:
        found = self._token_ids.get((chain, token))
        if found is None:
            raise MarginInputError(f"unknown token {chain}/{token}")
        return found

    def _mmr_schedule(self, tiers: tuple[Tier, ...]) -> int:
        found = self._mmr_ids.get(tiers)
        if found is None:
            found = self._mmr_ids[tiers] = len(self._mmr_ids)
            decimals = self.params.value_decimals
            self._mmr_tiers = TierTable([compile_tiers(t, decimals) for t in self._mmr_ids])
        return found

    def _row(self, acct: int, tok: int) -> int:
        """The row of (account, token), appended (no value, no flags) when new."""
        rows = self._holdings
        found = [r for r in walk(int(self._accounts.head[acct]), rows.next) if rows.token[r] == tok]
        return found[0] if found else int(self._append_rows(np.array([acct]), tok)[0])

    def _append_rows(self, accts: IndexArray, tok: int) -> IndexArray:
        """New zero-balance rows of token ``tok`` for distinct ``accts``, linked and bucketed."""
        rows = self._holdings
        rows.reserve(len(accts))
        new = np.arange(rows.n, rows.n + len(accts), dtype=np.intp)
        side = 0 if self._token_list[tok].role is Role.COLLATERAL else 1
        rows.key[new] = 2 * accts + side
        rows.token[new] = tok
        rows.flags[new], rows.valued[new] = 0, False
        rows.next[new] = self._accounts.head[accts]
        self._accounts.head[accts] = new
        group = int(self._token_group[tok])
        if group >= 0:
            bucket = self._accounts.bucket_of[accts, group]
            missing = bucket < 0
            if missing.any():
                bucket[missing] = self._buckets.append(accts[missing], group)
                self._accounts.bucket_of[accts, group] = bucket
            rows.bucket[new] = bucket
        rows.n += len(accts)
        self._token_rows[tok] += len(accts)
        return new


def _checked_raws(
    raws: Sequence[int] | npt.NDArray[np.uint64],
) -> npt.NDArray[np.uint64] | list[int]:
    """A bulk load's raw balances in one of two forms: a uint64 array as it is (every value
    fits), anything else as Python ints, each checked to be a uint256."""
    if isinstance(raws, np.ndarray) and raws.dtype == np.uint64:
        return raws
    ints = [int(r) for r in raws]
    if any(not 0 <= r <= UINT256_MAX for r in ints):
        raise MarginInputError("load_balances: raw balance out of uint256 range")
    return ints
