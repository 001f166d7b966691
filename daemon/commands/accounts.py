"""``crossmargin accounts``: list accounts from a running daemon's API.

Without ``--flag``: ``GET /v1/liquidatable`` (liquidatable accounts and those whose health is
unknown, largest shortfall first). With ``--flag`` (repeatable): ``GET /v1/accounts`` — the
accounts carrying any of them, by address. Pages of ``PAGE`` are read until ``limit``
accounts or the end. Prints a table, or one ``Account`` document per line with ``--json``
(the API's own documents, unchanged). A daemon that cannot be reached, or that answers with
an error, is one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import aiohttp

from core.errors import CrossmarginError
from core.redaction import redact_url, scrub

PAGE = 1000  # the API's largest page
DEFAULT_LIMIT = 1000
REQUEST_TIMEOUT_S = 15.0  # one page; the API answers a database outage with 503 within ~10 s
ADDRESS_WIDTH = 42


class DaemonUnreachable(CrossmarginError):
    """The API did not answer, or answered with an error."""


async def fetch_accounts(
    url: str, flags: Sequence[str], *, limit: int = DEFAULT_LIMIT
) -> tuple[list[dict[str, Any]], int | None]:
    """The accounts (up to ``limit``) and, for the liquidatable list, the total there is."""
    base = url.rstrip("/")
    path = "/v1/accounts" if flags else "/v1/liquidatable"
    accounts: list[dict[str, Any]] = []
    total: int | None = None
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while len(accounts) < limit:
            size = min(PAGE, limit - len(accounts))
            query: list[tuple[str, str | int]] = [("limit", size), ("offset", len(accounts))]
            query += [("flag", f) for f in flags]
            page = await _get(session, base + path, query, shown=url)
            found = page.get("accounts", [])
            accounts.extend(found)
            total = page.get("total", total)
            if len(found) < size:
                break
    return accounts, total


async def _get(
    session: aiohttp.ClientSession, url: str, query: list[tuple[str, str | int]], *, shown: str
) -> dict[str, Any]:
    try:
        async with session.get(url, params=query) as response:
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = _reason(exc)
        raise DaemonUnreachable(
            f"cannot reach the daemon at {redact_url(shown)}: {scrub(reason)}"
        ) from None
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if status != 200 or not isinstance(body, dict):
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise DaemonUnreachable(
            f"the daemon at {redact_url(shown)} answered {status}: {message or 'not JSON'}"
        )
    return body


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        return os.strerror(code) if code else str(exc.os_error)  # "Connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {REQUEST_TIMEOUT_S:g} s"
    return str(exc) or type(exc).__name__


def print_accounts(
    accounts: Sequence[dict[str, Any]],
    total: int | None,
    *,
    as_json: bool,
    out: TextIO = sys.stdout,
) -> None:
    """One ``Account`` document per line, or a table with a closing count."""
    if as_json:
        for account in accounts:
            out.write(json.dumps(account, separators=(",", ":")) + "\n")
        return
    header = f"{'ACCOUNT':<{ADDRESS_WIDTH}}  {'HEALTH':>9}  {'SHORTFALL':>14}  ACTIONABLE  FLAGS"
    out.write(header + "\n")
    for a in accounts:
        out.write(
            f"{a['account']:<{ADDRESS_WIDTH}}  {_health(a):>9}  {a['shortfall']:>14}  "
            f"{'yes' if a['actionable'] else 'no':<10}  {','.join(a['flags']) or '-'}\n"
        )
    shown = f"{len(accounts)} accounts"
    if total is not None and total != len(accounts):
        shown += f" (of {total})"
    out.write(shown + "\n")


def _health(account: dict[str, Any]) -> str:
    health = account.get("health")
    if health is None:
        return "inf" if account.get("health_known") else "unknown"
    return f"{health:.4f}"


async def run_accounts(url: str, flags: Sequence[str], *, limit: int, as_json: bool) -> int:
    """``crossmargin accounts``: 0 on success (``DaemonUnreachable`` otherwise)."""
    accounts, total = await fetch_accounts(url, flags, limit=limit)
    print_accounts(accounts, total, as_json=as_json)
    return 0
