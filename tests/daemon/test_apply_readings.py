"""``apply_readings`` (a watcher update into the engine, columns instead of ``Holding``s) leaves
the engine exactly as ``load_holdings(holdings(…))`` does: first sweeps, later sweeps, failed
reads, raws beyond 64 bits, reorgs."""

from __future__ import annotations

import dataclasses

import pytest

from chains.readings import ReadColumns, TokenReads
from chains.watcher import Reading
from core.domain import Role
from daemon.risk_inputs import apply_readings
from margin.engine import MarginEngine
from margin.model import ChainInput, Holding, PriceInput, TokenRisk

WETH = "0x" + "e7" * 20
USDC = "0x" + "d5" * 20
ODD = "0x" + "0d" * 20  # decimals unknown: every read counts as failed
ACCOUNTS = [f"0x{i:040x}" for i in range(1, 41)]

Readings = dict[tuple[str, str], Reading]


def holdings(chain: str, readings: Readings) -> list[Holding]:
    """The readings as one ``Holding`` each: the path ``apply_readings`` must equal."""
    return [
        Holding(
            account=account,
            chain=chain,
            token=token,
            raw=r.raw,
            block=r.block_number,
            read_failed=r.raw is None,
        )
        for (account, token), r in readings.items()
    ]


def engine() -> MarginEngine:
    tokens = [
        TokenRisk(
            chain="l1", token=WETH, asset="ETH", role=Role.COLLATERAL, weight=0.8, decimals=18
        ),
        TokenRisk(
            chain="l1", token=USDC, asset="USDC", role=Role.LIABILITY, weight=1.0, decimals=6
        ),
        TokenRisk(
            chain="l1", token=ODD, asset="ETH", role=Role.COLLATERAL, weight=0.5, decimals=None
        ),
    ]
    book = MarginEngine(tokens=tokens, chains=[ChainInput(name="l1", liquidation_latency_s=1)])
    book.set_prices([PriceInput(asset="ETH", price=2000.0), PriceInput(asset="USDC", price=1.0)])
    return book


def reading(raw: int | None, block: int) -> Reading:
    return Reading(raw, block, f"0x{block:064x}")


def first_sweep() -> Readings:
    """Every pair at block 10: raws small and beyond 2**64, a few failed reads."""
    readings: Readings = {}
    for i, account in enumerate(ACCOUNTS):
        weth = None if i % 13 == 5 else (i + 1) * 10**18 + i  # 10**19 and up: beyond 2**64
        readings[(account, WETH)] = reading(weth, 10)
        readings[(account, USDC)] = reading(None if i % 11 == 3 else i * 10**6 + 7, 10)
        readings[(account, ODD)] = reading(i, 10)
    return readings


def later_update() -> Readings:
    """A later cycle on rows that exist: changed and unchanged values, new failures, mixed
    blocks (a merged pending update), and an account never seen before."""
    readings: Readings = {}
    for i, account in enumerate(ACCOUNTS[::3]):
        readings[(account, WETH)] = reading(None if i % 4 == 1 else i * 10**17, 11 + i % 2)
        readings[(account, USDC)] = reading(i * 10**6 + 7, 12)
    readings[("0x" + "ab" * 20, WETH)] = reading(5 * 10**17, 12)
    return readings


def state(book: MarginEngine) -> list[object]:
    book.recompute_all()
    return [dataclasses.asdict(book.account_health(a)) for a in book.accounts]


@pytest.mark.parametrize("small_raws", [False, True])
def test_apply_readings_gives_the_engine_state_of_load_holdings(small_raws: bool) -> None:
    sweeps = [first_sweep(), later_update()]
    if small_raws:  # every raw below 2**64: the vectorized uint64 path
        sweeps = [
            {p: r if r.raw is None else r._replace(raw=r.raw % 2**60) for p, r in s.items()}
            for s in sweeps
        ]
    by_holdings, by_columns = engine(), engine()
    for readings, orphaned in zip(sweeps, [None, 10], strict=True):
        by_holdings.load_holdings(holdings("l1", readings), orphaned_above=orphaned)
        apply_readings(by_columns, "l1", readings, orphaned_above=orphaned)
        assert list(by_columns.accounts) == list(by_holdings.accounts)
        assert state(by_columns) == state(by_holdings)
    assert by_columns.read_failures() == by_holdings.read_failures() > 0


def columns(readings: Readings) -> ReadColumns:
    """The same readings as the watcher hands them over (one block per update)."""
    (block,) = {r.block_number for r in readings.values()}
    tokens: dict[str, TokenReads] = {}
    for (account, token), r in readings.items():
        column = tokens.setdefault(token, TokenReads())
        column.accounts.append(account)
        column.raws.append(r.raw)
        column.failed += r.raw is None
    return ReadColumns(block, f"0x{block:064x}", tokens)


@pytest.mark.parametrize("small_raws", [False, True])
def test_the_watchers_columns_give_the_engine_state_of_load_holdings(small_raws: bool) -> None:
    later = {p: reading(r.raw, 12) for p, r in later_update().items()}
    sweeps = [first_sweep(), later]
    if small_raws:
        sweeps = [
            {p: r if r.raw is None else r._replace(raw=r.raw % 2**60) for p, r in s.items()}
            for s in sweeps
        ]
    by_holdings, by_columns = engine(), engine()
    for readings, orphaned in zip(sweeps, [None, 10], strict=True):
        update = columns(readings)
        assert update == readings  # the same mapping
        by_holdings.load_holdings(holdings("l1", readings), orphaned_above=orphaned)
        apply_readings(by_columns, "l1", update, orphaned_above=orphaned)
        assert list(by_columns.accounts) == list(by_holdings.accounts)
        assert state(by_columns) == state(by_holdings)
    assert by_columns.read_failures() == by_holdings.read_failures() > 0


def test_a_sweep_in_parts_gives_the_engine_state_of_the_whole_sweep() -> None:
    """``ChainWatcher.sweep_parts``: runs of accounts, every token each, applied one after
    the other (the later parts go in vectorized beside the rows the first ones made)."""
    sweep = first_sweep()
    whole, in_parts = engine(), engine()
    whole.load_holdings(holdings("l1", sweep))
    runs = [ACCOUNTS[:7], ACCOUNTS[7:25], ACCOUNTS[25:]]
    for run in runs:
        apply_readings(in_parts, "l1", columns({p: r for p, r in sweep.items() if p[0] in run}))
    # (accounts may be numbered in another order: a failed read registers its account later)
    assert sorted(in_parts.accounts) == sorted(whole.accounts)
    by_account = dict(zip(in_parts.accounts, state(in_parts), strict=True))
    assert by_account == dict(zip(whole.accounts, state(whole), strict=True))
    assert in_parts.read_failures() == whole.read_failures() > 0
