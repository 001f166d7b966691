"""Property tests (hypothesis) of the health formulas on the reference ``margin.health``.

Monotonicity: adding collateral never lowers health; raising the price of an asset the
account only owes never raises it. Consistency: the flags, ``actionable`` and ``shortfall``
always agree with the numbers they are derived from, and with the independent oracle
(``tests/margin_oracle.py``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from core.domain import PriceStatus, Role
from margin.health import evaluate_account
from margin.model import (
    HELD_REASONS,
    AccountHealth,
    ChainInput,
    EngineParams,
    Flag,
    Holding,
    MarginModel,
    Position,
    PriceInput,
    Tier,
    TokenRisk,
)
from tests.margin import margin_oracle as oracle
from tests.margin.marginkit import (
    REFERENCE_MODELS,
    assert_reference_matches,
    oracle_market,
    oracle_perp,
)

C, L = Role.COLLATERAL, Role.LIABILITY
TIERS_A = (Tier(0.9, 1_000), Tier(0.5, 50_000), Tier(0.2))
TIERS_B = (Tier(0.8, 10_000), Tier(0.7))
TOKENS = [
    TokenRisk(
        chain="eth", token="weth", asset="ETH", role=C, weight=0.8, decimals=18, tiers=TIERS_A
    ),
    TokenRisk(
        chain="arb", token="weth", asset="ETH", role=C, weight=0.8, decimals=18, tiers=TIERS_A
    ),
    TokenRisk(
        chain="base", token="weth", asset="ETH", role=C, weight=0.75, decimals=18, tiers=TIERS_B
    ),
    TokenRisk(chain="eth", token="usdc", asset="USDC", role=C, weight=0.95, decimals=6),
    TokenRisk(
        chain="arb", token="usdc", asset="USDC", role=C, weight=0.9, decimals=6, tiers=TIERS_B
    ),
    TokenRisk(chain="eth", token="deth", asset="ETH", role=L, weight=1.05, decimals=18),
    TokenRisk(chain="eth", token="dusdc", asset="USDC", role=L, weight=1.0, decimals=6),
    TokenRisk(chain="arb", token="ddai", asset="DAI", role=L, weight=1.1, decimals=18),
    TokenRisk(chain="base", token="ddai", asset="DAI", role=L, weight=1.0, decimals=18),
]
TOKEN_MAP = {t.key: t for t in TOKENS}
COLLATERAL = [t for t in TOKENS if t.role is C]
ASSETS = ("ETH", "USDC", "DAI", "BTC")
CHAIN_NAMES = ("eth", "arb", "base")
MMR = ((Tier(0.005, 50_000), Tier(0.01, 500_000), Tier(0.025)), (Tier(0.03),))

raws = st.one_of(
    st.just(0),
    st.integers(1, 10**6),
    st.integers(0, 10**24),
    st.integers(0, 2**256 - 1),
)
prices = st.floats(1e-4, 1e6)


@st.composite
def price_inputs(draw: st.DrawFn, asset: str) -> PriceInput:
    price = draw(prices)
    band = draw(st.floats(0, 0.05))
    return PriceInput(
        asset=asset,
        price=price,
        price_low=price * (1 - band),
        price_high=price * (1 + band),
        status=draw(st.sampled_from(PriceStatus)),
        volatility=draw(st.floats(0, 3)),
    )


@st.composite
def chain_inputs(draw: st.DrawFn, name: str) -> ChainInput:
    return ChainInput(
        name=name,
        liquidation_latency_s=draw(st.sampled_from([0.0, 12.0, 900.0, 86_400.0 * 7])),
        stale=draw(st.booleans()),
        sequencer_down=draw(st.booleans()),
    )


@st.composite
def positions(draw: st.DrawFn) -> list[Position]:
    out = []
    for asset in draw(st.lists(st.sampled_from(ASSETS), unique=True, max_size=2)):
        out.append(
            Position(
                account="0xa",
                asset=asset,
                chain=draw(st.sampled_from(CHAIN_NAMES)),
                size=draw(st.floats(-1e4, 1e4)),
                entry_price=draw(prices),
                mmr_tiers=draw(st.sampled_from(MMR)),
            )
        )
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    """One account's holdings and positions with a market around it."""
    tokens = draw(st.lists(st.sampled_from(TOKENS), unique=True, max_size=len(TOKENS)))
    priced = draw(st.lists(st.sampled_from(ASSETS), unique=True, min_size=2))
    return {
        "holdings": {t.key: draw(raws) for t in tokens},
        "positions": draw(positions()),
        "prices": {a: draw(price_inputs(a)) for a in priced},
        "chains": {c: draw(chain_inputs(c)) for c in CHAIN_NAMES},
        "params": EngineParams(
            model=draw(st.sampled_from(REFERENCE_MODELS)), z=draw(st.sampled_from([0.0, 2.33, 3.0]))
        ),
    }


