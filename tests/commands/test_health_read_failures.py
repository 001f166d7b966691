"""``crossmargin health`` when the debt token's ``balanceOf`` reverts (Anvil): no account is
shown healthy on a debt nobody could read — each is held, with its health unknown."""

from __future__ import annotations

import io
import json

import pytest

from daemon.commands.health import health_pass, print_health
from daemon.config.load import parse_config
from daemon.documents import account_document
from devnet import DevChain
from devnet.contracts import load_artifact
from tests.commands.test_health import BOB, CAROL, book
from tests.pricekit import PriceServer

pytestmark = pytest.mark.usefixtures("isolated_chains")


async def test_a_reverting_debt_token_leaves_every_account_held_and_unknown(
    dev_a: DevChain, dev_b: DevChain
) -> None:
    async with PriceServer() as server:
        data = await book(dev_a, dev_b, server)
        token = next(t for t in data["tokens"] if t["role"] == "liability")
        token.pop("decimals")  # RevertingToken says 18: not a mismatch to fail set-up on
        debt = token["address"]
        await dev_a.set_code(debt, load_artifact("RevertingToken").deployed_bytecode)
        found = await health_pass(parse_config(data))
        healths = found.healths
    assert all(s.error is None for s in found.snapshots)

    rows = {h.account: account_document(h) for h in healths}
    assert len(rows) == 4
    for row in rows.values():
        assert (row["health"], row["health_known"], row["actionable"]) == (None, False, False)
        assert {"READ_FAILED", "DEBT_UNKNOWN"} <= set(row["flags"])  # type: ignore[arg-type]
        assert row["held_reasons"] == ["READ_FAILED"]
    bob = rows[BOB]
    line = next(b for b in bob["breakdown"]["holdings"] if b["token"] == debt)  # type: ignore[attr-defined]
    assert (line["raw"], line["flags"]) == (None, ["READ_FAILED", "DEBT_UNKNOWN"])
    assert rows[CAROL]["health"] is None  # unknown, not "no debt"

    text = io.StringIO()
    assert print_health(found, as_json=False, account=None, out=text) == 0
    assert all(" health    unknown " in line for line in text.getvalue().splitlines())
    out = io.StringIO()
    print_health(found, as_json=True, account=BOB, out=out)
    assert json.loads(out.getvalue())["health_known"] is False
