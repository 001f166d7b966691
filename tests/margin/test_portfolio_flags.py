"""Flags and perps' marks under the portfolio model: a stale chain flags only the accounts
holding a non-zero balance there, a failed read flags only its own account, and a perp's PnL
is taken at the adverse end of the price band (DESIGN §3, as under the other models).

Added for the third mutation pass (issue 15): the portfolio tables and the independent
portfolio oracle compare values, not flags, so mutants of ``evaluate_portfolio_accounts``'
flag and mark lines survived them.
"""

from __future__ import annotations

from decimal import Decimal

from margin.model import ChainInput, Flag, PriceInput
from tests.margin.portfolio_kit import CHAINS, World

STALE = "0x00000000000000000000000000000000000000b1"  # ETH on arb (stale), USDC debt on main
ELSEWHERE = "0x00000000000000000000000000000000000000b2"  # ETH on main only
EMPTY = "0x00000000000000000000000000000000000000b3"  # a zero balance on arb, ETH on main
FAILED = "0x00000000000000000000000000000000000000b4"  # its USDC debt read failed
SMALL = "0x00000000000000000000000000000000000000b5"  # half an ETH on arb
LONG = "0x00000000000000000000000000000000000000b6"
SHORT = "0x00000000000000000000000000000000000000b7"
FLAGS = Flag.STALE_CHAIN | Flag.READ_FAILED | Flag.DEBT_UNKNOWN


def test_a_stale_chain_and_a_failed_read_flag_only_their_own_accounts() -> None:
    w = World()
    # STALE is not the engine's first account: a flag sent to the wrong row shows
    w.hold(ELSEWHERE, "eth-main", 20_000)
    w.hold(STALE, "eth-arb", 20_000)
    w.hold(STALE, "usdc-debt", 5_000)
    w.engine.set_balance(EMPTY, "arb", "eth-arb", 0, 1)
    w.hold(EMPTY, "eth-main", 20_000)
    w.hold(FAILED, "eth-main", 20_000)
    w.engine.set_read_failed(FAILED, "main", "usdc-debt", 2)
    w.hold(SMALL, "eth-arb", 1_000)  # 0.5 ETH: any non-zero amount is exposure
    w.engine.set_chain_status(
        [ChainInput(name="arb", liquidation_latency_s=CHAINS["arb"], stale=True)]
    )
    w.engine.recompute_all()
    seen = {
        a: w.engine.account_health(a).flags & FLAGS
        for a in (STALE, ELSEWHERE, EMPTY, FAILED, SMALL)
    }
    assert seen == {
        STALE: Flag.STALE_CHAIN,
        ELSEWHERE: Flag.NONE,
        EMPTY: Flag.NONE,  # a zero balance is no exposure to the stale chain
        FAILED: Flag.READ_FAILED | Flag.DEBT_UNKNOWN,  # a debt never read is unknown
        SMALL: Flag.STALE_CHAIN,
    }


def test_perps_are_marked_at_the_adverse_end_of_the_price_band() -> None:
    # ETH 2,000 in a band [1,990, 2,010]: a long is marked at 1,990, a short at 2,010.
    # long 0.5 from 1,900: 0.5 · (1,990 − 1,900) = 45; short 2 from 2,100: −2 · (2,010 − 2,100)
    # = 180 (a size below one unit is long too).
    w = World()
    w.perp(LONG, "ETH", "arb", 0.5, 1900)
    w.perp(SHORT, "ETH", "arb", -2, 2100)
    w.engine.set_prices([PriceInput(asset="ETH", price=2000, price_low=1990, price_high=2010)])
    w.engine.recompute_all()
    assert w.engine.account_health(LONG).unrealized_pnl == Decimal("45.00")
    assert w.engine.account_health(SHORT).unrealized_pnl == Decimal("180.00")
