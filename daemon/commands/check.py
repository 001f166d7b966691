"""``crossmargin check``: validate the config and every connection the daemon will need.

Each check is one row — ``component``, ``status`` (``ok``, ``warn``, ``fail`` or ``skipped``)
and ``detail`` — so an operator sees at once which RPC URL, token, price source, database or
broker is wrong and why. The checks run concurrently, each under its own time budget, so a hung
endpoint costs at most that budget and never hides the other rows. What each check does is in
``daemon.commands.probes``; this module plans them from the config, runs them and prints them.

URLs are shown redacted and request headers never; an unexpected exception is reported by its
type alone, because aiohttp and friends put full URLs in their messages. Exit code: 1 when any
row fails, else 0 (warnings do not fail the check).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TextIO

from chains.discovery import ZERO_ADDRESS
from chains.rpc import RpcPool
from core.errors import CrossmarginError
from core.redaction import redact_url, scrub
from daemon.commands.probes import (
    CheckStatus,
    Outcome,
    mqtt_not_configured,
    probe_database,
    probe_mqtt,
    probe_rpc,
    probe_sequencer,
    probe_source,
    probe_token,
    probe_ws,
)
from daemon.commands.venue_probe import probe_venue
from daemon.config.model import ChainConfig, Config
from daemon.store.urls import shown_url
from daemon.wiring import chain_pool
from oracles.sources.httpclient import JsonHttpClient

__all__ = [
    "DEFAULT_CHECK_TIMEOUT_S",
    "CheckRow",
    "CheckStatus",
    "print_rows",
    "run_check",
    "run_checks",
]

DEFAULT_CHECK_TIMEOUT_S = 10.0  # budget of one check (connect + answer), whatever it waits on
EXIT_OK = 0
EXIT_FAILED = 1

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One line of the report: what was checked, how it went, and the evidence or the error."""

    component: str
    status: CheckStatus
    detail: str

    def as_json(self) -> dict[str, str]:
        """The row as a JSON object (``--json`` prints one per line)."""
        return {"component": self.component, "status": str(self.status), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class _Check:
    component: str
    run: Callable[..., Awaitable[Outcome]]
    chain: str | None = None
    """Run as ``run(pool)`` with a pool over the chain's working URLs, once they are known."""


async def run_checks(
    config: Config, *, timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
) -> list[CheckRow]:
    """Run every check concurrently; rows in config order (chains, assets, database, broker).

    Checks that read a chain through its pool (tokens, on-chain feeds, sequencer) start once
    that chain's URL checks are done, over the URLs that passed: a dead or hung URL shows on
    its own row instead of in every token's. Worst case, a run takes two ``timeout_s``.
    """
    async with contextlib.AsyncExitStack() as stack:
        chains = _ChainAccess(config, stack, timeout_s)
        http = await stack.enter_async_context(
            JsonHttpClient(max_connections=config.oracle_polling.max_concurrency)
        )
        parts: list[Awaitable[list[CheckRow]]] = []
        for chain in config.chains:
            parts.append(chains.rpc_rows(chain.name))
            parts.extend(
                _run_all([check], timeout_s, chains) for check in _chain_checks(config, chain)
            )
        parts.extend(
            _run_all([check], timeout_s, chains) for check in _other_checks(config, http, timeout_s)
        )
        rows = [row for part in await asyncio.gather(*parts) for row in part]
    summary = (
        f"{len(config.chains)} chain(s), {len(config.tokens)} token(s), "
        f"{len(config.assets)} asset(s), {len(config.venues)} venue(s)"
    )
    return [CheckRow("config", CheckStatus.OK, summary), *rows]


class _ChainAccess:
    """Each chain's RPC URL checks (run once), then one pool over the URLs that passed."""

    def __init__(self, config: Config, stack: contextlib.AsyncExitStack, timeout_s: float) -> None:
        self._config = config
        self._stack = stack
        self._timeout_s = timeout_s
        self._rows: dict[str, asyncio.Task[list[CheckRow]]] = {}
        self._pools: dict[str, asyncio.Task[RpcPool | None]] = {}

    def rpc_rows(self, name: str) -> asyncio.Task[list[CheckRow]]:
        """The rows of ``name``'s RPC URLs (the checks start on the first call)."""
        if name not in self._rows:
            chain = self._config.chain(name)
            checks = [
                _Check(f"chain {name} rpc {redact_url(url)}", partial(probe_rpc, chain, url))
                for url in chain.rpc_urls
            ]
            coro = _run_all(checks, self._timeout_s, self)
            self._rows[name] = asyncio.create_task(coro, name=f"check-rpc:{name}")
        return self._rows[name]

    def pool(self, name: str) -> asyncio.Task[RpcPool | None]:
        """A pool over ``name``'s URLs that passed their check; ``None`` if none did."""
        if name not in self._pools:
            self._pools[name] = asyncio.create_task(self._open(name), name=f"check-pool:{name}")
        return self._pools[name]

    async def _open(self, name: str) -> RpcPool | None:
        chain, rows = self._config.chain(name), await self.rpc_rows(name)
        urls = [
            url
            for url, row in zip(chain.rpc_urls, rows, strict=True)
            if row.status is CheckStatus.OK
        ]
        if not urls:
            return None
        return await self._stack.enter_async_context(
            chain_pool(chain, urls=urls, timeout_s=self._timeout_s)
        )


def _chain_checks(config: Config, chain: ChainConfig) -> Iterator[_Check]:
    prefix = f"chain {chain.name}"
    if chain.ws_url is not None:
        yield _Check(f"{prefix} ws {redact_url(chain.ws_url)}", partial(probe_ws, chain.ws_url))
    # balanceOf is probed with a watched account (the zero address without a static list).
    holder = config.accounts[0] if config.accounts else ZERO_ADDRESS
    for token in config.tokens_on(chain.name):
        component = f"{prefix} token {token.symbol or token.asset} {token.address}"
        probe = partial(probe_token, chain, token, account=holder)
        yield _Check(component, probe, chain.name)
    if (feed := chain.sequencer_uptime_feed) is not None:
        yield _Check(
            f"{prefix} sequencer {feed}", partial(probe_sequencer, chain, feed), chain.name
        )
    known = frozenset(a.symbol for a in config.assets)
    for venue in config.venues:
        if venue.chain == chain.name:
            component = f"{prefix} venue {venue.name} {venue.kind} {venue.address}"
            yield _Check(component, partial(probe_venue, chain, venue, known), chain.name)


def _other_checks(config: Config, http: JsonHttpClient, timeout_s: float) -> Iterator[_Check]:
    for asset in config.assets:
        for spec in asset.sources:
            component = f"asset {asset.symbol} source {spec.source_id()}"
            chain = getattr(spec, "chain", None)
            yield _Check(component, partial(probe_source, asset, spec, http), chain)
    url = config.database_url or ""
    yield _Check(f"database {shown_url(url)}", partial(probe_database, url))
    if config.mqtt.url is None:
        yield _Check("mqtt broker", mqtt_not_configured)
    else:
        check = partial(probe_mqtt, config.mqtt.url, timeout_s)
        yield _Check(f"mqtt broker {redact_url(config.mqtt.url)}", check)


async def _run_all(checks: list[_Check], timeout_s: float, chains: _ChainAccess) -> list[CheckRow]:
    return list(await asyncio.gather(*(_run_one(check, timeout_s, chains) for check in checks)))


async def _run_one(check: _Check, timeout_s: float, chains: _ChainAccess) -> CheckRow:
    args: tuple[RpcPool, ...] = ()
    if check.chain is not None:
        pool = await chains.pool(check.chain)  # not on the clock: the URL checks have their own
        if pool is None:
            detail = f"no working RPC URL on chain {check.chain}"
            return CheckRow(check.component, CheckStatus.SKIPPED, detail)
        args = (pool,)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            status, detail = await check.run(*args)
    except TimeoutError:
        status, detail = CheckStatus.FAIL, f"no answer within {timeout_s:g}s"
    except CrossmarginError as exc:  # messages are built redacted (core.errors)
        status, detail = CheckStatus.FAIL, str(exc)
    except Exception as exc:  # noqa: BLE001 - a check reports every fault as a row, never crashes
        status, detail = CheckStatus.FAIL, f"unexpected {type(exc).__name__}"
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    log.info("check_done component=%s status=%s ms=%.0f", check.component, status, elapsed_ms)
    return CheckRow(check.component, status, scrub(detail))  # servers may echo a key back


# -- output ------------------------------------------------------------------------------------


def print_rows(rows: list[CheckRow], *, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Print the report (JSON lines or an aligned table); return the exit code."""
    if as_json:
        for row in rows:
            out.write(json.dumps(row.as_json()) + "\n")
    else:
        width = max(len("COMPONENT"), *(len(row.component) for row in rows))
        out.write(f"{'COMPONENT':<{width}}  {'STATUS':<7}  DETAIL\n")
        for row in rows:
            out.write(f"{row.component:<{width}}  {row.status:<7}  {row.detail}\n")
    out.flush()
    failed = any(row.status is CheckStatus.FAIL for row in rows)
    return EXIT_FAILED if failed else EXIT_OK


async def run_check(
    config: Config,
    *,
    as_json: bool = False,
    timeout_s: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """``crossmargin check``: run every check, print the report, return the exit code."""
    rows = await run_checks(config, timeout_s=timeout_s or DEFAULT_CHECK_TIMEOUT_S)
    return print_rows(rows, as_json=as_json, out=out)
