"""The unified cross-margin engine: the health of every account, kept current with numpy.

    engine = MarginEngine(tokens=[...], chains=[...], params=EngineParams(model=...))
    engine.set_prices([...]); engine.set_balance(account, chain, token, raw, block)
    engine.set_read_failed(account, chain, token, block)   # keeps the last good value, flagged
    engine.load_holdings(holdings)       # many at once: a first sync, a restart, a sweep
    table = engine.recompute_all()       # HealthTable over all accounts
    engine.set_balance(...)              # marks that account dirty
    touched = engine.set_prices([...])   # marks the holders of those assets dirty
    engine.recompute_dirty()             # only those; bit-identical to a full recompute
    engine.account_health("0xabc…")      # AccountHealth with the per-token breakdown

Inputs are kept as columns by ``margin.book.MarginBook``; ``margin.kernel`` evaluates any slice
of accounts with the same arithmetic as the reference ``margin.health.evaluate_account``, and
``margin.breakdown`` lists what each holding and position of an account counts for, from the
same rows. Pure and synchronous: no I/O, no clocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

import numpy as np

from core.amounts import scaled
from margin.book import empty_index
from margin.breakdown import BreakdownSource, holding_lines, position_lines
from margin.kernel import HealthTable, HoldingRows, PositionRows, evaluate
from margin.model import MONEY_FIELDS, AccountHealth, Flag, MarginInputError, PriceInput
from margin.option_book import OptionBook
from margin.portfolio import PortfolioResult
from margin.portfolio_kernel import (
    OptionInputRows,
    evaluate_portfolio_accounts,
    option_charges,
)
from margin.risk import AccountRisk, account_risk
from margin.rows import gather, walk
from margin.scenario import BookSnapshot, PendingAccounts
from margin.tiers import IndexArray

FULL_RECOMPUTE_FRACTION = 0.1
"""``recompute_dirty`` does a full pass above this share of dirty accounts: walking an
account's linked rows costs a few µs, a full pass well under one µs per account."""


