"""Options and the clock in the engine's book, and the portfolio model's market vectors.

``OptionBook`` extends ``MarginBook``: each account's option lines in linked rows
(``margin.rows.OptionTable``), the time options are valued at (``set_clock``: the engine reads
no clock itself), and the risk-group vectors rebuilt with the market. Posting an account's
options replaces its whole set, like ``PUT /v1/positions`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from margin.book import MarginBook, empty_index
from margin.kernel import MarketVectors
from margin.model import ChainInput, EngineParams, MarginInputError, MarginModel, TokenRisk
from margin.options import OptionPosition, Right
from margin.portfolio import OptionLayout, option_layout
from margin.portfolio_kernel import OptionInputRows, PortfolioVectors, build_portfolio_vectors
from margin.rows import OptionTable, gather, walk
from margin.scenarios import PortfolioParams
from margin.tiers import IndexArray


class OptionBook(MarginBook):
    """``MarginBook`` with options, a clock and the portfolio model's parameters."""

    def __init__(
        self,
        *,
        tokens: Iterable[TokenRisk],
        chains: Iterable[ChainInput],
        params: EngineParams | None = None,
        portfolio: PortfolioParams | None = None,
        now: float = 0.0,
    ) -> None:
        self.portfolio = portfolio or PortfolioParams()
        self._now = float(now)
        self._options = OptionTable()
        self._option_inputs: list[OptionPosition | None] = []
        self._contracts: dict[tuple[int, bool, float, int, float], int] = {}
        self._vol_shocks: dict[str, float] = {}
        self._option_version = 0  # moves whenever an option row changes
        self._layout: tuple[tuple[int, tuple[str, ...]], OptionLayout] | None = None
        self._frozen: tuple[int, OptionInputRows] | None = None
        super().__init__(tokens=list(tokens), chains=chains, params=params)

    @property
    def is_portfolio(self) -> bool:
        """Whether the deployment runs ``margin.model: portfolio``."""
        return self.params.model is MarginModel.PORTFOLIO

    @property
    def now(self) -> float:
        """The unix time options are valued at."""
        return self._now

    def set_clock(self, now: float) -> IndexArray:
        """Value options at ``now``; mark and return the accounts holding open options."""
        if now == self._now:
            return empty_index()
        self._now = float(now)
        self._vectors.market.units.clear()  # unit P&Ls depend on τ
        table = self._options
        live = table.account[: table.n][table.size[: table.n] != 0]
        accts = np.unique(live)
        self._accounts.mark_many(accts)
        return accts

    def set_correlations(self, correlations: Mapping[tuple[str, str], float]) -> IndexArray:
        """Use ``correlations`` ((group, group) → ρ, either order) between risk groups from now
        on, in place of the configured ones (``correlation_source: ewma``); pairs not given keep
        their value. Mark and return the accounts holding an asset of a group whose ρ changed.
        Each ρ must be in [0, 1] (``MarginInputError`` otherwise, nothing changed)."""
        params = self.portfolio
        current = {frozenset((a, b)): rho for a, b, rho in reversed(params.correlations)}
        changed = {
            (a, b): float(rho)
            for (a, b), rho in correlations.items()
            if a != b and current.get(frozenset((a, b)), params.default_correlation) != rho
        }
        if not changed:
            return empty_index()
        moved = {frozenset(pair) for pair in changed}
        kept = tuple(
            (a, b, rho) for a, b, rho in params.correlations if frozenset((a, b)) not in moved
        )
        given = tuple((a, b, rho) for (a, b), rho in changed.items())
        self.portfolio = dataclasses.replace(params, correlations=kept + given)
        self._market = self._rebuild_market()
        groups = {g for pair in changed for g in pair}
        assets = [a for a in self._assets if self.portfolio.group_of(a) in groups]
        return self._mark_dirty(self.accounts_using(assets=assets))

    def set_options(self, account: str, options: Sequence[OptionPosition]) -> None:
        """Make ``options`` the account's whole set of option lines (an empty list closes
        them all); every option must belong to ``account``."""
        for option in options:
            if option.account != account:
                raise MarginInputError(f"set_options: an option of {option.account}")
            self._chain_id(option.chain)
        assets = len(self._assets)
        for option in options:
            self._asset_id(option.asset)
        if assets != len(self._assets):
            self._market = self._rebuild_market()
        acct = self._accounts.ensure(account)
        table = self._options
        rows = walk(int(self._accounts.option_head[acct]), table.next)[::-1]
        current = [self._option_inputs[r] for r in rows if self._option_inputs[r] is not None]
        if current == list(options):
            return
        self._option_version += 1
        while len(rows) < len(options):
            table.reserve(1)
            row = table.n
            table.n += 1
            table.account[row] = acct
            table.next[row] = self._accounts.option_head[acct]
            self._accounts.option_head[acct] = row
            self._option_inputs.append(None)
            rows.append(row)
        for i, row in enumerate(rows):
            if i >= len(options):
                self._option_inputs[row] = None
                table.size[row] = 0.0
                continue
            option = options[i]
            self._option_inputs[row] = option
            table.asset[row] = self._asset_ids[option.asset]
            table.chain[row] = self._chain_ids[option.chain]
            table.call[row] = option.right is Right.CALL
            table.size[row] = option.size
            table.strike[row] = option.strike
            table.expiry[row] = float(option.expiry)
            table.vol[row] = option.implied_vol
            key = (int(table.asset[row]), bool(table.call[row]), option.strike, option.expiry,
                   option.implied_vol)  # fmt: skip
            table.contract[row] = self._contracts.setdefault(key, len(self._contracts))
        self._accounts.mark(acct)

    def options_of(self, account: str) -> list[OptionPosition]:
        """The account's option lines as posted."""
        acct = self.account_index(account)
        rows = walk(int(self._accounts.option_head[acct]), self._options.next)[::-1]
        return [o for r in rows if (o := self._option_inputs[r]) is not None]

    def accounts_using(
        self, *, assets: Iterable[str] = (), chains: Iterable[str] = ()
    ) -> IndexArray:
        """``MarginBook.accounts_using``, options included."""
        assets, chains = list(assets), list(chains)
        found = super().accounts_using(assets=assets, chains=chains)
        table = self._options
        if not table.n:
            return found
        asset_ids = [self._asset_ids[a] for a in assets if a in self._asset_ids]
        chain_ids = [self._chain_ids[c] for c in chains if c in self._chain_ids]
        hit = np.isin(table.asset[: table.n], asset_ids) | np.isin(
            table.chain[: table.n], chain_ids
        )
        touched = np.zeros(len(self._accounts), dtype=np.bool_)
        touched[found] = True
        touched[table.account[: table.n][hit]] = True
        return np.flatnonzero(touched)

    # ---- internals -----------------------------------------------------------------------

    def _option_rows(self, accts: IndexArray | None) -> OptionInputRows:
        """Option rows of ``accts`` (local indices), or of every account (``None``)."""
        table = self._options
        if accts is None:
            every = slice(0, table.n)
            return OptionInputRows(
                account=table.account[every],
                asset=table.asset[every],
                chain=table.chain[every],
                call=table.call[every],
                size=table.size[every],
                strike=table.strike[every],
                expiry=table.expiry[every],
                vol=table.vol[every],
                contract=table.contract[every],
                layout=self._whole_layout(),
            )
        rows, local = gather(accts, self._accounts.option_head, table.next)
        return OptionInputRows(
            account=local,
            asset=table.asset[rows],
            chain=table.chain[rows],
            call=table.call[rows],
            size=table.size[rows],
            strike=table.strike[rows],
            expiry=table.expiry[rows],
            vol=table.vol[rows],
            contract=table.contract[rows],
        )

    def _frozen_options(self) -> OptionInputRows:
        """A copy of every option row for snapshots, shared by the snapshots taken until an
        option row changes (only ``set_options`` writes them, and it moves the version): a
        stress request at a million accounts then copies no option column on the event
        loop. The price: one copy of the option columns kept between requests."""
        kept = self._frozen
        if kept is None or kept[0] != self._option_version:
            kept = (self._option_version, self._option_rows(None).copy())
            self._frozen = kept
        return dataclasses.replace(kept[1], layout=self._whole_layout())

    def _whole_layout(self) -> OptionLayout | None:
        """``option_layout`` of every option row, kept until a row or the groups change (a
        price move changes neither: full passes after one skip the sort)."""
        table = self._options
        if not table.n:
            return None
        groups = self._vectors.groups
        key = (self._option_version, groups)
        kept = self._layout
        if kept is not None and kept[0] == key:
            return kept[1]
        pair = (
            table.account[: table.n] * len(groups)
            + self._vectors.asset_group[table.asset[: table.n]]
        )
        layout = option_layout(pair, table.contract[: table.n])
        self._layout = (key, layout)
        return layout

    def _rebuild_market(self) -> MarketVectors:
        market = super()._rebuild_market()
        self._vectors = self._portfolio_vectors(self._vol_shocks)
        return market

    def _portfolio_vectors(self, vol_shocks: dict[str, float]) -> PortfolioVectors:
        return build_portfolio_vectors(
            params=self.portfolio,
            assets=self._assets,
            prices=self._prices,
            chains=list(self._chains.values()),
            tokens=self._token_list,
            z=self.params.z,
            scale=float(10**self.params.value_decimals),
            vol_shocks=vol_shocks,
        )
