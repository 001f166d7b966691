"""What the demo shows: a snapshot of the running daemon (``observe``), the events worth a log
line between two snapshots (``changes``), and two renderings: a full-screen view redrawn every
second, and one summary line for logs and CI (``--no-view``).

Everything is read from the ``Daemon`` object in-process (chain and price documents, the
engine's result arrays); the HTTP API is left to the user.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from daemon.service import Daemon
from demo.world import CHAIN_SPECS, DemoWorld
from margin.kernel import BoolArray, FlagArray
from margin.model import Flag, MarginModel, flag_names

TOP_ACCOUNTS = 5
RECENT_EVENTS = 10
COUNTED_FLAGS = (
    Flag.LIQUIDATABLE,
    Flag.LATENCY_RISK,
    Flag.STALE_CHAIN,
    Flag.STALE_PRICE,
    Flag.ORACLE_TRIPPED,
)
HELD = "held"  # liquidatable but not actionable (a suspicious price holds it back)
ACTIONABLE = "actionable"
JUMP_UNCONFIRMED = "JUMP_UNCONFIRMED"  # a TRIPPED round's sources: shown as "confirming"
COUNT_NAMES = (*(f.name or "" for f in COUNTED_FLAGS), HELD, ACTIONABLE)
CLEAR = "\x1b[2J\x1b[H"
BOLD, RED, YELLOW, GREEN, DIM, RESET = (
    "\x1b[1m",
    "\x1b[31m",
    "\x1b[33m",
    "\x1b[32m",
    "\x1b[2m",
    "\x1b[0m",
)
_BLOCK_TIMES = {s.name: s.block_time_s for s in CHAIN_SPECS}
_LATENCIES = {s.name: s.liquidation_latency_s for s in CHAIN_SPECS}


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One chain as the watcher sees it."""

    name: str
    head: int | None
    read: int | None
    lag_s: float | None
    stale: bool
    reorgs: int
    producing: bool  # the demo's block producer is running (False: stalled on purpose)


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One asset's latest oracle round."""

    asset: str
    price: str | None
    status: str
    hold_reason: str | None
    used: tuple[str, ...]
    dropped: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TopAccount:
    """A liquidatable account, for the ranking by shortfall."""

    account: str
    health: float
    shortfall_usd: float
    flags: tuple[str, ...]
    actionable: bool


@dataclass(frozen=True, slots=True)
class DemoState:
    """Everything one frame shows."""

    elapsed_s: float
    phase: str
    accounts: int
    chains: tuple[ChainRow, ...]
    prices: tuple[PriceRow, ...]
    counts: Mapping[str, int]
    top: tuple[TopAccount, ...]
    cycles: int = 0
    peaks: Mapping[str, int] = field(default_factory=dict)
    saved: tuple[SavedAccount, ...] = ()
    saved_count: int | None = None
    """``--model portfolio``: accounts liquidatable under flat weights but not under the
    portfolio model (``None`` under the other models)."""


@dataclass(frozen=True, slots=True)
class SavedAccount:
    """An account the portfolio model keeps healthy that flat weights would liquidate."""

    account: str
    health: float
    weighted_health: float
    weighted_shortfall_usd: float


def _counts(flags: FlagArray, actionable: BoolArray) -> dict[str, int]:
    counts = {f.name or "": int(np.count_nonzero(flags & int(f))) for f in COUNTED_FLAGS}
    liquidatable = (flags & int(Flag.LIQUIDATABLE)) != 0
    counts[HELD] = int(np.count_nonzero(liquidatable & ~actionable))
    counts[ACTIONABLE] = int(np.count_nonzero(actionable))
    return counts


