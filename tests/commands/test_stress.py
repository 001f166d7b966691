"""``crossmargin stress``: the book of ``test_health`` (two Anvil chains, a feed, an exchange)
valued in one pass, then under shocks.

ETH −30 % (1,400), weight 0.8: Alice 2 ETH → 2,240 against 2,500: newly liquidatable, short
260, no bad debt (2,800 > 2,500). Bob 1,120 against 1,700: short 580 (already), bad debt 300.
Dave 1,120 against 1,500: newly, short 380, bad debt 100. Carol owes nothing. Totals: 1,220
short, 400 bad debt.

Volatility: ETH's floor is 80 %, the slow chain a week from liquidation, so its shock is
2.33 · σ · sqrt(604,800 / 31,536,000) = 0.3227 σ. Dave is latency-risky already; at σ = 160 %
(``--vol ETH=+100%``) Alice's slow ETH keeps 1,600 · 0.484 = 774 + 1,593 on l1 = 2,367 < 2,500:
latency-risky too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from daemon.cli import main
from daemon.commands.stress import stress_pass
from daemon.config.load import parse_config
from devnet import DevChain
from margin.stress import Shocks
from tests.clikit import crossmargin
from tests.commands.test_health import ALICE, BOB, DAVE, book
from tests.pricekit import PriceServer
from tests.watchkit import chain_entry, token_entry

pytestmark = pytest.mark.usefixtures("isolated_chains")


async def test_one_pass_under_an_eth_crash(dev_a: DevChain, dev_b: DevChain) -> None:
    async with PriceServer() as server:
        config = parse_config(await book(dev_a, dev_b, server))
        report, snapshots = await stress_pass(config, Shocks(price={"ETH": -0.3}))
    assert all(s.error is None for s in snapshots)
    assert report.accounts == 4
    assert (report.liquidatable_before, report.liquidatable_after) == (1, 3)
    assert [(a.account, a.shortfall_after) for a in report.newly_liquidatable] == [
        (DAVE, Decimal("380.00")),
        (ALICE, Decimal("260.00")),
    ]
    assert report.newly_liquidatable[1].health_before == pytest.approx(3_200 / 2_500)
    assert report.newly_liquidatable[1].health_after == pytest.approx(2_240 / 2_500)
    assert report.total_shortfall_after == Decimal("1220.00")
    assert report.bad_debt_after == Decimal("400.00")


async def test_the_command(dev_a: DevChain, dev_b: DevChain, tmp_path: Path) -> None:
    async with PriceServer() as server:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(await book(dev_a, dev_b, server)))
        config = str(path)
        code, out, err = await crossmargin(
            "stress", "-c", config, "--shock", "ETH=-30%", "--vol", "ETH=+100%", "--json"
        )
        assert code == 0, err
        doc = json.loads(out)
        assert (doc["liquidatable_before"], doc["liquidatable_after"]) == (1, 3)
        assert [a["account"] for a in doc["newly_liquidatable"]] == [DAVE, ALICE]
        assert doc["newly_liquidatable"][0]["shortfall_after"] == "380.00"
        assert (doc["total_shortfall_after"], doc["bad_debt_after"]) == ("1220.00", "400.00")
        # Dave only is latency-risky now; Bob is liquidatable, so never latency-risky.
        assert (doc["latency_risk_before"], doc["latency_risk_after"]) == (1, 0)

        code, out, err = await crossmargin("stress", "-c", config, "--vol", "ETH=+100%")
        assert code == 0, err
        assert "latency risk before 1 after 2" in out
        assert "liquidatable before 1 after 1 (newly 0)" in out

        code, out, err = await crossmargin("stress", "-c", config, "--shock", "ETH=-0.3")
        assert code == 0, err
        assert "total shortfall after 1220.00" in out
        assert f"{DAVE} health     1.0667 ->     0.7467 shortfall 380.00" in out
        assert BOB not in out  # already liquidatable: not newly


BAD_SHOCKS = [
    (["--shock", "ETH-30%"], "argument --shock"),
    (["--shock", "ETH=minus30%"], "argument --shock"),
    (["--vol", "=30%"], "argument --vol"),
    (["--shock", "DOGE=-30%"], "--shock DOGE: unknown asset 'DOGE'; configured: ETH, USDC"),
    (["--shock", "ETH=-100%"], "--shock ETH: must be a number from -99% to +1000%"),
    (["--vol", "ETH=+1001%"], "--vol ETH: must be a number"),
    (["--shock", "ETH=-1%", "--shock", "ETH=-2%"], "--shock ETH: given twice"),
]


def test_bad_shocks_exit_2_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Shocks are checked before anything is reached: a config of unreachable chains does.
    (``main`` in this process; ``test_the_command`` runs the real console script.)"""
    config = {
        "chains": [chain_entry("l1", 1, "http://127.0.0.1:9")],
        "tokens": [
            token_entry("l1", "0x" + "11" * 20),
            token_entry("l1", "0x" + "22" * 20, "USDC", role="liability", weight=1.0),
        ],
        "accounts": [ALICE],
        "assets": [
            {
                "symbol": symbol,
                "sources": [{"kind": "chainlink", "chain": "l1", "address": "0x" + "33" * 20}],
            }
            for symbol in ("ETH", "USDC")
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    for args, named in BAD_SHOCKS:
        try:
            code = main(["stress", "-c", str(path), *args])
        except SystemExit as exc:  # argparse refuses the syntax itself
            code = int(str(exc.code))
        out, err = capsys.readouterr()
        assert code == 2, (args, err)
        assert named in err, (args, err)
        assert "Traceback" not in err
        assert out == ""
