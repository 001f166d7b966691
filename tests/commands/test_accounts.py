"""``crossmargin accounts`` as operators run it, against a real API over PostgreSQL."""

from __future__ import annotations

import json

import aiohttp

from tests.api.apikit import SHORTFALLS, running_api
from tests.clikit import crossmargin
from tests.pricekit import free_port


async def api_json(url: str) -> dict:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()  # type: ignore[no-any-return]


async def test_accounts_lists_the_liquidatable_ranking_and_flagged_accounts() -> None:
    async with running_api() as api:
        code, out, err = await crossmargin("accounts", "--url", api.url)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].split() == ["ACCOUNT", "HEALTH", "SHORTFALL", "ACTIONABLE", "FLAGS"]
        listed = await api_json(f"{api.url}/v1/liquidatable?limit=1000")
        rows = [line.split() for line in lines[1:-1]]
        assert [r[0] for r in rows] == [a["account"] for a in listed["accounts"]]
        assert [r[2] for r in rows] == list(SHORTFALLS)
        assert lines[-1] == f"{listed['total']} accounts"

        code, out, _ = await crossmargin(
            "accounts", "--url", api.url, "--flag", "latency_risk", "--json"
        )
        assert code == 0
        flagged = await api_json(f"{api.url}/v1/accounts?flag=LATENCY_RISK&limit=1000")
        assert [json.loads(line) for line in out.splitlines()] == flagged["accounts"]
        assert flagged["accounts"]

        code, out, _ = await crossmargin("accounts", "--url", api.url, "--limit", "2")
        assert code == 0
        assert out.splitlines()[-1] == f"2 accounts (of {listed['total']})"


async def test_a_bad_flag_is_exit_2_naming_the_valid_ones() -> None:
    code, out, err = await crossmargin("accounts", "--flag", "UNDERWATER")
    assert code == 2
    assert out == ""
    assert "unknown flag 'UNDERWATER'; one of LIQUIDATABLE" in err


async def test_a_daemon_that_does_not_answer_is_one_line_and_exit_1() -> None:
    port = free_port()  # nothing listens there
    code, out, err = await crossmargin("accounts", "--url", f"http://127.0.0.1:{port}")
    assert code == 1
    assert out == ""
    assert (
        err
        == f"crossmargin: cannot reach the daemon at http://127.0.0.1:{port}: Connection refused\n"
    )


async def test_an_error_answer_is_one_line_and_exit_1() -> None:
    async with running_api() as api:
        code, out, err = await crossmargin("accounts", "--url", f"{api.url}/elsewhere")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "answered 404" in err


async def test_a_malformed_url_is_exit_2() -> None:
    code, _, err = await crossmargin("accounts", "--url", "127.0.0.1:8080")
    assert code == 2
    assert "must be http(s)://host[:port]" in err
