"""The store at a glance (``GET /v1/summary``): accounts by flag now and over time, the
health distribution, latency-risky accounts by chain — aggregated in SQL, both dialects.

Flag counts over time are not sampled: they are rebuilt from the transitions, which record
every change of every account's flags (an account first stored counts as coming from no
flags). The count of flag F at time t is the count now minus the changes stored after t:
``count_F(t) = count_F(now) - Σ [F ∈ to_flags] - [F ∈ from_flags]`` over transitions with
``at > t``. The changes are summed per cycle in SQL, in the same snapshot as the counts now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.store.records import StoredCycle
from daemon.store.schema import account_health, balances, health_transitions, positions
from daemon.store.types import Timestamp
from margin.model import Flag

HEALTH_EDGES = (0.5, 0.8, 0.9, 1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0)
"""Upper bounds of the health histogram's bins (the last bin is ≥ 3); no debt and unknown
health are counted apart."""
FLAGS = tuple(f for f in Flag if f)
_NO_DEBT_BIN = -1
_UNKNOWN_BIN = -2


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """Accounts carrying each flag at ``at``."""

    at: float
    flags: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``read_summary`` returns."""

    accounts: int
    flags: Mapping[str, int]
    actionable: int  # liquidatable with no held reason
    histogram: Sequence[tuple[float | None, float | None, int]]  # (from, to, accounts)
    no_debt: int
    health_unknown: int
    latency_risk_by_chain: Mapping[str, int]
    history: Sequence[HistoryPoint]
    cycle: StoredCycle | None = None  # the last stored cycle: what the figures are as of


def _has(column: sa.ColumnElement[int], flag: Flag) -> sa.ColumnElement[bool]:
    return column.bitwise_and(int(flag)) != 0


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


async def _counts(conn: AsyncConnection) -> tuple[int, dict[str, int], int]:
    h = account_health.c
    columns = [sa.func.count().label("accounts")]
    columns += [_count_if(_has(h.flags, f)).label(f"f{int(f)}") for f in FLAGS]
    columns.append(
        _count_if(sa.and_(_has(h.flags, Flag.LIQUIDATABLE), h.actionable.is_(True))).label("act")
    )
    row = (await conn.execute(sa.select(*columns).select_from(account_health))).one()
    mapping = row._mapping
    flags = {str(f.name): int(mapping[f"f{int(f)}"]) for f in FLAGS}
    return int(mapping["accounts"]), flags, int(mapping["act"])


async def _histogram(
    conn: AsyncConnection,
) -> tuple[list[tuple[float | None, float | None, int]], int, int]:
    h = account_health.c
    whens: list[tuple[sa.ColumnElement[bool], int]] = [
        (sa.and_(h.health.is_(None), _has(h.flags, Flag.DEBT_UNKNOWN)), _UNKNOWN_BIN),
        (h.health.is_(None), _NO_DEBT_BIN),
    ]
    whens += [(h.health < edge, i) for i, edge in enumerate(HEALTH_EDGES)]
    bin_of = sa.case(*whens, else_=len(HEALTH_EDGES)).label("bin")
    rows = (await conn.execute(sa.select(bin_of, sa.func.count()).group_by(bin_of))).all()
    found = {int(b): int(n) for b, n in rows}
    lows: list[float | None] = [None, *HEALTH_EDGES]
    highs: list[float | None] = [*HEALTH_EDGES, None]
    histogram = [(lows[i], highs[i], found.get(i, 0)) for i in range(len(HEALTH_EDGES) + 1)]
    return histogram, found.get(_NO_DEBT_BIN, 0), found.get(_UNKNOWN_BIN, 0)


async def _latency_risk_by_chain(conn: AsyncConnection) -> dict[str, int]:
    """Latency-risky accounts per chain they hold something on (a balance that may be
    non-zero, or a position there)."""
    b, p, h = balances.c, positions.c, account_health.c
    held = sa.union(
        sa.select(b.account, b.chain).where(sa.or_(b.raw.is_(None), b.raw != 0)),
        sa.select(p.account, p.chain),
    ).subquery("held")
    query = (
        sa.select(held.c.chain, sa.func.count(sa.distinct(held.c.account)))
        .select_from(held.join(account_health, h.account == held.c.account))
        .where(_has(h.flags, Flag.LATENCY_RISK))
        .group_by(held.c.chain)
        .order_by(held.c.chain)
    )
    return {str(chain): int(n) for chain, n in (await conn.execute(query)).all()}


async def _changes_since(conn: AsyncConnection, since: float) -> list[tuple[float, list[int]]]:
    """(cycle time, change of each flag's count) of every cycle after ``since``, newest
    first."""
    t = health_transitions.c
    deltas = [
        sa.func.sum(
            sa.case((_has(t.to_flags, f), 1), else_=0)
            - sa.case((_has(t.from_flags, f), 1), else_=0)
        ).label(f"d{int(f)}")
        for f in FLAGS
    ]
    query = (
        sa.select(sa.func.max(t.at, type_=Timestamp()).label("at"), *deltas)
        .where(t.at > since)
        .group_by(t.cycle_id)
        .order_by(t.cycle_id.desc())
    )
    rows = (await conn.execute(query)).all()
    return [(float(row[0]), [int(v or 0) for v in row[1:]]) for row in rows]


def history(
    now_counts: Mapping[str, int],
    changes: Sequence[tuple[float, Sequence[int]]],
    *,
    now: float,
    window_s: float,
    points: int,
) -> list[HistoryPoint]:
    """Counts at ``points`` evenly spaced times ending at ``now``, from the counts now and the
    changes of later cycles (newest first)."""
    step = window_s / (points - 1)
    times = [now - window_s + k * step for k in range(points)]
    counts = [now_counts[str(f.name)] for f in FLAGS]
    out: list[HistoryPoint] = []
    i = 0
    for at in reversed(times):  # newest first: undo every change stored after ``at``
        while i < len(changes) and changes[i][0] > at:
            counts = [c - d for c, d in zip(counts, changes[i][1], strict=True)]
            i += 1
        out.append(HistoryPoint(at, {str(f.name): c for f, c in zip(FLAGS, counts, strict=True)}))
    out.reverse()
    return out


async def read_summary(
    conn: AsyncConnection, *, now: float, window_s: float, points: int
) -> Summary:
    """Every figure of the summary, read in ``conn``'s one transaction (one snapshot)."""
    accounts, flags, actionable = await _counts(conn)
    histogram, no_debt, unknown = await _histogram(conn)
    by_chain = await _latency_risk_by_chain(conn)
    changes = await _changes_since(conn, now - window_s)
    return Summary(
        accounts=accounts,
        flags=flags,
        actionable=actionable,
        histogram=histogram,
        no_debt=no_debt,
        health_unknown=unknown,
        latency_risk_by_chain=by_chain,
        history=history(flags, changes, now=now, window_s=window_s, points=points),
    )