def observe(
    daemon: Daemon, world: DemoWorld, *, elapsed_s: float, phase: str, peaks: dict[str, int]
) -> DemoState:
    """A snapshot of the daemon's live state; ``peaks`` (the highest counts so far) is
    updated in place."""
    chains = tuple(
        ChainRow(
            name=str(doc["name"]),
            head=_int(doc.get("head")),
            read=_int(doc.get("last_read_block")),
            lag_s=_float(doc.get("lag_s")),
            stale=bool(doc.get("stale")),
            reorgs=_int(doc.get("reorgs")) or 0,
            producing=not world.chain(str(doc["name"])).producer.stalled,
        )
        for doc in daemon.chain_statuses()
    )
    prices = tuple(
        PriceRow(
            asset=str(doc["asset"]),
            price=None if doc.get("price") is None else str(doc["price"]),
            status=str(doc["status"]),
            hold_reason=None if doc.get("hold_reason") is None else str(doc["hold_reason"]),
            used=tuple(str(u) for u in _list(doc.get("used"))),
            dropped={str(k): str(v) for k, v in _dict(doc.get("dropped")).items()},
        )
        for doc in daemon.price_statuses() or []
    )
    counts: dict[str, int] = dict.fromkeys(COUNT_NAMES, 0)
    top: tuple[TopAccount, ...] = ()
    accounts, cycles = 0, 0
    if daemon.loop is not None:
        engine = daemon.loop.engine
        table = engine.results
        n = min(len(table.flags), len(engine.accounts))
        accounts, cycles = n, daemon.loop.stats.cycles
        flags, actionable = table.flags[:n], table.actionable[:n]
        counts = _counts(flags, actionable)
        liquidatable = np.flatnonzero(flags & int(Flag.LIQUIDATABLE))
        ranked = liquidatable[np.argsort(-table.shortfall[liquidatable], kind="stable")]
        scale = 10**daemon.config.margin.value_decimals
        top = tuple(
            TopAccount(
                account=engine.accounts[i],
                health=float(table.health[i]),
                shortfall_usd=float(table.shortfall[i]) / scale,
                flags=tuple(flag_names(Flag(int(flags[i])))),
                actionable=bool(actionable[i]),
            )
            for i in ranked[:TOP_ACCOUNTS].tolist()
        )
    saved: tuple[SavedAccount, ...] = ()
    saved_count = None
    if daemon.loop is not None and daemon.config.margin.model is MarginModel.PORTFOLIO:
        saved, saved_count = _saved(daemon, n)
        peaks["saved_by_portfolio"] = max(peaks.get("saved_by_portfolio", 0), saved_count)
    for name, count in counts.items():
        peaks[name] = max(peaks.get(name, 0), count)
    return DemoState(
        elapsed_s=elapsed_s,
        phase=phase,
        accounts=accounts,
        chains=chains,
        prices=prices,
        counts=counts,
        top=top,
        cycles=cycles,
        peaks=dict(peaks),
        saved=saved,
        saved_count=saved_count,
    )


def _saved(daemon: Daemon, n: int) -> tuple[tuple[SavedAccount, ...], int]:
    """Accounts liquidatable under flat weights, not under the portfolio model: the top ones
    by their flat-weight shortfall, and how many there are."""
    assert daemon.loop is not None
    engine = daemon.loop.engine
    table = engine.results
    weighted, _ = engine.evaluate_under(weighted=True)
    under_weights = (weighted.flags[:n] & int(Flag.LIQUIDATABLE)) != 0
    under_grid = (table.flags[:n] & int(Flag.LIQUIDATABLE)) != 0
    saved = np.flatnonzero(under_weights & ~under_grid)
    ranked = saved[np.argsort(-weighted.shortfall[saved], kind="stable")]
    scale = 10**daemon.config.margin.value_decimals
    top = tuple(
        SavedAccount(
            account=engine.accounts[i],
            health=float(table.health[i]),
            weighted_health=float(weighted.health[i]),
            weighted_shortfall_usd=float(weighted.shortfall[i]) / scale,
        )
        for i in ranked[:TOP_ACCOUNTS].tolist()
    )
    return top, len(saved)


def changes(before: DemoState | None, after: DemoState) -> list[str]:
    """Log lines for what changed between two snapshots: price status, sources dropped or
    back, chains going stale or catching up."""
    if before is None:
        return []
    lines: list[str] = []
    old_prices = {p.asset: p for p in before.prices}
    for p in after.prices:
        old = old_prices.get(p.asset)
        if old is None:
            continue
        if old.status != p.status:
            why = f" ({p.hold_reason})" if p.hold_reason else ""
            lines.append(f"{p.asset} price {old.status} → {p.status}{why}")
        for source, reason in p.dropped.items():
            # JUMP_UNCONFIRMED marks every source of a TRIPPED round: the status line says it.
            if old.dropped.get(source) != reason and reason.upper() != JUMP_UNCONFIRMED:
                lines.append(f"{p.asset}: source {source} dropped ({reason})")
    old_chains = {c.name: c for c in before.chains}
    for c in after.chains:
        was = old_chains.get(c.name)
        if was is not None and was.stale != c.stale:
            state = f"STALE (lag {_secs(c.lag_s)})" if c.stale else "caught up, no longer stale"
            lines.append(f"chain {c.name} {state}")
    return lines


