"""The probes of ``crossmargin check`` (``daemon.commands.check``): one component each, one outcome.

Each probe goes through the code the daemon runs — ``RpcPool`` (which checks the chain id
before first use), the watcher's ``setup()``, the real price source classes and the sequencer
feed reader, the store's engine and migration state, aiomqtt — and returns ``(status,
detail)``. A fault may also be raised as a ``CrossmarginError`` (its message is built redacted);
the runner turns it into a failed row. Details show redacted URLs only, never headers.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import sqlalchemy as sa

from chains.contracts import multicall3_runtime
from chains.discovery import ZERO_ADDRESS
from chains.multicall import BALANCE_OF_SELECTOR, CALL_RESULT_BYTES
from chains.rpc import RpcPool
from chains.watcher import ChainWatcher
from core.errors import ExecutionReverted, RpcError
from core.redaction import redact_url, scrub
from core.requester import Requester
from core.transport import describe_transport_error
from daemon.config.assets import AssetConfig, SourceConfig
from daemon.config.model import ChainConfig, TokenConfig
from daemon.documents import price_text
from daemon.mqtt.session import BrokerAddress
from daemon.store.engine import check_reachable, create_store_engine
from daemon.store.migrate import current_revision, head_revision
from daemon.store.urls import dialect_of
from daemon.wiring import build_source, chain_pool
from oracles.sources.chainlink import SequencerUptimeFeed
from oracles.sources.httpclient import JsonHttpClient
from oracles.validity import validate

MQTT_CHECK_CLIENT_PREFIX = "crossmargin-check"
MIGRATE_HINT = "run `crossmargin migrate -c CONFIG`"


class CheckStatus(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    WARN = "warn"  # works, but needs attention (schema behind, stale price, sequencer down)
    FAIL = "fail"
    SKIPPED = "skipped"  # nothing to check (e.g. MQTT not configured)


Outcome = tuple[CheckStatus, str]
"""What a probe found: its status and the evidence or the error, one line."""


def _ms_since(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000.0:.0f} ms"


async def probe_rpc(chain: ChainConfig, url: str) -> Outcome:
    """This one URL alone: chain id as configured (the pool checks it first), head, latency."""
    async with chain_pool(chain, urls=[url], max_attempts=1) as pool:
        await pool.request("eth_chainId")
        started = time.perf_counter()
        head = await pool.request("eth_blockNumber")
        latency = _ms_since(started)
    if not isinstance(head, str) or not head.startswith("0x"):
        raise RpcError(redact_url(url), "eth_blockNumber returned no hex quantity")
    return CheckStatus.OK, f"chain id {chain.chain_id}, head {int(head, 16)}, {latency}"


async def probe_ws(url: str) -> Outcome:
    """Connect, subscribe to ``newHeads``, read the answer, close."""
    shown = redact_url(url)
    request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str(json.dumps(request))
            reply: Any = await ws.receive_json()
    except aiohttp.WSServerHandshakeError as exc:
        return CheckStatus.FAIL, f"{shown}: websocket handshake refused (HTTP {exc.status})"
    except aiohttp.ClientError as exc:
        return CheckStatus.FAIL, f"{shown}: {describe_transport_error(exc)}"
    except (TypeError, ValueError):  # a non-text frame, or text that is not JSON
        return CheckStatus.FAIL, f"{shown}: the answer to eth_subscribe is not JSON"
    if isinstance(reply, dict) and isinstance(reply.get("result"), str):
        return CheckStatus.OK, f"newHeads subscription accepted, {_ms_since(started)}"
    error = reply.get("error") if isinstance(reply, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return CheckStatus.FAIL, f"{shown}: eth_subscribe newHeads refused: {message or reply!r:.100}"


async def probe_token(
    chain: ChainConfig, token: TokenConfig, pool: RpcPool, *, account: str = ZERO_ADDRESS
) -> Outcome:
    """The watcher's own start-up check (code present, decimals vs config) for one token, then
    ``balanceOf(account)``: a revert, or an answer that is not exactly 32 bytes, fails (the
    daemon would count every read of it as failed)."""
    override = multicall3_runtime() if chain.use_state_override else None
    watcher = ChainWatcher(
        chain=chain,
        tokens=[token],
        accounts=(),
        discover=False,
        requester=pool,
        override_code=override,
    )
    await watcher.setup()  # raises DecimalsMismatch, reported as the row's detail
    info = watcher.tokens[token.address]
    if info.problem is not None:
        return CheckStatus.FAIL, info.problem
    call = {"to": token.address, "data": "0x" + BALANCE_OF_SELECTOR + account[2:].rjust(64, "0")}
    try:
        answer = await pool.request("eth_call", [call, "latest"])
    except ExecutionReverted as exc:  # built redacted
        return CheckStatus.FAIL, f"balanceOf({account}) reverts: {exc}"
    size = (len(answer) - 2) // 2 if isinstance(answer, str) and answer.startswith("0x") else -1
    if size != CALL_RESULT_BYTES:
        shown = "no hex string" if size < 0 else f"{size} bytes"
        return CheckStatus.FAIL, f"balanceOf({account}) returned {shown}, not 32: unreadable"
    origin = "as configured" if token.decimals is not None else "from chain; not in config"
    return CheckStatus.OK, f"code present, decimals {info.decimals} ({origin})"


async def probe_sequencer(chain: ChainConfig, address: str, pool: RpcPool) -> Outcome:
    """Read the uptime feed once; a sequencer that is down or in its grace period warns."""
    feed = SequencerUptimeFeed(
        chain=chain.name,
        address=address,
        rpc=pool,
        grace_period_s=chain.sequencer_grace_period_s,
        timeout_s=chain.request_timeout_s,
    )
    now = time.time()
    reading = await feed.read(now)
    if reading.answer is None:
        return CheckStatus.FAIL, reading.detail
    status = reading.status(now)
    detail = f"sequencer {status} since {reading.started_at} (answer {reading.answer})"
    return (CheckStatus.OK if status.usable else CheckStatus.WARN), detail


async def probe_source(
    asset: AssetConfig, spec: SourceConfig, http: JsonHttpClient, pool: RpcPool | None = None
) -> Outcome:
    """One fetch through the real source class; a quote the oracle would drop warns."""
    chain = getattr(spec, "chain", None)
    pools: dict[str, Requester] = {} if pool is None or chain is None else {chain: pool}
    quote = await build_source(spec, pools, http).fetch()
    if quote.failure is not None:
        return CheckStatus.FAIL, f"{quote.failure}: {quote.detail}"
    now = time.time()
    age = "" if quote.observed_at is None else f", {now - quote.observed_at:.0f} s old"
    detail = f"price {price_text(quote.price)}{age}"
    reason = validate(quote, asset.params(), now)
    if reason is not None:
        return CheckStatus.WARN, f"{detail}; the oracle would drop it: {reason}"
    return CheckStatus.OK, detail


async def probe_database(url: str) -> Outcome:
    """Reachable, and the schema at the newest migration (behind or missing only warns)."""
    missing = _missing_sqlite_file(url)
    if missing is not None:
        return missing
    engine = create_store_engine(url)
    try:
        await check_reachable(engine)  # raises StoreUnavailable with a redacted URL
        current = await current_revision(engine)
    finally:
        await engine.dispose()
    head = head_revision()
    if current == head:
        return CheckStatus.OK, f"reachable, schema at head ({head})"
    at = "no schema" if current is None else f"schema at {current}, this version needs {head}"
    return CheckStatus.WARN, f"reachable, {at}: {MIGRATE_HINT}"


def _missing_sqlite_file(url: str) -> Outcome | None:
    """Report a SQLite file that does not exist yet, instead of creating it by connecting."""
    path = sa.make_url(url).database if dialect_of(url) == "sqlite" else None
    if not path or path == ":memory:" or Path(path).exists():
        return None
    if not Path(path).parent.is_dir():
        return CheckStatus.FAIL, f"directory {Path(path).parent} does not exist"
    return CheckStatus.WARN, f"no database file yet: {MIGRATE_HINT}"


async def probe_mqtt(url: str, timeout_s: float) -> Outcome:
    """Connect (CONNACK accepted) and disconnect cleanly."""
    broker = BrokerAddress.from_url(url)
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=f"{MQTT_CHECK_CLIENT_PREFIX}-{os.getpid()}",
        timeout=timeout_s,
        tls_context=ssl.create_default_context() if broker.tls else None,
        logger=logging.getLogger(f"{__name__}.mqtt"),
    )
    started = time.perf_counter()
    try:
        async with client:
            pass
    except aiomqtt.MqttError as exc:
        text = str(exc) or type(exc).__name__
        for secret in (broker.password, broker.username):
            if secret:
                text = text.replace(secret, "***")
        return CheckStatus.FAIL, f"cannot connect: {scrub(text)}"
    return CheckStatus.OK, f"connected and disconnected, {_ms_since(started)}"


async def mqtt_not_configured() -> Outcome:
    """The broker row when ``mqtt.url`` is unset."""
    return CheckStatus.SKIPPED, "mqtt.url is not set: MQTT publishing is off"
