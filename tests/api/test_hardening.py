"""The keeper API against hostile input, on a real aiohttp server over a real store
(``tests.api.apikit``): exact address matching on both dialects, log lines that cannot be forged,
parser errors as JSON without header values in any log, idle/half-sent connections closed
after the timeout, and the connection cap."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from daemon.api.positions import MALFORMED_BODY
from tests.api.apikit import TOKEN, running_api
from tests.storekit import DIALECTS, account_address

WAIT_S = 60.0
"""Bound on every wait for the server (a condition, never a measured duration)."""
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ETH_SHORT = {
    "asset": "ETH",
    "chain": "eth",
    "size": "-1.5",
    "entry_price": "3000",
    "mmr_tiers": [{"rate": 0.02}],
}


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _json(response: aiohttp.ClientResponse, status: int) -> Any:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


# ---- addresses are matched exactly ----------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_an_address_with_a_trailing_newline_is_a_400_and_nothing_is_stored(
    http: aiohttp.ClientSession, dialect: str
) -> None:
    address = account_address(1)
    async with running_api(dialect=dialect) as api:
        for suffix in ("%0A", "%0D%0A", "%00", "%20"):
            target = URL(f"{api.url}/v1/positions/{address}{suffix}", encoded=True)
            body = json.dumps({"positions": [ETH_SHORT]})
            async with http.put(target, data=body, headers=AUTH) as response:
                error = await _json(response, 400)
            assert error["error"]["field"] == "address", error
            lookup = URL(f"{api.url}/v1/accounts/{address}{suffix}", encoded=True)
            async with http.get(lookup) as response:
                assert (await _json(response, 400))["error"]["field"] == "address"
        assert await api.store.positions() == []  # no second identity of the account
        assert api.view.changed == []
        async with http.put(
            f"{api.url}/v1/positions/{address}", json={"positions": [ETH_SHORT]}, headers=AUTH
        ) as response:
            assert (await _json(response, 200))["account"] == address
        assert [p.account for p in await api.store.positions()] == [address]


# ---- raw HTTP ---------------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def exchange(url: str, data: bytes, *, timeout_s: float = WAIT_S) -> bytes:
    """Send ``data`` on a new connection; everything the server says until it closes."""
    reader, writer = await asyncio.open_connection(*_host_port(url))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of one raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    broken = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert broken == [], [r.getMessage() for r in broken]


# ---- log lines cannot be forged -------------------------------------------------------------


async def test_a_path_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = "2030-01-01 12:00:00,000 WARNING daemon.engine FORGED_EVENT account=0x1"
    encoded = quote(f"\n{forged}", safe="")
    async with running_api() as api:
        for target in (
            f"/nope{encoded}",
            f"/v1/accounts/0x{'ab' * 20}{encoded}",
            f"/v1/accounts/0x{'ab' * 20}%0D%0A{quote(forged, safe='')}",
            f"/v1/liquidatable{encoded}",
        ):
            head = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            raw = await exchange(api.url, head.encode())
            status, _, _ = parse(raw)
            assert status in (400, 404)
    access = [r.getMessage() for r in caplog.records if r.name == "daemon.api.access"]
    assert len(access) == 4
    for message in access:
        assert message.isprintable(), message  # no CR, LF or other control character
        assert " FORGED_EVENT " not in message  # the spaces are escaped too: one field
    assert all(not line.lstrip().startswith("2030-01-01") for line in caplog.text.splitlines())
    no_tracebacks(caplog)


# ---- the HTTP parser's errors ---------------------------------------------------------------

ADDRESS = account_address(3)


@pytest.mark.parametrize(
    ("request_bytes", "problem"),
    [
        pytest.param(
            f"PUT /v1/positions/{ADDRESS} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\x01\r\nContent-Length: 2\r\n\r\n{{}}",
            "malformed request line or header",
            id="control-char-in-authorization",
        ),
        pytest.param(
            f"PUT /v1/positions/{ADDRESS} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}{'A' * 9000}\r\n\r\n",
            "request line or header too long",
            id="oversized-authorization",
        ),
        pytest.param(
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer {TOKEN}\r\n\r\n",
            "malformed request line or header",
            id="space-before-colon",
        ),
        pytest.param(
            f"GET /healthz HTTP/1.1\r\nHost: x\r\n Bearer {TOKEN}\r\n\r\n",
            "malformed request line or header",
            id="folded-header",
        ),
        pytest.param(
            f"GE T /v1/liquidatable?token={TOKEN} HTTP/1.1\r\n\r\n",
            "malformed request method",
            id="bad-request-line",
        ),
        pytest.param(
            "GET /" + "a" * 9000 + " HTTP/1.1\r\n\r\n",
            "request line or header too long",
            id="oversized-request-line",
        ),
    ],
)
async def test_parser_errors_are_json_400s_and_log_no_header(
    caplog: pytest.LogCaptureFixture, request_bytes: str, problem: str
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_api() as api:
        raw = await exchange(api.url, request_bytes.encode())
        status, headers, body = parse(raw)
        assert status == 400, raw[:300]
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body) == {"error": {"code": "bad_request", "message": problem}}
        assert TOKEN.encode() not in raw
        assert await api.store.positions() == []
        async with aiohttp.ClientSession() as http, http.get(f"{api.url}/healthz") as ok:
            assert ok.status == 200  # the server is unharmed
    assert TOKEN not in caplog.text
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert f"problem={problem.replace(' ', '_')}" in caplog.text
    assert "route=rejected" in caplog.text
    no_tracebacks(caplog)


async def test_a_body_that_trickles_in_is_a_408(http: aiohttp.ClientSession) -> None:
    async with running_api(body_timeout_s=0.5) as api:
        head = (
            f"PUT /v1/positions/{ADDRESS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
            "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            '{"positions": '
        )
        status, _, body = parse(await exchange(api.url, head.encode()))
        assert status == 408
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert await api.store.positions() == []


# ---- idle and half-sent connections ---------------------------------------------------------

HALF_OPEN = 2_000
IDLE_TIMEOUT_S = 1.0
OPEN_BATCH = 200


def _enough_file_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _half_sent(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*_host_port(url))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # the head never ends
    await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), WAIT_S) == b""
    except ConnectionResetError:
        return True


async def _trickle(url: str) -> bool:
    """A slow loris: one header byte every 0.2 s, for ever; true once the server hangs up."""
    reader, writer = await asyncio.open_connection(*_host_port(url))
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        async with asyncio.timeout(WAIT_S):
            while True:
                writer.write(b"X")
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                        return True
                except TimeoutError:
                    continue
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        writer.close()


async def test_half_sent_requests_are_closed_after_the_idle_timeout() -> None:
    _enough_file_descriptors(2 * HALF_OPEN + 512)
    async with running_api(
        idle_timeout_s=IDLE_TIMEOUT_S, max_connections=2 * HALF_OPEN, dialect="sqlite"
    ) as api:
        connections = []
        for _ in range(0, HALF_OPEN, OPEN_BATCH):
            connections += await asyncio.gather(*(_half_sent(api.url) for _ in range(OPEN_BATCH)))
        async with aiohttp.ClientSession() as http, http.get(f"{api.url}/healthz") as ok:
            assert ok.status == 200  # served while 2,000 connections hang
        slow = asyncio.create_task(_trickle(api.url))
        closed = await asyncio.gather(*(_closed_by_server(reader) for reader, _ in connections))
        assert closed.count(True) == HALF_OPEN
        assert await slow, "a trickling head outlived the idle timeout"
        for _, writer in connections:
            writer.close()
        async with aiohttp.ClientSession() as http, http.get(f"{api.url}/healthz") as ok:
            assert ok.status == 200


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    async with running_api(idle_timeout_s=IDLE_TIMEOUT_S) as api:
        reader, writer = await asyncio.open_connection(*_host_port(api.url))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b'"ok"}'), WAIT_S)
        assert answer.startswith(b"HTTP/1.1 200")
        assert await _closed_by_server(reader)
        writer.close()


# ---- the connection cap ---------------------------------------------------------------------

CAP = 3


async def _kept_alive(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that was served once and stays open (keep-alive)."""
    reader, writer = await asyncio.open_connection(*_host_port(url))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b'"ok"}'), WAIT_S)
    assert answer.startswith(b"HTTP/1.1 200")
    return reader, writer


