"""``crossmargin prices``: run oracle rounds and print them.

The oracle is built by ``daemon.wiring.open_oracle``, as the daemon builds it. ``run_prices``
runs one round (or ``rounds``, ``interval_s`` apart: a jump beyond ``max_jump`` needs
``confirm_rounds`` of them) and prints, per asset and round, the price document of
``/v1/prices`` (``daemon.documents.price_document``) with the round number, the round's own
price and why each dropped source was dropped; then one line per chain with an uptime feed.
The exit code reflects the last round: 0 when every asset is OK, 3 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import TextIO

from core.domain import PriceStatus
from core.errors import ConfigError
from core.redaction import scrub
from daemon.config.model import Config
from daemon.documents import price_document, price_text
from daemon.wiring import open_oracle
from oracles.model import AssetPrice
from oracles.service import OracleService
from oracles.sources.chainlink import SequencerReading

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOT_OK = 3  # some asset's price is not OK (held, stale, tripped or missing)


async def run_prices(
    config: Config,
    *,
    rounds: int = 1,
    interval_s: float | None = None,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Run ``rounds`` fresh rounds and print them; the exit code of the last one."""
    if not config.assets:
        raise ConfigError("assets", "no assets configured: nothing to price")
    interval = config.oracle_polling.round_interval_s if interval_s is None else interval_s
    prices: dict[str, AssetPrice] = {}
    async with open_oracle(config) as oracle:
        for index in range(1, rounds + 1):
            if index > 1:
                await asyncio.sleep(interval)
            prices = await oracle.run_round()
            print_round(index, prices, oracle, as_json=as_json, out=out)
    ok = all(p.status is PriceStatus.OK for p in prices.values())
    return EXIT_OK if ok else EXIT_NOT_OK


def price_row(index: int, price: AssetPrice, oracle: OracleService) -> dict[str, object]:
    """The JSON line of one asset in one round."""
    details = {
        source: scrub(detail)
        for source in price.dropped
        if (detail := oracle.round_quote(price.symbol, source).detail)
    }
    return {
        "round": index,
        **price_document(price),  # the price as /v1/prices and MQTT show it
        "round_price": price_text(price.round_price),
        "details": details,
    }


def sequencer_row(index: int, reading: SequencerReading, now: float) -> dict[str, object]:
    """The JSON line of one chain's sequencer feed in one round, classified at ``now``."""
    return {
        "round": index,
        "chain": reading.chain,
        "sequencer": str(reading.status(now)),
        "started_at": reading.started_at,
        "detail": scrub(reading.detail),
    }


def print_round(
    index: int,
    prices: dict[str, AssetPrice],
    oracle: OracleService,
    *,
    as_json: bool,
    out: TextIO,
) -> None:
    """Print one round: JSON lines, or a table (one asset per line, drops indented)."""
    rows = [price_row(index, price, oracle) for price in prices.values()]
    now = time.time()
    chains = [sequencer_row(index, reading, now) for reading in oracle.sequencers.values()]
    if as_json:
        for row in [*rows, *chains]:
            out.write(json.dumps(row) + "\n")
        out.flush()
        return
    out.write(f"round {index}\n")
    for price in prices.values():
        out.write(f"  {_table_line(price, now)}\n")
        for source, why in price.dropped.items():
            detail = scrub(oracle.round_quote(price.symbol, source).detail)
            out.write(f"      dropped {source} {why}{f': {detail}' if detail else ''}\n")
    for reading in oracle.sequencers.values():
        detail = f" ({scrub(reading.detail)})" if reading.detail else ""
        out.write(f"  chain {reading.chain} sequencer {reading.status(now)}{detail}\n")
    out.flush()


def _table_line(price: AssetPrice, now: float) -> str:
    reason = f" ({price.hold_reason})" if price.hold_reason else ""
    spread = "" if price.spread is None else f" spread={price.spread:.4%}"
    age = "" if price.observed_at is None else f" age={now - price.observed_at:.0f}s"
    used = ",".join(price.used) or "-"
    shown = price_text(price.price) or "-"
    return f"{price.symbol:<10} {shown:>24} {price.status}{reason} used={used}{spread}{age}"
