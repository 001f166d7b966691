"""A frozen copy of the margin engine's book, valued at any prices: the input of stress passes.

``MarginEngine.snapshot()`` builds a ``BookSnapshot``; ``evaluate(prices)`` runs the engine's
own kernel (``margin.kernel.evaluate``) over every account at those prices, so a scenario is
valued with the very arithmetic, rounding and model (weighted or tiered) of the live engine,
without touching it. ``margin.stress`` sees a snapshot through the ``ScenarioBook`` protocol:
another margin model plugs in by providing ``accounts``, ``assets``, ``prices``,
``value_decimals``, ``current()`` and ``evaluate()`` (with its options value ``O``). A stress
shocks a volatility twice: the ``volatility`` of the shocked ``PriceInput`` (the EWMA estimate:
scan ranges and latency shocks) and, through ``vol_shocks``, the options' implied vols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from margin.kernel import HealthTable, HoldingRows, PositionRows, evaluate
from margin.market import build_market
from margin.model import ChainInput, EngineParams, MarginModel, PriceInput, TokenRisk
from margin.portfolio_kernel import (
    OptionInputRows,
    build_portfolio_vectors,
    evaluate_portfolio_accounts,
    option_charges,
)
from margin.scenarios import PortfolioParams
from margin.tiers import FloatArray, IndexArray, TierTable


@dataclass(frozen=True, slots=True)
class ScenarioValues:
    """Every account's results under one scenario.

    ``options_value`` is ``O`` of DESIGN §3 (Σ size · option value, value units) per account:
    zeros for models and books without options.
    """

    table: HealthTable
    options_value: FloatArray


class ScenarioBook(Protocol):
    """What a stress pass needs from a book (``BookSnapshot`` for the weighted and tiered
    models)."""

    @property
    def accounts(self) -> Sequence[str]:
        """Account ids by index (at least ``len(current())`` of them)."""
        ...

    @property
    def assets(self) -> Sequence[str]:
        """Assets the book knows (held, owed, traded or priced)."""
        ...

    @property
    def prices(self) -> Mapping[str, PriceInput]:
        """The current price of every priced asset."""
        ...

    @property
    def value_decimals(self) -> int:
        """Money in results is in units of ``10**-value_decimals`` USD."""
        ...

    def current(self, *, threads: int = 1) -> ScenarioValues:
        """Every account at the current prices (``threads``: as in ``evaluate``)."""
        ...

    def evaluate(
        self,
        prices: Mapping[str, PriceInput],
        vol_shocks: Mapping[str, float] | None = None,
        *,
        threads: int = 1,
    ) -> ScenarioValues:
        """Every account at ``prices`` (asset → price; an asset left out is unpriced), options'
        implied vols multiplied by ``1 + vol_shocks[asset]``; ``threads`` the model may use
        (the same results with any number)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingAccounts:
    """Accounts whose engine results were stale when a snapshot was taken (dirty), with
    their rows as the engine's incremental recompute gathers them (local indices, copies)."""

    index: IndexArray  # sorted account indices
    holdings: HoldingRows
    positions: PositionRows
    options: OptionInputRows


@dataclass(frozen=True, slots=True, kw_only=True)
class BookSnapshot:
    """The engine's inputs at one moment (see ``MarginEngine.snapshot``).

    ``accounts`` may be the engine's own growing list: only its first ``n`` ids belong to the
    snapshot. ``current_table`` is a copy of the engine's results, stale for the accounts of
    ``pending`` (``current()`` re-values those), or ``None`` when too many were stale
    (``current()`` then evaluates every account at the current prices).
    """

    accounts: Sequence[str]
    n: int
    assets: tuple[str, ...]
    prices: Mapping[str, PriceInput]
    chains: tuple[ChainInput, ...]
    tokens: tuple[TokenRisk, ...]
    token_group: IndexArray
    params: EngineParams
    holdings: HoldingRows
    positions: PositionRows
    collateral_tiers: TierTable
    mmr_tiers: TierTable
    current_table: HealthTable | None
    token_flags: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Flags single tokens add to their holders (``MarginBook.set_token_flags``)."""
    options: OptionInputRows = field(default_factory=OptionInputRows.empty)
    portfolio: PortfolioParams = field(default_factory=PortfolioParams)
    now: float = 0.0
    """Options (frozen copies), the portfolio model's parameters and the time options are
    valued at: every model values options; ``margin.model: portfolio`` evaluates the grid."""
    pending: PendingAccounts | None = None

    @property
    def value_decimals(self) -> int:
        """Money in results is in units of ``10**-value_decimals`` USD."""
        return self.params.value_decimals

    def current(self, *, threads: int = 1) -> ScenarioValues:
        """Every account at the current prices: the engine's results, with the accounts that
        were dirty (``pending``) re-valued from their rows, or a full pass when the engine
        gave no results."""
        table = self.current_table
        if table is None:
            return self.evaluate(self.prices, threads=threads)
        pending = self.pending
        if pending is not None and len(pending.index):
            fresh = self._evaluate_rows(
                len(pending.index),
                pending.holdings,
                pending.positions,
                pending.options,
                self.prices,
                None,
                threads,
            )
            # current_table is this snapshot's own copy and the values are always the same:
            # writing them in place makes a second call redo the work, not change the answer
            for name, column in table.columns().items():
                column[pending.index] = getattr(fresh, name)
        return ScenarioValues(table, np.zeros(self.n))

    def evaluate(
        self,
        prices: Mapping[str, PriceInput],
        vol_shocks: Mapping[str, float] | None = None,
        *,
        threads: int = 1,
    ) -> ScenarioValues:
        """Every account at ``prices``, options' implied vols multiplied by ``1 +
        vol_shocks[asset]``, with the engine's kernel and market vectors (the portfolio
        kernel under ``margin.model: portfolio``, on ``threads`` threads). Options' market
        value is part of ``unrealized_pnl`` in every model, so ``options_value`` is reported
        as zeros (adding it again would count it twice)."""
        table = self._evaluate_rows(
            self.n, self.holdings, self.positions, self.options, prices, vol_shocks, threads
        )
        return ScenarioValues(table, np.zeros(self.n))

    def _evaluate_rows(
        self,
        n: int,
        holdings: HoldingRows,
        positions: PositionRows,
        options: OptionInputRows,
        prices: Mapping[str, PriceInput],
        vol_shocks: Mapping[str, float] | None,
        threads: int,
    ) -> HealthTable:
        """The results of ``n`` local accounts given by their rows, at ``prices``."""
        market = build_market(
            params=self.params,
            assets=self.assets,
            prices=prices,
            chains=self.chains,
            tokens=self.tokens,
            token_group=self.token_group,
            token_flags=self.token_flags,
        )
        vectors = build_portfolio_vectors(
            params=self.portfolio,
            assets=self.assets,
            prices=prices,
            chains=self.chains,
            tokens=self.tokens,
            z=self.params.z,
            scale=float(10**self.params.value_decimals),
            vol_shocks=vol_shocks,
        )
        if self.params.model is MarginModel.PORTFOLIO:
            table, _ = evaluate_portfolio_accounts(
                n, holdings, positions, options, market, vectors, self.now, threads=threads
            )
            return table
        charge = option_charges(n, options, market, vectors, self.now)
        return evaluate(
            n,
            holdings,
            positions,
            market,
            self.collateral_tiers,
            self.mmr_tiers,
            extra_value=charge.value,
            extra_maintenance=charge.maintenance,
            extra_flags=charge.flags,
        )