async def test_connections_beyond_the_cap_get_a_clear_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_api(max_connections=CAP, idle_timeout_s=WAIT_S) as api:
        held = [await _kept_alive(api.url) for _ in range(CAP)]
        raw = await exchange(api.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = parse(raw)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert headers["connection"] == "close"
        error = json.loads(body)["error"]
        assert error["code"] == "too_many_connections"
        assert f"at most {CAP} connections" in error["message"]
        assert "api_connections_refused refused=1 limit=3" in caplog.text
        _, writer = held.pop()
        writer.close()
        await writer.wait_closed()
        status = 503
        async with asyncio.timeout(WAIT_S):  # the slot is free once the server saw the close
            while status == 503:
                status, _, _ = parse(await exchange(api.url, b"GET /healthz HTTP/1.0\r\n\r\n"))
        assert status == 200
        for _, writer in held:
            writer.close()
    no_tracebacks(caplog)


async def test_a_body_that_does_not_decode_is_a_400(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_api(dialect="sqlite") as api:
        body = b"this is not gzip"
        head = (
            f"PUT /v1/positions/{ADDRESS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
            "\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        status, _, answer = parse(await exchange(api.url, head.encode() + body))
        assert status == 400
        assert json.loads(answer)["error"] == {"code": "bad_request", "message": MALFORMED_BODY}
        assert await api.store.positions() == []
    no_tracebacks(caplog)
