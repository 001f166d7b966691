"""What the store is given to write: one cycle's health, in columns, and its context.

Health goes in as columns (``HealthRows``), because a cycle may write 100,000 accounts and
building that many objects would cost more than the database write. Money is carried as the
engine's integer *value units* (``10**-value_decimals`` USD) and divided in SQL, so no
``Decimal`` is built per row on the hot path. Infinite health (an account that owes nothing)
is ``None`` in ``HealthRows`` and NULL in the database; reads turn it back into ``inf``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.addresses import lower_address
from margin.kernel import HealthTable
from margin.model import MONEY_FIELDS, AccountHealth
from margin.risk import AccountRisk

HealthRecord = tuple[Any, ...]
"""One row of ``HealthRows.records()``, in ``schema.health_stage`` column order."""


def _finite_or_none(values: Sequence[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def _units(value: Decimal, value_decimals: int) -> int:
    return int(value.scaleb(value_decimals))


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthRows:
    """The health of many accounts, column by column (one cycle's write)."""

    value_decimals: int
    accounts: list[str]
    health: list[float | None]
    health_latency: list[float | None]
    collateral_value: list[int]
    weighted_collateral: list[int]
    liability_value: list[int]
    weighted_liability: list[int]
    unrealized_pnl: list[int]
    maintenance: list[int]
    shortfall: list[int]
    flags: list[int]
    actionable: list[bool]
    breakdowns: list[str | None]
    """JSON text of the per-token breakdown, or ``None`` (not computed for bulk cycles)."""
    shards: list[int] | None = None
    """Each account's shard in cluster mode (``daemon.cluster.shards``): stored on its
    transitions, so the shard's owner publishes them. ``None`` outside cluster mode."""
    moved_first: int | None = None
    """The first ``moved_first`` rows are the accounts whose stored flags the engine expects
    these rows to change (or which it never stored): a large write commits them, with their
    transitions, before it stages the others (``daemon.store.cycle``). A wrong guess costs
    time, never a transition: the others are compared with the stored flags too. ``None``:
    no guess, every row is staged at once."""

    def __post_init__(self) -> None:
        n = len(self.accounts)
        for name in self.__dataclass_fields__:
            column = getattr(self, name)
            if isinstance(column, list) and len(column) != n:
                raise ValueError(f"HealthRows.{name} has {len(column)} rows, expected {n}")
        if len(set(self.accounts)) != n:
            raise ValueError("HealthRows: an account appears twice in one cycle")
        if self.moved_first is not None and not 0 <= self.moved_first <= n:
            raise ValueError(f"HealthRows.moved_first is {self.moved_first}, of {n} rows")

    def __len__(self) -> int:
        return len(self.accounts)

    def split_moved(self) -> tuple[HealthRows, HealthRows]:
        """(the first ``moved_first`` rows, the others), neither with a guess of its own."""
        if self.moved_first is None:
            raise ValueError("HealthRows.split_moved: the rows carry no moved_first")
        return self._sliced(slice(None, self.moved_first)), self._sliced(
            slice(self.moved_first, None)
        )

    def chunks(self, size: int) -> list[HealthRows]:
        """The rows in consecutive parts of at most ``size`` (as even as that allows), none
        with a guess of its own."""
        if not len(self):
            return [self._sliced(slice(None))]
        step = -(-len(self) // -(-len(self) // size))  # ceil(n / ceil(n / size))
        return [self._sliced(slice(i, i + step)) for i in range(0, len(self), step)]

    def _sliced(self, part: slice) -> HealthRows:
        columns: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            column = getattr(self, name)
            columns[name] = column[part] if isinstance(column, list) else column
        return HealthRows(**columns | {"moved_first": None})

    def records(self) -> Iterator[HealthRecord]:
        """Row tuples in ``schema.health_stage`` column order."""
        return zip(
            self.accounts,
            self.health,
            self.health_latency,
            self.collateral_value,
            self.weighted_collateral,
            self.liability_value,
            self.weighted_liability,
            self.unrealized_pnl,
            self.maintenance,
            self.shortfall,
            self.flags,
            self.actionable,
            self.breakdowns,
            itertools.repeat(None) if self.shards is None else self.shards,
            strict=False,  # every list was checked to have len(accounts) rows
        )

    @classmethod
    def from_table(
        cls,
        accounts: Sequence[str],
        table: HealthTable,
        *,
        value_decimals: int,
        moved_first: int | None = None,
    ) -> HealthRows:
        """From the engine's ``HealthTable`` (``accounts[i]`` is row ``i``), without breakdowns."""
        if len(accounts) != len(table):
            raise ValueError("HealthRows.from_table: accounts and table differ in length")

        def units(column: Any) -> list[int]:
            # Value units are exact integers held in float64 (margin.kernel).
            ints: list[int] = column.astype("int64").tolist()
            return ints

        return cls(
            value_decimals=value_decimals,
            accounts=[lower_address(a) for a in accounts],
            health=_finite_or_none(table.health.tolist()),
            health_latency=_finite_or_none(table.health_latency.tolist()),
            **{name: units(getattr(table, name)) for name in MONEY_FIELDS},
            flags=table.flags.astype("int64").tolist(),
            actionable=table.actionable.tolist(),
            breakdowns=[None] * len(accounts),
            moved_first=moved_first,
        )

    @classmethod
    def from_accounts(
        cls, healths: Iterable[AccountHealth], *, value_decimals: int, breakdown: bool = True
    ) -> HealthRows:
        """From ``AccountHealth`` objects (``engine.account_health``), with their breakdowns."""
        items = list(healths)

        def units(name: str) -> list[int]:
            return [_units(getattr(h, name), value_decimals) for h in items]

        return cls(
            value_decimals=value_decimals,
            accounts=[lower_address(h.account) for h in items],
            health=_finite_or_none([h.health for h in items]),
            health_latency=_finite_or_none([h.health_latency for h in items]),
            **{name: units(name) for name in MONEY_FIELDS},
            flags=[int(h.flags) for h in items],
            actionable=[h.actionable for h in items],
            breakdowns=[json.dumps(breakdown_record(h)) if breakdown else None for h in items],
            moved_first=None,
        )


def breakdown_record(health: AccountHealth) -> dict[str, Any]:
    """An ``AccountHealth``'s breakdown in its stored form (``account_health.breakdown``:
    exact numbers as strings, flags as bits), which ``daemon.documents.breakdown_document``
    renders wherever it is shown."""
    return {
        "holdings": [
            {
                "chain": h.chain,
                "token": h.token,
                "asset": h.asset,
                "role": str(h.role),
                "raw": None if h.raw is None else str(h.raw),
                "amount": str(h.amount),
                "price": h.price,
                "value": str(h.value),
                "weight": h.weight,
                "weighted_value": str(h.weighted_value),
                "block": h.block,
                "flags": int(h.flags),
            }
            for h in health.holdings
        ],
        "positions": [
            {
                "asset": p.asset,
                "chain": p.chain,
                "size": p.size,
                "entry_price": p.entry_price,
                "mark": p.mark,
                "notional": str(p.notional),
                "unrealized_pnl": str(p.unrealized_pnl),
                "mmr": p.mmr,
                "maintenance": str(p.maintenance),
                "flags": int(p.flags),
            }
            for p in health.positions
        ],
        "risk": None if health.risk is None else risk_record(health.risk),
    }


def risk_record(risk: AccountRisk) -> dict[str, Any]:
    """``AccountRisk`` in its stored form (inside the breakdown); ``documents`` renders it."""
    return {
        "model": risk.model.value,
        "var_99": risk.var_99,
        "es_975": risk.es_975,
        "options_value": str(risk.options_value),
        "groups": {
            name: {
                "scan_range": g.scan_range,
                "loss": g.loss,
                "loss_latency": g.loss_latency,
                "delta": g.delta,
                "gamma": g.gamma,
                "vega": g.vega,
                "horizon_s": g.horizon_s,
            }
            for name, g in risk.groups.items()
        },
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleContext:
    """What one engine cycle was computed from: per-chain blocks, per-asset prices, its time.

    ``key`` identifies the cycle; writing the same cycle again (same key) changes nothing.
    By default it is derived from the whole context, time included.
    """

    at: float
    blocks: Mapping[str, int]
    prices: Mapping[str, Decimal | float | str | None] = field(default_factory=dict)
    key: str = ""

    def prices_json(self) -> dict[str, str | None]:
        """Prices as exact strings (``None`` for an asset without a price)."""
        return {a: None if p is None else str(p) for a, p in sorted(self.prices.items())}

    def cycle_key(self) -> str:
        """``key`` or a digest of the context."""
        if self.key:
            return self.key
        canonical = json.dumps(
            [repr(self.at), sorted(self.blocks.items()), self.prices_json()], sort_keys=True
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]
