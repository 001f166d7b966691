"""Table tests of the margin formulas (DESIGN §3) on the reference ``margin.health``.

Includes the equivalence with Aave v3's health factor computed by hand with Aave's integer
rules (reserve values in 1e-8 USD base units, collateral rounded down, debt up, average
liquidation threshold rounded down to whole basis points, half-up percentMul / wadDiv).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pytest

from core.domain import PriceStatus, Role
from margin.health import evaluate_account
from margin.latency import YEAR_S, price_shock
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
)
from margin.tiers import TierTable, compile_tiers, tiered_value
from margin.valuation import normalized_amount, normalized_amounts

C, L = Role.COLLATERAL, Role.LIABILITY
TIERS = (Tier(0.8, 100_000), Tier(0.6, 1_000_000), Tier(0.4))
MMR = (Tier(0.01, 10_000), Tier(0.02))

TOKENS = {
    t.key: t
    for t in (
        TokenRisk(chain="eth", token="weth", asset="ETH", role=C, weight=0.825, decimals=18),
        TokenRisk(chain="eth", token="wbtc", asset="BTC", role=C, weight=0.78, decimals=8),
        TokenRisk(chain="eth", token="usdc", asset="USDC", role=C, weight=0.87, decimals=6),
        TokenRisk(chain="eth", token="dusdc", asset="USDC", role=L, weight=1.0, decimals=6),
        TokenRisk(chain="eth", token="deth", asset="ETH", role=L, weight=1.0, decimals=18),
        TokenRisk(chain="arb", token="weth", asset="ETH", role=C, weight=0.825, decimals=18),
        TokenRisk(chain="arb", token="dusdc", asset="USDC", role=L, weight=1.0, decimals=6),
        # tiered stablecoin on two chains, same schedule: one bucket per account
        TokenRisk(
            chain="eth", token="tusd", asset="TUSD", role=C, weight=1, decimals=6, tiers=TIERS
        ),
        TokenRisk(
            chain="arb", token="tusd", asset="TUSD", role=C, weight=1, decimals=6, tiers=TIERS
        ),
    )
}
PRICES = {
    p.asset: p
    for p in (
        PriceInput(asset="ETH", price=2000.0, volatility=0.8),
        PriceInput(asset="BTC", price=60_000.0, volatility=0.6),
        PriceInput(asset="USDC", price=1.0, volatility=0.0),
        PriceInput(asset="TUSD", price=1.0, volatility=0.0),
    )
}
CHAINS = {
    "eth": ChainInput(name="eth", liquidation_latency_s=0),
    "arb": ChainInput(name="arb", liquidation_latency_s=0),
}
ETH, USDC, BTC = 10**18, 10**6, 10**8


def account(
    holdings: Sequence[tuple[str, str, int]],
    positions: Sequence[Position] = (),
    *,
    prices: dict[str, PriceInput] | None = None,
    chains: dict[str, ChainInput] | None = None,
    params: EngineParams | None = None,
) -> AccountHealth:
    return evaluate_account(
        "0xa",
        [Holding(account="0xa", chain=c, token=t, raw=r, block=7) for c, t, r in holdings],
        positions,
        tokens=TOKENS,
        prices=PRICES if prices is None else {**PRICES, **prices},
        chains=CHAINS if chains is None else {**CHAINS, **chains},
        params=params or EngineParams(),
    )


def perp(size: float, entry: float, asset: str = "ETH", chain: str = "eth") -> Position:
    return Position(
        account="0xa", asset=asset, chain=chain, size=size, entry_price=entry, mmr_tiers=MMR
    )


# ---- weighted lending health ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("holdings", "health", "shortfall", "liquidatable"),
    [
        # 10 ETH · 2000 · 0.825 = 16,500 against 15,000 USDC → 1.1
        ([("eth", "weth", 10 * ETH), ("eth", "dusdc", 15_000 * USDC)], 1.1, "0.00", False),
        # cross-chain: collateral on arb, debt on eth, same account
        ([("arb", "weth", 10 * ETH), ("eth", "dusdc", 15_000 * USDC)], 1.1, "0.00", False),
        # 16,500 against 20,000 → 0.825, shortfall 3,500
        ([("eth", "weth", 10 * ETH), ("eth", "dusdc", 20_000 * USDC)], 0.825, "3500.00", True),
        # exactly at 1: not liquidatable (health < 1 is the rule)
        ([("eth", "weth", 10 * ETH), ("eth", "dusdc", 16_500 * USDC)], 1.0, "0.00", False),
        # debt split over two chains adds up
        (
            [
                ("eth", "usdc", 10_000 * USDC),
                ("eth", "dusdc", 4_350 * USDC),
                ("arb", "dusdc", 4_350 * USDC),
            ],
            1.0,
            "0.00",
            False,
        ),
        # ETH collateral and ETH debt (1 · 2000 weight 1) plus BTC
        ([("eth", "wbtc", BTC), ("eth", "deth", 20 * ETH)], 1.17, "0.00", False),
    ],
)
def test_weighted_health_table(
    holdings: list[tuple[str, str, int]], health: float, shortfall: str, liquidatable: bool
) -> None:
    result = account(holdings)
    assert result.health == pytest.approx(health, rel=1e-12)
    assert result.shortfall == Decimal(shortfall)
    assert bool(result.flags & Flag.LIQUIDATABLE) is liquidatable
    assert result.actionable is liquidatable  # nothing holds it back here


def test_breakdown_lists_every_holding_with_its_block_and_exact_amount() -> None:
    result = account(
        [("eth", "weth", 10 * ETH + 1), ("arb", "dusdc", 5 * USDC), ("eth", "usdc", 0)]
    )
    lines = {(h.chain, h.token): h for h in result.holdings}
    assert set(lines) == {("eth", "weth"), ("arb", "dusdc")}  # zero balances left out
    weth = lines[("eth", "weth")]
    assert weth.amount == Decimal("10.000000000000000001")
    assert (weth.value, weth.weighted_value, weth.block) == (
        Decimal("20000.00"),
        Decimal("16500.00"),
        7,
    )
    assert lines[("arb", "dusdc")].weighted_value == Decimal("5.00")


# ---- Aave v3 equivalence ---------------------------------------------------------------------

WAD, PERCENT, HALF_PERCENT = 10**18, 10_000, 5_000


def aave_health_factor(
    collateral: Sequence[tuple[int, int, int, int]], debt: Sequence[tuple[int, int, int]]
) -> tuple[int, int, int]:
    """Aave v3 GenericLogic by hand: (raw, decimals, price 1e8, LT bps) / (raw, dec, price).

    Returns (total collateral, total debt) in 1e-8 USD base units and the HF in wad.
    """
    total_c = sum(raw * price // 10**dec for raw, dec, price, _ in collateral)
    lt_sum = sum((raw * price // 10**dec) * lt for raw, dec, price, lt in collateral)
    total_d = sum(-(-raw * price // 10**dec) for raw, dec, price in debt)  # rounded up
    avg_lt = lt_sum // total_c  # whole basis points, rounded down
    adjusted = (total_c * avg_lt + HALF_PERCENT) // PERCENT  # percentMul, half up
    return total_c, total_d, (adjusted * WAD + total_d // 2) // total_d  # wadDiv, half up


AAVE_PRICES = {"ETH": 2_000_12345678, "BTC": 60_123_87654321, "USDC": 99_987_654}
AAVE_CASES = [
    # single collateral: the average LT is the LT, only the last-unit roundings differ
    ([("eth", "weth", 10 * ETH)], [("eth", "dusdc", 15_000 * USDC)]),
    ([("eth", "weth", 7_123_456_789_012_345_678)], [("eth", "dusdc", 11_111_111_111)]),
    # mixed collateral: Aave's whole-bps average LT makes its HF slightly lower
    (
        [
            ("eth", "weth", 3 * ETH + 17),
            ("eth", "wbtc", 12_345_678),
            ("eth", "usdc", 9_999_999_999),
        ],
        [("eth", "dusdc", 12_000_000_001), ("eth", "deth", 2 * ETH + 5)],
    ),
    (
        [("eth", "wbtc", 3 * BTC), ("eth", "usdc", 1_234_567_890_123)],
        [("eth", "dusdc", 1_100_000 * USDC)],
    ),
]


@pytest.mark.parametrize(("collateral", "debt"), AAVE_CASES)
def test_health_equals_aave_v3_health_factor(
    collateral: list[tuple[str, str, int]], debt: list[tuple[str, str, int]]
) -> None:
    prices = {a: PriceInput(asset=a, price=p / 1e8) for a, p in AAVE_PRICES.items()}

    def aave_side(holdings: list[tuple[str, str, int]]) -> list[tuple[int, int, int, int]]:
        risks = [TOKENS[(c, t)] for c, t, _ in holdings]
        return [
            (raw, r.decimals, AAVE_PRICES[r.asset], round(r.weight * PERCENT))
            for (_, _, raw), r in zip(holdings, risks, strict=True)
        ]

    aave_c, aave_d = aave_side(collateral), [s[:3] for s in aave_side(debt)]
    total_c, total_d, hf = aave_health_factor(aave_c, aave_d)
    for decimals in (2, 4):
        params = EngineParams(value_decimals=decimals)
        ours = account(collateral + debt, prices=prices, params=params)
        # each reserve's value is Aave's base-currency value, quantized the same way
        quantum = 10 ** (8 - decimals)
        lines = {(h.chain, h.token): h.value.scaleb(decimals) for h in ours.holdings}
        for (chain, token, _), (raw, dec, price, _) in zip(collateral, aave_c, strict=True):
            assert lines[(chain, token)] == raw * price // 10**dec // quantum
        for (chain, token, _), (raw, dec, price) in zip(debt, aave_d, strict=True):
            assert lines[(chain, token)] == -(-raw * price // 10**dec // quantum)
        # the health factor: the same up to Aave's whole-bps average LT (≤ 1e-4 / LT) and
        # our coarser quantum (about one unit per reserve on each side)
        units = (len(collateral) + len(debt) + 1) * quantum / min(0.7 * total_c, total_d)
        slack = (1.25e-4 if len(collateral) > 1 else 0.0) + units
        assert ours.health == pytest.approx(hf / WAD, rel=slack)
        # Aave's average-LT rounding only ever lowers its HF
        assert hf / WAD <= ours.health * (1 + units)


def test_rounding_is_conservative_collateral_down_debt_up() -> None:
    # 1.999999 USDC of collateral is 1.99 USD; 1.000001 USDC of debt is 1.01 USD
    result = account([("eth", "usdc", 1_999_999), ("eth", "dusdc", 1_000_001)])
    assert result.collateral_value == Decimal("1.99")
    assert result.liability_value == Decimal("1.01")
    assert result.weighted_collateral == Decimal("1.73")  # 199 · 0.87 = 173.13 → 173 cents
    fine = account(
        [("eth", "usdc", 1_999_999), ("eth", "dusdc", 1_000_001)],
        params=EngineParams(value_decimals=4),
    )
    assert (fine.collateral_value, fine.liability_value) == (Decimal("1.9999"), Decimal("1.0001"))


def test_confidence_band_values_collateral_low_and_debt_high() -> None:
    band = {"ETH": PriceInput(asset="ETH", price=2000.0, price_low=1990.0, price_high=2010.0)}
    result = account(
        [("eth", "weth", ETH), ("arb", "weth", ETH), ("eth", "deth", ETH)], prices=band
    )
    assert result.collateral_value == Decimal("3980.00")
    assert result.liability_value == Decimal("2010.00")


# ---- infinity and empty accounts -------------------------------------------------------------


@pytest.mark.parametrize(
    "holdings", [[], [("eth", "weth", 5 * ETH)], [("eth", "weth", 0), ("eth", "dusdc", 0)]]
)
def test_infinite_health_without_liabilities(holdings: list[tuple[str, str, int]]) -> None:
    result = account(holdings)
    assert result.health == math.inf
    assert result.health_latency == math.inf
    assert result.shortfall == 0
    assert result.flags == Flag.NONE
    assert not result.actionable


# ---- tiers -----------------------------------------------------------------------------------


def test_tier_values_at_the_boundaries() -> None:
    schedule = compile_tiers(TIERS, 2)
    cents = 100
    assert tiered_value(100_000 * cents, schedule) == 80_000 * cents
    assert tiered_value(1_000_000 * cents, schedule) == 620_000 * cents
    assert tiered_value(1_500_000 * cents, schedule) == 820_000 * cents


@pytest.mark.parametrize("decimals", [0, 2, 4])
@pytest.mark.parametrize(
    "tiers",
    [
        TIERS,
        (Tier(1.0, 0.01), Tier(0.5, 0.02), Tier(0.0)),
        (Tier(0.9, 1e9), Tier(0.95, 2e9), Tier(0.1)),
    ],
)
def test_tier_slicing_is_continuous_at_every_boundary(
    tiers: tuple[Tier, ...], decimals: int
) -> None:
    schedule = compile_tiers(tiers, decimals)
    max_rate = max(t.rate for t in tiers)
    for bound in schedule.lows[1:]:
        at = tiered_value(bound, schedule)
        for step in (1.0, 0.5, 1e-6):
            below, above = (
                tiered_value(bound - step, schedule),
                tiered_value(bound + step, schedule),
            )
            assert below <= at <= above
            jump = max_rate * step + 4 * math.ulp(at)  # a slope, never a step
            assert at - below <= jump
            assert above - at <= jump
        # both neighbouring pieces give the same value at the boundary
        k = schedule.lows.index(bound)
        full_slices = sum(
            w * r for w, r in zip(schedule.widths[:k], schedule.rates[:k], strict=True)
        )
        assert at == pytest.approx(full_slices, rel=1e-15)


def test_vectorized_tiers_match_the_scalar_reference_bit_for_bit() -> None:
    import numpy as np

    schedules = [compile_tiers(TIERS, 2), compile_tiers(MMR, 2), compile_tiers((Tier(0.5),), 2)]
    table = TierTable(schedules)
    x = np.array([0, 1, 9_999_999, 10_000_000, 10_000_001, 123_456_789_012, 1e15, 2.5])
    for which in range(len(schedules)):
        got = table.values(x, np.full(len(x), which, dtype=np.intp))
        assert got.tolist() == [tiered_value(float(v), schedules[which]) for v in x]
    single = TierTable(schedules[:1]).values(x, np.zeros(len(x), dtype=np.intp))
    assert single.tolist() == [tiered_value(float(v), schedules[0]) for v in x]


def test_tiered_collateral_is_sliced_across_chains() -> None:
    tiered = EngineParams(model=MarginModel.TIERED)
    one_chain = account([("eth", "tusd", 120_000 * USDC)], params=tiered)
    two_chains = account(
        [("eth", "tusd", 60_000 * USDC), ("arb", "tusd", 60_000 * USDC)], params=tiered
    )
    # 100,000 · 0.8 + 20,000 · 0.6, however the 120,000 is spread
    assert one_chain.weighted_collateral == two_chains.weighted_collateral == Decimal("92000.00")
    lines = two_chains.holdings
    assert sum(line.weighted_value for line in lines) == Decimal("92000.00")
    assert all(line.weight == pytest.approx(92_000 / 120_000) for line in lines)
    # the weighted model ignores tiers and uses the flat weight
    assert account([("eth", "tusd", 120_000 * USDC)]).weighted_collateral == Decimal("120000.00")


# ---- positions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "pnl", "maintenance"),
    [
        (perp(2, 1800), "400.00", "40.00"),  # long: 2 · (2000 − 1800); 4,000 · 1%
        (perp(-10, 2100), "1000.00", "300.00"),  # short: 10,000 · 1% + 10,000 · 2%
        (perp(-1, 1500), "-500.00", "20.00"),
        (perp(5, 2000), "0.00", "100.00"),  # exactly at the 10,000 tier bound
        (perp(0.1, 1000.005), "99.99", "2.00"),  # 99.9995 rounded down; 2.00 rounded up
    ],
)
def test_position_pnl_and_requirement(position: Position, pnl: str, maintenance: str) -> None:
    result = account([("eth", "usdc", 1_000 * USDC)], [position])
    assert result.unrealized_pnl == Decimal(pnl)
    assert result.maintenance == Decimal(maintenance)
    weighted = Decimal("870.00")
    assert result.health == pytest.approx(float((weighted + Decimal(pnl)) / Decimal(maintenance)))
    (line,) = result.positions
    assert line.notional == Decimal(abs(position.size) * 2000).quantize(Decimal("0.01"))


def test_requirement_is_continuous_across_an_mmr_tier_bound() -> None:
    just_below, at, just_above = (
        account([], [perp(s, 2000)]).maintenance for s in (4.99999, 5, 5.00001)
    )
    assert just_below <= at <= just_above
    assert just_above - just_below <= Decimal("0.01")


def test_positions_are_marked_on_the_adverse_side_of_the_band() -> None:
    band = {"ETH": PriceInput(asset="ETH", price=2000.0, price_low=1990.0, price_high=2010.0)}
    long = account([], [perp(1, 2000)], prices=band)
    short = account([], [perp(-1, 2000)], prices=band)
    assert (long.unrealized_pnl, short.unrealized_pnl) == (Decimal("-10.00"), Decimal("-10.00"))
    assert (long.positions[0].mark, short.positions[0].mark) == (1990.0, 2010.0)


def test_pure_perp_account_is_a_margin_ratio() -> None:
    # 1,000 USDC at 0.87 + long 10 ETH from 2,050: (870 − 500) / (10,000·1% + 10,000·2%)
    result = account([("eth", "usdc", 1_000 * USDC)], [perp(10, 2050)])
    assert result.health == pytest.approx(370 / 300)


# ---- latency risk ----------------------------------------------------------------------------

HOUR = 3600.0


@pytest.mark.parametrize(
    ("latency_s", "debt_usdc", "latency_risk", "liquidatable"),
    [
        (0.0, 16_200, False, False),  # no horizon: health_latency == health
        (HOUR, 16_200, True, False),  # 1.0185 now; a 2.33σ hour of ETH (−2%) sinks it
        (60.0, 16_200, False, False),  # a minute moves ETH by 0.26% only
        (HOUR, 16_500, True, False),  # health exactly 1.0 counts as "health ≥ 1"
        (HOUR, 17_000, False, True),  # already liquidatable: not latency risk
        (HOUR, 1_000, False, False),
    ],
)
def test_latency_flag_appears_exactly_when_solvent_now_but_not_after_the_horizon(
    latency_s: float, debt_usdc: int, latency_risk: bool, liquidatable: bool
) -> None:
    chains = {"arb": ChainInput(name="arb", liquidation_latency_s=latency_s)}
    result = account([("arb", "weth", 10 * ETH), ("eth", "dusdc", debt_usdc * USDC)], chains=chains)
    assert bool(result.flags & Flag.LATENCY_RISK) is latency_risk
    assert bool(result.flags & Flag.LIQUIDATABLE) is liquidatable
    assert latency_risk is (result.health >= 1 > result.health_latency)


def test_latency_health_follows_the_design_formula() -> None:
    z, sigma, latency = 2.33, 0.8, HOUR
    shock = price_shock(z, sigma, latency)
    assert shock == pytest.approx(z * sigma * math.sqrt(latency / YEAR_S))
    chains = {"arb": ChainInput(name="arb", liquidation_latency_s=latency)}
    result = account(
        [("arb", "weth", 10 * ETH), ("arb", "dusdc", 15_000 * USDC), ("eth", "deth", ETH)],
        chains=chains,
    )
    c_w_lat = math.floor(16_500_00 * (1 - shock))  # ETH on arb, shocked
    l_lat = 15_000_00 + math.ceil(2_000_00 * (1 + price_shock(z, sigma, 0)))  # USDC σ = 0
    assert result.health_latency == pytest.approx(c_w_lat / l_lat, rel=1e-15)


def test_positions_latency_uses_their_settlement_chain() -> None:
    slow = {"arb": ChainInput(name="arb", liquidation_latency_s=6 * HOUR)}
    on_eth = account([("eth", "usdc", 1_000 * USDC)], [perp(10, 2050, chain="eth")], chains=slow)
    on_arb = account([("eth", "usdc", 1_000 * USDC)], [perp(10, 2050, chain="arb")], chains=slow)
    assert on_eth.health_latency == on_eth.health  # eth latency 0
    assert on_arb.health_latency < on_arb.health


# ---- flags and actionable --------------------------------------------------------------------

UNDERWATER = [("arb", "weth", 10 * ETH), ("eth", "dusdc", 20_000 * USDC)]


@pytest.mark.parametrize(
    ("prices", "chains", "positions", "expected"),
    [
        (
            {"ETH": PriceInput(asset="ETH", price=2000.0, status=PriceStatus.STALE)},
            {},
            [],
            Flag.STALE_PRICE,
        ),
        (
            {"ETH": PriceInput(asset="ETH", price=2000.0, status=PriceStatus.DEGRADED)},
            {},
            [],
            Flag.STALE_PRICE,
        ),
        (
            {"USDC": PriceInput(asset="USDC", price=1.0, status=PriceStatus.TRIPPED)},
            {},
            [],
            Flag.ORACLE_TRIPPED,
        ),
        (
            {},
            {"arb": ChainInput(name="arb", liquidation_latency_s=0, sequencer_down=True)},
            [],
            Flag.SEQUENCER_DOWN,
        ),
        # a position's asset and settlement chain are "involved" too
        (
            {"BTC": PriceInput(asset="BTC", price=6e4, status=PriceStatus.TRIPPED)},
            {},
            [perp(1e-9, 6e4, "BTC")],
            Flag.ORACLE_TRIPPED,
        ),
        (
            {},
            {"opt": ChainInput(name="opt", liquidation_latency_s=0, sequencer_down=True)},
            [perp(1e-9, 2e3, "ETH", "opt")],
            Flag.SEQUENCER_DOWN,
        ),
    ],
)
def test_actionable_is_false_whenever_a_held_reason_applies(
    prices: dict[str, PriceInput],
    chains: dict[str, ChainInput],
    positions: list[Position],
    expected: Flag,
) -> None:
    result = account(UNDERWATER, positions, prices=prices, chains=chains)
    assert result.flags & Flag.LIQUIDATABLE
    assert result.flags & expected
    assert result.held_reasons == expected
    assert not result.actionable


def test_a_missing_price_is_stale_and_counts_for_nothing() -> None:
    prices = {a: p for a, p in PRICES.items() if a != "BTC"}
    result = evaluate_account(
        "0xa",
        [
            Holding(account="0xa", chain="eth", token="wbtc", raw=BTC, block=1),
            Holding(account="0xa", chain="eth", token="dusdc", raw=USDC, block=1),
        ],
        [],
        tokens=TOKENS,
        prices=prices,
        chains=CHAINS,
        params=EngineParams(),
    )
    assert result.collateral_value == 0
    assert result.flags == Flag.LIQUIDATABLE | Flag.STALE_PRICE
    assert not result.actionable


def test_stale_chain_is_reported_but_does_not_hold_a_liquidation() -> None:
    chains = {"arb": ChainInput(name="arb", liquidation_latency_s=0, stale=True)}
    result = account(UNDERWATER, chains=chains)
    assert result.flags == Flag.LIQUIDATABLE | Flag.STALE_CHAIN
    assert result.held_reasons == Flag.NONE
    assert result.actionable


def test_a_chain_where_the_account_holds_nothing_does_not_flag_it() -> None:
    chains = {"arb": ChainInput(name="arb", liquidation_latency_s=0, sequencer_down=True)}
    result = account(
        [("eth", "weth", 10 * ETH), ("eth", "dusdc", 20_000 * USDC), ("arb", "weth", 0)],
        chains=chains,
    )
    assert result.flags == Flag.LIQUIDATABLE
    assert result.actionable
    assert result.holdings[0].flags == Flag.NONE


# ---- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenRisk(chain="c", token="t", asset="A", role=C, weight=1.2, decimals=18),
        lambda: TokenRisk(chain="c", token="t", asset="A", role=L, weight=0.9, decimals=18),
        lambda: TokenRisk(
            chain="c", token="t", asset="A", role=L, weight=1, decimals=6, tiers=TIERS
        ),
        lambda: TokenRisk(
            chain="c",
            token="t",
            asset="A",
            role=C,
            weight=1,
            decimals=6,
            tiers=(Tier(0.8, 10), Tier(0.6, 5), Tier(0.1)),
        ),
        lambda: TokenRisk(
            chain="c", token="t", asset="A", role=C, weight=1, decimals=6, tiers=(Tier(0.8, 10),)
        ),
        lambda: PriceInput(asset="A", price=0.0),
        lambda: PriceInput(asset="A", price=1.0, price_low=1.1),
        lambda: PriceInput(asset="A", price=float("nan")),
        lambda: Position(
            account="a", asset="A", chain="c", size=1, entry_price=1, mmr_tiers=(Tier(0.0),)
        ),
        lambda: Holding(account="a", chain="c", token="t", raw=-1, block=0),
        lambda: EngineParams(value_decimals=8),
    ],
)
def test_invalid_inputs_raise_margin_input_error(make: object) -> None:
    with pytest.raises(MarginInputError):
        make()  # type: ignore[operator]


def test_a_column_of_raws_converts_exactly_as_each_raw_does() -> None:
    # found by mutation testing (bench/RESULTS.md): the vectorized fast path is exact only for
    # powers of ten and raws float64 holds exactly; outside it every raw is converted alone
    rng = np.random.default_rng(15)
    small = rng.integers(0, 2**53, size=300, dtype=np.uint64)
    large = rng.integers(2**53, 2**64 - 1, size=300, dtype=np.uint64, endpoint=True)
    for raws in (small, large):
        for decimals in range(41):
            want = [normalized_amount(int(raw), decimals) for raw in raws]
            assert normalized_amounts(raws, decimals).tolist() == want, decimals