def evaluate(scenario: dict[str, object]) -> AccountHealth:
    holdings = scenario["holdings"]
    assert isinstance(holdings, dict)
    return evaluate_account(
        "0xa",
        [
            Holding(account="0xa", chain=c, token=t, raw=r, block=1)
            for (c, t), r in holdings.items()
        ],
        scenario["positions"],  # type: ignore[arg-type]
        tokens=TOKEN_MAP,
        prices=scenario["prices"],  # type: ignore[arg-type]
        chains=scenario["chains"],  # type: ignore[arg-type]
        params=scenario["params"],  # type: ignore[arg-type]
    )


# no shrinking: a failing example is reported as drawn (its inputs are named), and a
# mutant (`make mutate`) must not keep a run shrinking for minutes
PROPERTY = settings(
    deadline=None, max_examples=80, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


@PROPERTY
@given(scenarios(), st.sampled_from(COLLATERAL), st.integers(1, 2**200))
def test_adding_collateral_never_lowers_health(
    scenario: dict[str, object], token: TokenRisk, extra: int
) -> None:
    before = evaluate(scenario)
    holdings = dict(scenario["holdings"])  # type: ignore[call-overload]
    holdings[token.key] = min(holdings.get(token.key, 0) + extra, 2**256 - 1)
    after = evaluate({**scenario, "holdings": holdings})
    assert after.health >= before.health
    assert after.weighted_collateral >= before.weighted_collateral
    assert after.shortfall <= before.shortfall


@PROPERTY
@given(scenarios(), st.sampled_from(ASSETS), st.floats(1.0, 100.0))
def test_raising_a_liability_price_never_raises_health(
    scenario: dict[str, object], asset: str, factor: float
) -> None:
    # the asset is only owed: drop the account's collateral and positions in it
    holdings = {
        key: raw
        for key, raw in scenario["holdings"].items()  # type: ignore[attr-defined]
        if not (TOKEN_MAP[key].asset == asset and TOKEN_MAP[key].role is C)
    }
    kept = [p for p in scenario["positions"] if p.asset != asset]  # type: ignore[attr-defined]
    base = {**scenario, "holdings": holdings, "positions": kept}
    market = dict(scenario["prices"])  # type: ignore[call-overload]
    old = market.get(asset) or PriceInput(asset=asset, price=1.0)
    market[asset] = replace(
        old, price=old.price * factor, price_low=old.low * factor, price_high=old.high * factor
    )
    before = evaluate({**base, "prices": {**market, asset: old}})
    after = evaluate({**base, "prices": market})
    assert after.health <= before.health
    assert after.weighted_liability >= before.weighted_liability


def oracle_says(scenario: dict[str, object]) -> oracle.Health:
    """What the independent oracle says about the scenario's account."""
    market = oracle_market(
        TOKENS,
        scenario["prices"],  # type: ignore[arg-type]
        scenario["chains"],  # type: ignore[arg-type]
        scenario["params"],  # type: ignore[arg-type]
    )
    perps = [oracle_perp(p) for p in scenario["positions"]]  # type: ignore[attr-defined]
    return oracle.evaluate(market, scenario["holdings"], perps)  # type: ignore[arg-type]


SUBNORMAL_SHORT = {
    # found by hypothesis: |size| · mark underflows to 0.0 in float64 where the exact notional,
    # 1e-325 USD, rounds up to a cent; either is right as float64 may compute it
    "holdings": {},
    "positions": [
        Position(
            account="0xa", asset="DAI", chain="arb", size=-5e-324, entry_price=0.5, mmr_tiers=MMR[1]
        )
    ],
    "prices": {a: PriceInput(asset=a, price=0.02) for a in ("DAI", "USDC")},
    "chains": {c: ChainInput(name=c, liquidation_latency_s=12.0) for c in CHAIN_NAMES},
    "params": EngineParams(model=MarginModel.TIERED, z=3.0),
}


@PROPERTY
@given(scenarios())
@example(SUBNORMAL_SHORT)
def test_flags_actionable_and_shortfall_agree_with_the_numbers(scenario: dict[str, object]) -> None:
    result = evaluate(scenario)
    params = scenario["params"]
    assert isinstance(params, EngineParams)
    assert_reference_matches(result, oracle_says(scenario), params.value_decimals)
    liquidatable = result.health < 1
    assert bool(result.flags & Flag.LIQUIDATABLE) is liquidatable
    assert bool(result.flags & Flag.LATENCY_RISK) is (result.health >= 1 > result.health_latency)
    assert result.actionable is (liquidatable and not result.flags & HELD_REASONS)
    assert result.shortfall >= 0
    assert (result.shortfall > 0) is liquidatable
    if not scenario["positions"]:
        assert result.health_latency <= result.health
    if result.weighted_liability == 0 and result.maintenance == 0:
        assert result.health == math.inf
    lines = [line for line in result.holdings if line.role is C]
    assert sum(line.weighted_value for line in lines) == result.weighted_collateral
    assert sum(line.value for line in lines) == result.collateral_value