class MarginEngine(OptionBook):
    """Health, shortfall, latency risk and flags of every account, full or incremental."""

    @property
    def results(self) -> HealthTable:
        """Latest results of all accounts, as views: recomputes update them in place until new
        accounts outgrow the arrays (then fetch ``results`` again); ``select`` copies."""
        n = len(self._accounts)
        columns = self._accounts.results.columns()
        return HealthTable(**{name: column[:n] for name, column in columns.items()})

    def recompute_all(self) -> HealthTable:
        """Evaluate every account; return ``results``."""
        n = len(self._accounts)
        result, _ = self._evaluate_all()
        self._accounts.store(slice(0, n), result)
        return self.results

    def evaluate_under(
        self,
        *,
        price_shocks: Mapping[str, float] | None = None,
        vol_shocks: Mapping[str, float] | None = None,
        weighted: bool = False,
    ) -> tuple[HealthTable, PortfolioResult | None]:
        """Every account valued as if each asset's price (and its band) moved by
        ``price_shocks[asset]`` (−0.3: 30 % down) and its volatility — options' implied vols
        and the EWMA estimate that widens the scan ranges — by ``vol_shocks[asset]`` (0.5:
        ×1.5), under the deployment's model; nothing is stored or marked dirty (stress tests).

        Bad debt per account is ``max(0, liability_value − (collateral_value +
        unrealized_pnl))`` of the returned table (``unrealized_pnl`` includes the options'
        value). The ``PortfolioResult`` is ``None`` unless the model is ``portfolio``.
        """
        for asset, shock in {**(price_shocks or {}), **(vol_shocks or {})}.items():
            if asset not in self._asset_ids:
                raise MarginInputError(f"stress: unknown asset {asset}")
            if not (math.isfinite(shock) and shock > -1):
                raise MarginInputError(f"stress: shock of {asset} must be > -1 (got {shock})")
        saved = (self._prices, self._market, self._vectors, self._vol_shocks)
        try:
            moves, vols = price_shocks or {}, vol_shocks or {}
            self._prices = {
                a: _shocked(p, moves.get(a, 0.0), vols.get(a, 0.0)) for a, p in self._prices.items()
            }
            self._vol_shocks = dict(vol_shocks or {})
            self._market = self._rebuild_market()
            return self._evaluate_all(weighted=weighted)
        finally:
            self._prices, self._market, self._vectors, self._vol_shocks = saved

    def snapshot(self) -> BookSnapshot:
        """A frozen copy of every account's inputs (``margin.scenario``): what a stress pass
        evaluates at shocked prices, in any thread, while this engine keeps changing.

        Only what changes in place is copied (amounts, read flags, positions); row keys and
        buckets are written once when a row is appended and shared. A copy of the engine's
        current results comes along, with the rows of the dirty accounts (``pending``: the
        snapshot re-values them as ``recompute_dirty`` would), unless more than
        ``FULL_RECOMPUTE_FRACTION`` of the accounts are dirty (then a stress pass values
        every account twice, as ``recompute_dirty`` would do one full pass).
        """
        holdings, positions = self._all_rows(frozen=True)
        n = len(self._accounts)
        dirty = self.dirty_accounts()
        stale = len(dirty) > FULL_RECOMPUTE_FRACTION * n
        return BookSnapshot(
            accounts=self._accounts.ids,
            n=n,
            assets=tuple(self._assets),
            prices=dict(self._prices),
            chains=tuple(self._chains.values()),
            tokens=tuple(self._token_list),
            token_group=self._token_group,
            params=self.params,
            holdings=holdings,
            positions=positions,
            collateral_tiers=self._collateral_tiers,
            mmr_tiers=self._mmr_tiers,
            current_table=None if stale else self.results.select(slice(0, n)),
            token_flags=dict(self._token_flags),
            options=self._frozen_options(),
            portfolio=self.portfolio,
            now=self._now,
            pending=self._slice_rows(dirty) if len(dirty) and not stale else None,
        )

    def _all_rows(self, *, frozen: bool) -> tuple[HoldingRows, PositionRows]:
        """Every holding and position row; ``frozen``: copies of the columns that change in
        place, so later inputs do not show through."""
        rows, n_rows = self._holdings, self._holdings.n
        buckets = self._buckets
        tiered = np.flatnonzero(rows.bucket[:n_rows] >= 0) if buckets.n else empty_index()
        amount, flags = rows.amount[:n_rows], rows.flags[:n_rows]
        holdings = HoldingRows(
            key=rows.key[:n_rows],
            token=rows.token[:n_rows],
            amount=amount.copy() if frozen else amount,
            flags=flags.copy() if frozen else flags,
            tiered=tiered,
            bucket=rows.bucket[tiered],
            bucket_account=buckets.account[: buckets.n],
            bucket_schedule=buckets.group[: buckets.n],
        )
        table = self._positions
        every = slice(0, table.n)
        positions = table.select(every, table.account[every])
        if frozen:
            positions = PositionRows(
                **{f: getattr(positions, f).copy() for f in PositionRows.__dataclass_fields__}
            )
        return holdings, positions

    def _evaluate_all(
        self, *, weighted: bool = False
    ) -> tuple[HealthTable, PortfolioResult | None]:
        """Every account's results, nothing stored."""
        holdings, positions = self._all_rows(frozen=False)
        n = len(self._accounts)
        options = self._option_rows(None)
        return self._evaluate(n, holdings, positions, options, weighted=weighted)

    def recompute(self, accounts: Iterable[int] | IndexArray) -> IndexArray:
        """Evaluate only ``accounts`` (indices); return them sorted and de-duplicated."""
        given = accounts if isinstance(accounts, np.ndarray) else np.fromiter(accounts, np.intp)
        accts = np.unique(given.astype(np.intp, copy=False))
        if len(accts) and (accts[0] < 0 or accts[-1] >= len(self._accounts)):
            raise MarginInputError("recompute: account index out of range")
        return self._recompute_sorted(accts)

    def _recompute_sorted(self, accts: IndexArray) -> IndexArray:
        if len(accts) == 0:
            return accts
        table, _ = self._evaluate_slice(accts)
        self._accounts.store(accts, table)
        return accts

    def _evaluate_slice(
        self, accts: IndexArray, *, portfolio: bool = False
    ) -> tuple[HealthTable, PortfolioResult | None]:
        """Results of the sorted accounts ``accts`` (local order), nothing stored."""
        pending = self._slice_rows(accts)
        return self._evaluate(
            len(accts), pending.holdings, pending.positions, pending.options, portfolio=portfolio
        )

    def _slice_rows(self, accts: IndexArray) -> PendingAccounts:
        """The rows of the sorted accounts ``accts``, local order (copies: fancy indexing)."""
        h_rows, h_local = gather(accts, self._accounts.head, self._holdings.next)
        rows = self._holdings
        token = rows.token[h_rows]
        # Buckets laid out densely as (local account, tiered group): a few accounts need no
        # remapping of the global bucket ids, and exact sums make both layouts agree.
        groups = self._collateral_tiers.count
        if groups:
            group = self._token_group[token]
            tiered = np.flatnonzero(group >= 0)
            bucket = h_local[tiered] * groups + group[tiered]
            bucket_account = np.repeat(np.arange(len(accts), dtype=np.intp), groups)
            bucket_schedule = np.tile(np.arange(groups, dtype=np.intp), len(accts))
        else:  # no tiered collateral: no buckets
            tiered = bucket = bucket_account = bucket_schedule = empty_index()
        holdings = HoldingRows(
            key=2 * h_local + (rows.key[h_rows] & 1),
            token=token,
            amount=rows.amount[h_rows],
            flags=rows.flags[h_rows],
            tiered=tiered,
            bucket=bucket,
            bucket_account=bucket_account,
            bucket_schedule=bucket_schedule,
        )
        if self._positions.n:
            p_rows, p_local = gather(accts, self._accounts.position_head, self._positions.next)
        else:  # no account ever held a position
            p_rows = p_local = empty_index()
        positions = self._positions.select(p_rows, p_local)
        options = self._option_rows(accts)
        return PendingAccounts(index=accts, holdings=holdings, positions=positions, options=options)

    def recompute_dirty(self, *, full_fraction: float = FULL_RECOMPUTE_FRACTION) -> IndexArray:
        """Evaluate the dirty accounts (all of them, in one full pass, above
        ``full_fraction`` of the accounts); return the indices evaluated."""
        dirty = self.dirty_accounts()
        n = len(self._accounts)
        if len(dirty) > full_fraction * n:
            self.recompute_all()
            return np.arange(n, dtype=np.intp)
        return self._recompute_sorted(dirty)

    def account_health(self, account: str) -> AccountHealth:
        """One account's results with its per-chain, per-token breakdown, built from the
        engine's rows (``margin.breakdown``); a dirty account is recomputed first."""
        return self.account_healths([account])[0]

    def account_healths(self, accounts: Sequence[str]) -> list[AccountHealth]:
        """``account_health`` of each of ``accounts`` (in that order), their risk figures
        from one vectorised pass: a pass per account costs milliseconds of numpy overhead
        each, seconds for the thousands of breakdowns a market-wide move asks for."""
        if not accounts:
            return []
        index = np.array([self.account_index(a) for a in accounts], dtype=np.intp)
        accts, row_of = np.unique(index, return_inverse=True)  # sorted, as slices need
        row_of = row_of.reshape(-1)
        dirty = accts[self._accounts.dirty[accts]]
        if len(dirty):
            self._recompute_sorted(dirty)
        vectors = self._vectors
        _, result = self._evaluate_slice(accts, portfolio=True)
        assert result is not None
        table = self.results
        decimals = self.params.value_decimals
        source = self._breakdown_source()
        out = []
        for account, acct, row in zip(accounts, index.tolist(), row_of.tolist(), strict=True):

            def money(column: str, acct: int = acct) -> Decimal:
                return scaled(int(getattr(table, column)[acct]), decimals)

            holdings = walk(int(self._accounts.head[acct]), self._holdings.next)
            positions = walk(int(self._accounts.position_head[acct]), self._positions.next)
            out.append(
                AccountHealth(
                    account=account,
                    **{name: money(name) for name in MONEY_FIELDS},
                    health=_known(float(table.health[acct])),
                    health_latency=_known(float(table.health_latency[acct])),
                    flags=Flag(int(table.flags[acct])),
                    actionable=bool(table.actionable[acct]),
                    holdings=holding_lines(source, holdings),
                    positions=position_lines(source, positions),
                    risk=account_risk(self.params.model, vectors, result, decimals, row=row),
                )
            )
        return out

    def account_risk(self, account: str) -> AccountRisk:
        """One account's portfolio risk figures (``risk`` of the account document): per-group
        scan range, losses, greeks and horizon, VaR/ES and the options' value. Computed with
        the portfolio parameters whatever the model (``model`` says which one sets M)."""
        acct = np.array([self.account_index(account)], dtype=np.intp)
        vectors = self._vectors
        _, result = self._evaluate_slice(acct, portfolio=True)
        assert result is not None
        return account_risk(self.params.model, vectors, result, self.params.value_decimals)

    def _breakdown_source(self) -> BreakdownSource:
        return BreakdownSource(
            holdings=self._holdings,
            positions=self._positions,
            position_inputs=self._position_inputs,
            tokens=self._token_list,
            token_group=self._token_group,
            group_tiers=self._group_tiers,
            collateral_tiers=self._collateral_tiers,
            mmr_tiers=self._mmr_tiers,
            prices=self._prices,
            market=self._market,
            value_decimals=self.params.value_decimals,
        )

    # ---- internals -----------------------------------------------------------------------

    def _evaluate(
        self,
        n: int,
        holdings: HoldingRows,
        positions: PositionRows,
        options: OptionInputRows,
        *,
        portfolio: bool = False,
        weighted: bool = False,
    ) -> tuple[HealthTable, PortfolioResult | None]:
        """The model's results; with ``portfolio`` the portfolio figures too (any model);
        with ``weighted`` the flat-weight results even under ``portfolio``."""
        if (self.is_portfolio and not weighted) or portfolio:
            table, result = evaluate_portfolio_accounts(
                n,
                holdings,
                positions,
                options,
                self._market,
                self._vectors,
                self._now,
                with_risk=portfolio,
            )
            if self.is_portfolio and not weighted:
                return table, result
        else:
            result = None
        charge = option_charges(n, options, self._market, self._vectors, self._now)
        table = evaluate(
            n,
            holdings,
            positions,
            self._market,
            self._collateral_tiers,
            self._mmr_tiers,
            extra_value=charge.value,
            extra_maintenance=charge.maintenance,
            extra_flags=charge.flags,
        )
        return table, result


def _shocked(price: PriceInput, shock: float, vol_shock: float) -> PriceInput:
    """``price`` (and its band) moved by ``shock``, its volatility by ``vol_shock``."""
    if not shock and not vol_shock:
        return price
    factor = 1.0 + shock
    return replace(
        price,
        price=price.price * factor,
        volatility=price.volatility * (1.0 + vol_shock),
        price_low=None if price.price_low is None else price.price_low * factor,
        price_high=None if price.price_high is None else price.price_high * factor,
    )


def _known(health: float) -> float:
    """``health``, with an unknown one as the ``math.nan`` object: dataclass equality compares
    fields as tuples do (identity first), so two unknown healths compare equal."""
    return math.nan if math.isnan(health) else health
