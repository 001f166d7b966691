"""``crossmargin check`` reads ``balanceOf`` of every token, on Anvil: a token whose balanceOf
reverts, or answers anything but one 32-byte word, fails its row (the daemon could read none of
its balances), while its decimals and code look fine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from daemon.commands.check import CheckStatus, run_checks
from daemon.config.load import parse_config
from devnet import DevChain
from tests.clikit import crossmargin
from tests.pricekit import ACCOUNT, PriceServer, coinbase
from tests.watchkit import chain_entry, token_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")

SHORT_WORD = "0x000000000000000000000000000000000000c0de"
# decimals() answers 18 in one word; any other call returns 16 bytes:
#   selector = calldata[0:4]; if selector == decimals(): return uint(18) else return mem[0:16]
SHORT_WORD_CODE = bytes.fromhex(
    "600035"
    "60e01c"
    "63313ce567"
    "14"
    "6014"
    "57"  # selector == 0x313ce567 → jump to 0x14
    "6010"
    "6000"
    "f3"  # return 16 bytes
    "5b"
    "6012"
    "6000"
    "52"
    "6020"
    "6000"
    "f3"  # 0x14: return uint(18)
)


@pytest.fixture
async def exchange() -> AsyncIterator[PriceServer]:
    async with PriceServer() as server:
        server.set("ETH-USD", "3000.10")
        yield server


def config(
    dev: DevChain, tokens: list[dict[str, object]], exchange: PriceServer, directory: Path
) -> dict[str, object]:
    return {
        "chains": [chain_entry("a", dev.chain_id, dev.url)],
        "tokens": tokens,
        "accounts": [ACCOUNT],
        "assets": [{"symbol": "ETH", "sources": [coinbase(exchange, name="coinbase")]}],
        "database_url": f"sqlite+aiosqlite:///{directory / 'check.sqlite3'}",
    }


async def test_a_token_whose_balance_of_reverts_or_is_not_one_word_fails(
    dev_a: DevChain, exchange: PriceServer, tmp_path: Path
) -> None:
    good = (await dev_a.deploy("MintableERC20", "T", "T", 6)).lower()
    reverting = (await dev_a.deploy("RevertingToken")).lower()
    await dev_a.set_code(SHORT_WORD, SHORT_WORD_CODE)
    tokens = [
        token_entry("a", good, symbol="GOOD"),
        token_entry("a", reverting, symbol="REV"),
        token_entry("a", SHORT_WORD, symbol="SHORT"),
    ]
    data = config(dev_a, tokens, exchange, tmp_path)
    rows = {row.component: row for row in await run_checks(parse_config(data))}

    ok = rows[f"chain a token GOOD {good}"]
    assert (ok.status, ok.detail) == (
        CheckStatus.OK,
        "code present, decimals 6 (from chain; not in config)",
    )
    revert = rows[f"chain a token REV {reverting}"]
    assert revert.status is CheckStatus.FAIL
    assert revert.detail.startswith(f"balanceOf({ACCOUNT}) reverts: ")
    assert "RevertingToken: balanceOf disabled" in revert.detail
    short = rows[f"chain a token SHORT {SHORT_WORD}"]
    assert (short.status, short.detail) == (
        CheckStatus.FAIL,
        f"balanceOf({ACCOUNT}) returned 16 bytes, not 32: unreadable",
    )

    path = tmp_path / "crossmargin.yaml"
    path.write_text(yaml.safe_dump(config(dev_a, tokens[1:2], exchange, tmp_path)))
    code, out, err = await crossmargin("check", "-c", str(path), "--json")
    assert code == 1, out + err
    failing = [row for row in map(json.loads, out.splitlines()) if row["status"] == "fail"]
    assert [row["component"] for row in failing] == [f"chain a token REV {reverting}"]