def summary_line(state: DemoState) -> str:
    """One line with the essentials (``--no-view``); ``key=value`` words, easy to grep."""
    prices = " ".join(
        f"{p.asset}={_price(p.price)}:{p.status}"
        + (
            f" dropped={','.join(f'{s}:{r}' for s, r in sorted(p.dropped.items()))}"
            if p.dropped
            else ""
        )
        for p in state.prices
    )
    chains = " ".join(
        f"{c.name}#{c.read or 0}:lag={_secs(c.lag_s)}{':STALE' if c.stale else ''}"
        for c in state.chains
    )
    counts = " ".join(f"{name}={state.counts.get(name, 0)}" for name in COUNT_NAMES)
    if state.saved_count is not None:
        counts += f" saved_by_portfolio={state.saved_count}"
    return f"[t+{state.elapsed_s:6.1f}s] phase={state.phase} | {prices} | {chains} | {counts}"


def render_frame(
    state: DemoState, *, title: str, api: str, events: Sequence[tuple[float, str]]
) -> str:
    """The full-screen view (starts with an ANSI clear)."""
    out = [
        f"{CLEAR}{BOLD} crossmargin demo{RESET} — {title}",
        f" t+{state.elapsed_s:5.0f}s   phase {BOLD}{state.phase.upper()}{RESET}   "
        f"API {api}   engine cycles {state.cycles}   {DIM}Ctrl-C to stop{RESET}",
        "",
        f"{BOLD} {'chain':<10}{'block':>7}{'head':>8}{'read':>8}{'lag s':>8}"
        f"{'latency':>9}{'reorgs':>8}  state{RESET}",
    ]
    for c in state.chains:
        mark = f"{RED}STALE{RESET}" if c.stale else f"{GREEN}ok{RESET}"
        if not c.producing:
            mark += f" {YELLOW}(stalled: no blocks){RESET}"
        out.append(
            f" {c.name:<10}{_BLOCK_TIMES.get(c.name, 0):>6g}s{c.head or 0:>8}{c.read or 0:>8}"
            f"{_secs(c.lag_s):>8}{_LATENCIES.get(c.name, 0):>8g}s{c.reorgs:>8}  {mark}"
        )
    out += ["", f"{BOLD} {'asset':<7}{'price':>12}  {'status':<22}{'used':<46}dropped{RESET}"]
    for p in state.prices:
        color = GREEN if p.status == "OK" else RED if p.status == "TRIPPED" else YELLOW
        status = p.status + (f" {p.hold_reason}" if p.hold_reason else "")
        confirming = [s for s, r in p.dropped.items() if r.upper() == JUMP_UNCONFIRMED]
        used = ", ".join(p.used) or (
            f"none: {len(confirming)} confirming the jump" if confirming else "-"
        )
        dropped = ", ".join(
            f"{s} ({r})" for s, r in sorted(p.dropped.items()) if s not in confirming
        )
        out.append(
            f" {p.asset:<7}{_price(p.price):>12}  {color}{status:<22}{RESET}"
            f"{used:<46}{dropped or '-'}"
        )
    out += [
        "",
        f"{BOLD} {'accounts (' + str(state.accounts) + ')':<40}{'now':>6}{'peak':>7}{RESET}",
    ]
    for name in COUNT_NAMES:
        count = state.counts.get(name, 0)
        label = {HELD: "held (liquidatable, not actionable)"}.get(name, name)
        color = RED if count and name in ("LIQUIDATABLE", HELD) else YELLOW if count else ""
        out.append(f" {label:<40}{color}{count:>6}{RESET}{state.peaks.get(name, 0):>7}")
    out += ["", f"{BOLD} top liquidatable by shortfall{RESET}"]
    if not state.top:
        out.append(f" {DIM}none{RESET}")
    for t in state.top:
        held = "" if t.actionable else f" {YELLOW}held{RESET}"
        out.append(
            f" {t.account}  health {_health(t.health)}  shortfall ${t.shortfall_usd:>12,.2f}  "
            f"{' '.join(t.flags)}{held}"
        )
    if state.saved_count is not None:
        out += [
            "",
            f"{BOLD} healthy under portfolio, liquidatable under weighted "
            f"({state.saved_count} now, peak {state.peaks.get('saved_by_portfolio', 0)}){RESET}",
        ]
        if not state.saved:
            out.append(f" {DIM}none{RESET}")
        for s in state.saved:
            out.append(
                f" {s.account}  portfolio health {GREEN}{_health(s.health)}{RESET}  "
                f"weighted health {RED}{_health(s.weighted_health)}{RESET}  "
                f"weighted shortfall ${s.weighted_shortfall_usd:>12,.2f}"
            )
    out += ["", f"{BOLD} events{RESET}"]
    out += [f" {DIM}t+{at:5.1f}s{RESET} {message}" for at, message in events[-RECENT_EVENTS:]]
    return "\n".join(out) + "\n"


def _price(text: str | None) -> str:
    return "-" if text is None else f"{float(text):,.2f}"


def _health(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.3f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _dict(value: object) -> Mapping[object, object]:
    return value if isinstance(value, Mapping) else {}
