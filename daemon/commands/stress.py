"""``crossmargin stress``: one full pass like ``crossmargin health`` — balance snapshot, oracle
round, margin engine — then the book under the given shocks (``margin.stress``).

    crossmargin stress -c config.yaml --shock ETH=-30% --vol ETH=+50% [--json]

A shock is ``ASSET=±N%`` (or a plain fraction, ``ETH=-0.3``), each within [−99 %, +1,000 %];
``--shock`` moves prices, ``--vol`` the volatility the engine uses and options' implied vols
(under ``weighted`` and ``tiered``, without options, that moves only latency risk). The text
form prints the counts, the totals and the newly liquidatable accounts (largest shortfall
first); ``--json`` prints the document of ``POST /v1/stress``. Nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from daemon.commands.health import build_engine, market_pass
from daemon.commands.snapshot import ChainSnapshot
from daemon.config.model import Config
from daemon.stress_report import stress_document
from margin.stress import Shocks, StressInputError, StressReport, run_stress

EXIT_OK = 0
EXIT_BAD_SHOCK = 2
_SHOCK = re.compile(r"(?P<asset>[^=\s]+)=(?P<number>[+-]?[0-9]+(\.[0-9]+)?)(?P<percent>%?)")
SHOCK_SYNTAX = "expected ASSET=±N% such as ETH=-30% (or a fraction: ETH=-0.3)"
_OPTIONS = {"price_shocks": "--shock", "vol_shocks": "--vol"}


def parse_shock(text: str) -> tuple[str, float]:
    """``ETH=-30%`` → ``("ETH", -0.3)``; ``argparse.ArgumentTypeError`` quoting ``text``."""
    match = _SHOCK.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{SHOCK_SYNTAX} (got {text!r})")
    value = float(match["number"])
    return match["asset"], value / 100 if match["percent"] else value


def build_shocks(
    prices: Sequence[tuple[str, float]], vols: Sequence[tuple[str, float]], assets: set[str]
) -> Shocks:
    """Validated shocks; ``ValueError`` naming the option and asset (``--shock DOGE: …``)."""
    maps: list[dict[str, float]] = [{}, {}]
    for option, given, into in (("--shock", prices, maps[0]), ("--vol", vols, maps[1])):
        for asset, value in given:
            if asset in into:
                raise ValueError(f"{option} {asset}: given twice")
            into[asset] = value
    try:
        shocks = Shocks(price=maps[0], vol=maps[1])
        shocks.check_assets(assets)
    except StressInputError as exc:
        kind, _, asset = exc.field.partition(".")
        where = f"{_OPTIONS[kind]} {asset}".strip()
        problem = exc.problem.replace("from -0.99 to 10.0", "from -99% to +1000%")
        if not asset:
            problem = f"{problem} (--shock and --vol together)"
        if "unknown asset" in problem:
            problem = f"{problem}; configured: {', '.join(sorted(assets))}"
        raise ValueError(f"{where}: {problem}") from None
    return shocks


async def stress_pass(config: Config, shocks: Shocks) -> tuple[StressReport, list[ChainSnapshot]]:
    """One snapshot and oracle round, the engine over them, then the stress pass."""
    m = await market_pass(config)
    engine = build_engine(config, m.snapshots, m.prices, m.sequencers, m.venues, at=m.at)
    return run_stress(engine.snapshot(), shocks), m.snapshots


def configured_assets(config: Config) -> set[str]:
    """Assets a shock may name: priced (``assets[].symbol``) or held (``tokens[].asset``)."""
    return {a.symbol for a in config.assets} | {t.asset for t in config.tokens}


def run_stress_command(
    config: Config,
    *,
    prices: Sequence[tuple[str, float]],
    vols: Sequence[tuple[str, float]],
    as_json: bool,
    out: TextIO = sys.stdout,
) -> int:
    """Validate the shocks (exit 2 naming the bad one), run the pass, print it (exit 0)."""
    try:
        shocks = build_shocks(prices, vols, configured_assets(config))
    except ValueError as exc:
        sys.stderr.write(f"crossmargin: {exc}\n")
        return EXIT_BAD_SHOCK
    report, snapshots = asyncio.run(stress_pass(config, shocks))
    for snap in snapshots:
        if snap.error is not None:
            sys.stderr.write(
                f"crossmargin: chain {snap.chain.name} unreachable, valued as stale: {snap.error}\n"
            )
    if as_json:
        out.write(json.dumps(stress_document(report), allow_nan=False) + "\n")
    else:
        print_report(report, out)
    return EXIT_OK


def _health(value: float) -> str:
    if math.isnan(value):
        return "unknown"
    return "inf" if math.isinf(value) else f"{value:.4f}"


def print_report(report: StressReport, out: TextIO) -> None:
    """The text form: counts, totals, then the newly liquidatable accounts."""
    out.write(
        f"accounts {report.accounts}\n"
        f"liquidatable before {report.liquidatable_before} after {report.liquidatable_after} "
        f"(newly {report.newly_liquidatable_count})\n"
        f"latency risk before {report.latency_risk_before} after {report.latency_risk_after}\n"
        f"total shortfall after {report.total_shortfall_after:f}\n"
        f"bad debt after {report.bad_debt_after:f}\n"
    )
    for item in report.newly_liquidatable:
        out.write(
            f"{item.account.lower()} health {_health(item.health_before):>10} -> "
            f"{_health(item.health_after):>10} shortfall {item.shortfall_after:f}\n"
        )
