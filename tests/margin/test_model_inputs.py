"""The engine's input types refuse bad values with a message naming what is wrong
(``margin.model``), and accept every value on the edge of what is allowed.

Each refusal's message is matched whole: a config typo must say which token, chain, position
or knob is wrong and why, not fail later in the math. Added for the fifth mutation pass
(bench/RESULTS.md, "Fifth pass"): mutants that let a bad value through, or that lose the
field or the reason from the message, all survived the older tests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal

import pytest

from core.domain import Role
from margin.model import (
    AccountHealth,
    ChainInput,
    EngineParams,
    Flag,
    Holding,
    MarginInputError,
    MarginModel,
    Position,
    PriceInput,
    Tier,
    TokenRisk,
    flag_names,
    parse_flag,
    validate_tiers,
)

C, L = Role.COLLATERAL, Role.LIABILITY
NAN, INF = math.nan, math.inf
FLAG_ORDER = (
    "LIQUIDATABLE, LATENCY_RISK, STALE_CHAIN, STALE_PRICE, ORACLE_TRIPPED, SEQUENCER_DOWN, "
    "READ_FAILED, DEBT_UNKNOWN, ORACLE_DRIFT"
)


def token(**changes: object) -> TokenRisk:
    fields: dict[str, object] = {
        "chain": "arb", "token": "weth", "asset": "ETH", "role": C, "weight": 0.8, "decimals": 18,
    }  # fmt: skip
    fields.update(changes)
    return TokenRisk(**fields)  # type: ignore[arg-type]


def price(**changes: object) -> PriceInput:
    fields: dict[str, object] = {"asset": "ETH", "price": 2_000.0}
    fields.update(changes)
    return PriceInput(**fields)  # type: ignore[arg-type]


def position(**changes: object) -> Position:
    fields: dict[str, object] = {
        "account": "0xa", "asset": "ETH", "chain": "arb", "size": 1.5, "entry_price": 1_900.0,
        "mmr_tiers": (Tier(0.05),),
    }  # fmt: skip
    fields.update(changes)
    return Position(**fields)  # type: ignore[arg-type]


def holding(**changes: object) -> Holding:
    fields: dict[str, object] = {
        "account": "0xa", "chain": "arb", "token": "weth", "raw": 5, "block": 7,
    }  # fmt: skip
    fields.update(changes)
    return Holding(**fields)  # type: ignore[arg-type]


BAD: list[tuple[Callable[[], object], str]] = [
    # tokens
    (lambda: token(decimals=78), "token arb/weth: decimals 78"),
    (lambda: token(decimals=-1), "token arb/weth: decimals -1"),
    (lambda: token(weight=NAN), "token arb/weth: weight nan"),
    (lambda: token(weight=INF, role=L), "token arb/weth: weight inf"),
    (lambda: token(weight="0.8"), "token arb/weth: weight 0.8"),
    (lambda: token(weight=1.01), "token arb/weth: collateral weight must be in [0, 1]"),
    (lambda: token(weight=-0.01), "token arb/weth: collateral weight must be in [0, 1]"),
    (lambda: token(role=L, weight=0.99), "token arb/weth: liability weight must be >= 1"),
    (
        lambda: token(role=L, weight=1.1, tiers=(Tier(1.0),)),
        "token arb/weth: tiers apply to collateral only",
    ),
    (lambda: token(tiers=(Tier(0.9, 1_000), Tier(1.2))), "token arb/weth tiers[1]: rate 1.2"),
    (
        lambda: token(tiers=(Tier(0.9, 1_000),)),
        "token arb/weth tiers[0]: the last tier must be unbounded",
    ),
    # tier schedules
    (
        lambda: validate_tiers((), low=0, high=1, what="s"),
        "s: a tier schedule needs at least one tier",
    ),
    (lambda: validate_tiers((Tier(-0.1),), low=0, high=1, what="s"), "s[0]: rate -0.1"),
    (lambda: validate_tiers((Tier(NAN),), low=0, high=1, what="s"), "s[0]: rate nan"),
    (
        lambda: validate_tiers((Tier(0.5), Tier(0.4)), low=0, high=1, what="s"),
        "s[0]: up_to must increase strictly (got None)",
    ),
    (
        lambda: validate_tiers((Tier(0.5, 0.0), Tier(0.4)), low=0, high=1, what="s"),
        "s[0]: up_to must increase strictly (got 0.0)",
    ),
    (
        lambda: validate_tiers((Tier(0.5, -5.0), Tier(0.4)), low=0, high=1, what="s"),
        "s[0]: up_to must increase strictly (got -5.0)",
    ),
    (
        lambda: validate_tiers(
            (Tier(0.5, 100.0), Tier(0.4, 100.0), Tier(0.3)), low=0, high=1, what="s"
        ),
        "s[1]: up_to must increase strictly (got 100.0)",
    ),
    (
        lambda: validate_tiers(
            (Tier(0.5, 100.0), Tier(0.4, 50.0), Tier(0.3)), low=0, high=1, what="s"
        ),
        "s[1]: up_to must increase strictly (got 50.0)",
    ),
    (
        lambda: validate_tiers((Tier(0.5, INF), Tier(0.4)), low=0, high=1, what="s"),
        "s[0]: up_to must increase strictly (got inf)",
    ),
    (
        lambda: validate_tiers((Tier(0.5, 100.0), Tier(0.4, 200.0)), low=0, high=1, what="s"),
        "s[1]: the last tier must be unbounded",
    ),
    # prices
    (lambda: price(price=0.0), "price ETH: price 0.0"),
    (lambda: price(price=-1.0), "price ETH: price -1.0"),
    (lambda: price(price=INF), "price ETH: price inf"),
    (lambda: price(volatility=-0.1), "price ETH: volatility"),
    (lambda: price(volatility=NAN), "price ETH: volatility"),
    (lambda: price(price_low=0.0), "price ETH: price_low 0.0"),
    (lambda: price(price_low=2_000.5), "price ETH: price_low 2000.5"),
    (lambda: price(price_low=NAN), "price ETH: price_low nan"),
    (lambda: price(price_high=1_999.5), "price ETH: price_high 1999.5"),
    (lambda: price(price_high=INF), "price ETH: price_high inf"),
    # chains
    (lambda: ChainInput(name="arb", liquidation_latency_s=-1.0), "chain arb: latency -1.0"),
    (lambda: ChainInput(name="arb", liquidation_latency_s=NAN), "chain arb: latency nan"),
    # positions
    (lambda: position(size=NAN), "position 0xa/ETH: size nan"),
    (lambda: position(entry_price=-1.0), "position 0xa/ETH: entry_price"),
    (lambda: position(entry_price=INF), "position 0xa/ETH: entry_price"),
    (
        lambda: position(mmr_tiers=()),
        "position 0xa/ETH mmr_tiers: a tier schedule needs at least one tier",
    ),
    (lambda: position(mmr_tiers=(Tier(1.5),)), "position 0xa/ETH mmr_tiers[0]: rate 1.5"),
    (
        lambda: position(mmr_tiers=(Tier(0.05, 1e6), Tier(0.0))),
        "position 0xa/ETH: mmr rates must be > 0",
    ),
    (
        lambda: position(mmr_tiers=(Tier(0.0, 1e6), Tier(0.05))),
        "position 0xa/ETH: mmr rates must be > 0",
    ),
    # holdings
    (lambda: holding(raw=None), "holding 0xa: a holding without a value must be a failed read"),
    (lambda: holding(raw=-1), "holding 0xa: raw -1"),
    (lambda: holding(raw=2**256, read_failed=True), f"holding 0xa: raw {2**256}"),
    # engine
    (lambda: EngineParams(z=-0.5), "engine: z -0.5"),
    (lambda: EngineParams(z=NAN), "engine: z nan"),
    (lambda: EngineParams(value_decimals=-1), "engine: value_decimals must be in [0, 4]"),
    (lambda: EngineParams(value_decimals=5), "engine: value_decimals must be in [0, 4]"),
]


@pytest.mark.parametrize(("build", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_input_is_refused_naming_the_field_and_the_problem(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(MarginInputError, match=f"^{re.escape(message)}$"):
        build()


def test_values_on_the_edge_of_what_is_allowed_are_accepted() -> None:
    # decimals 0…77; collateral weights 0 and 1; a liability weight of exactly 1; an unknown
    # decimals (None)
    for decimals in (None, 0, 77):
        assert token(decimals=decimals).decimals == decimals
    assert token(weight=0.0).weight == 0.0
    assert token(weight=1.0).weight == 1.0
    assert token(role=L, weight=1.0).weight == 1.0
    assert token(weight=1).weight == 1  # an int is a number too
    # rates at both ends of the range, a first bound just above 0
    validate_tiers((Tier(0.0, 1e-9), Tier(1.0, 2e-9), Tier(0.5)), low=0.0, high=1.0, what="s")
    validate_tiers((Tier(2.0),), low=2.0, high=2.0, what="s")
    assert token(tiers=(Tier(1.0, 10), Tier(0.0))).tiers[1].rate == 0.0
    # a band touching the price on both sides, volatility 0
    flat = price(price_low=2_000.0, price_high=2_000.0, volatility=0.0)
    assert (flat.low, flat.high) == (2_000.0, 2_000.0)
    # a token worth less than a dollar, with its band below a dollar too
    cheap = price(asset="DOGE", price=0.25, price_low=0.2, price_high=0.3)
    assert (cheap.price, cheap.low, cheap.high) == (0.25, 0.2, 0.3)
    assert ChainInput(name="arb", liquidation_latency_s=0).liquidation_latency_s == 0
    assert position(size=-3.0, entry_price=0.0).entry_price == 0.0
    assert holding(raw=2**256 - 1).raw == 2**256 - 1
    assert holding(raw=0).raw == 0
    assert holding(raw=None, read_failed=True).raw is None
    assert EngineParams(z=0.0, value_decimals=0).value_decimals == 0
    assert EngineParams(value_decimals=4).value_decimals == 4


def test_defaults_of_the_inputs() -> None:
    # a price without a band is its own band; OK, no volatility; the engine's defaults are
    # the weighted model, z 2.33 (one-sided 99 %) and cents
    plain = price()
    assert (plain.low, plain.high, plain.volatility, plain.status) == (2_000.0, 2_000.0, 0.0, "OK")
    banded = price(price_low=1_990.0, price_high=2_010.0)
    assert (banded.low, banded.high) == (1_990.0, 2_010.0)
    assert EngineParams() == EngineParams(model=MarginModel.WEIGHTED, z=2.33, value_decimals=2)
    chain = ChainInput(name="arb", liquidation_latency_s=60.0)
    assert (chain.stale, chain.sequencer_down, chain.last_block) == (False, False, None)
    assert token().tiers == ()
    assert token().key == ("arb", "weth")
    assert holding().read_failed is False
    assert Tier(0.5).up_to is None


def test_flags_are_named_in_declaration_order_and_parsed_in_any_case() -> None:
    assert flag_names(Flag.NONE) == []
    assert flag_names(Flag.ORACLE_DRIFT | Flag.LIQUIDATABLE | Flag.STALE_PRICE) == [
        "LIQUIDATABLE",
        "STALE_PRICE",
        "ORACLE_DRIFT",
    ]
    assert parse_flag("stale_chain") is Flag.STALE_CHAIN
    assert parse_flag("Debt_Unknown") is Flag.DEBT_UNKNOWN
    for name in ("none", "NONE", "stale"):
        with pytest.raises(
            ValueError, match=f"^{re.escape(f'unknown flag {name!r}; one of {FLAG_ORDER}')}$"
        ):
            parse_flag(name)


def test_held_reasons_and_known_health_of_a_result() -> None:
    zero = Decimal("0.00")

    def result(flags: Flag) -> AccountHealth:
        return AccountHealth(
            account="0xa", collateral_value=zero, weighted_collateral=zero,
            liability_value=zero, weighted_liability=zero, unrealized_pnl=zero,
            maintenance=zero, health=math.inf, health_latency=math.inf, shortfall=zero,
            flags=flags, actionable=False, holdings=(), positions=(),
        )  # fmt: skip

    every = Flag(0)
    for member in Flag:
        every |= member
    # STALE_CHAIN, LATENCY_RISK, DEBT_UNKNOWN and ORACLE_DRIFT never hold a liquidation back
    assert result(every).held_reasons == (
        Flag.STALE_PRICE | Flag.ORACLE_TRIPPED | Flag.SEQUENCER_DOWN | Flag.READ_FAILED
    )
    assert result(Flag.LIQUIDATABLE | Flag.STALE_CHAIN).held_reasons == Flag.NONE
    assert result(Flag.READ_FAILED).health_known
    assert not result(Flag.READ_FAILED | Flag.DEBT_UNKNOWN).health_known
