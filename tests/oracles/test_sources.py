"""What one source's answer means: normalization, per-source validity, sequencer feeds, TWAP."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import pytest

from core.amounts import scaled as normalize
from core.domain import PriceStatus
from oracles.aggregate import AssetAggregator
from oracles.model import DropReason, OracleParams, SourceKind, SourceQuote
from oracles.sequencer import SequencerStatus, sequencer_status
from oracles.twap import mean_tick, twap_price_from_ticks
from oracles.validity import validate

NOW = 1_700_000_000.0
HOUR_S = 3_600.0
D = Decimal

# --- normalization ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "decimals", "expected"),
    [
        (300_012_345_678, 8, D("3000.12345678")),  # ETH/USD on Chainlink: 8 decimals
        (3_000_123_456_780_000_000_000, 18, D("3000.12345678")),  # ETH-denominated feeds: 18
        (1, 18, D("1E-18")),
        (-5, 8, D("-5E-8")),
        (42, 0, D(42)),
    ],
)
def test_chainlink_answers_normalize_exactly(answer: int, decimals: int, expected: Decimal) -> None:
    assert normalize(answer, decimals) == expected
    feed = SourceQuote.chainlink(
        "feed", answer=answer, decimals=decimals, updated_at=int(NOW), max_age_s=HOUR_S
    )
    assert feed.price == expected
    assert feed.kind is SourceKind.CHAINLINK


@pytest.mark.parametrize(
    "answer", [2**255 - 1, 10**40 + 7, 123_456_789_012_345_678_901_234_567_891]
)
@pytest.mark.parametrize("decimals", [0, 8, 18, 36])
def test_normalization_keeps_every_digit_of_large_answers(answer: int, decimals: int) -> None:
    assert Fraction(normalize(answer, decimals)) == Fraction(answer, 10**decimals)


def test_feeds_with_8_and_18_decimals_agree_exactly() -> None:
    eight = SourceQuote.chainlink(
        "a", answer=300_000_000_001, decimals=8, updated_at=int(NOW), max_age_s=HOUR_S
    )
    eighteen = SourceQuote.chainlink(
        "b", answer=3_000_000_000_010_000_000_000, decimals=18, updated_at=int(NOW), max_age_s=60
    )
    result = AssetAggregator(symbol="ETH", params=OracleParams()).round([eight, eighteen], NOW)
    assert result.status is PriceStatus.OK
    assert result.spread == 0.0
    assert result.price == D("3000.00000001")


def test_pyth_price_and_confidence_use_the_exponent() -> None:
    quote = SourceQuote.pyth(
        "pyth", price=6_543_210, conf=1_234, expo=-5, publish_time=int(NOW), max_age_s=60
    )
    assert quote.price == D("65.4321")
    assert quote.confidence == D("0.01234")
    assert quote.kind is SourceKind.PYTH


def test_a_poller_may_only_report_fetch_failures() -> None:
    with pytest.raises(ValueError, match="may only report"):
        SourceQuote.failed("feed", SourceKind.CHAINLINK, DropReason.STALE)
    with pytest.raises(ValueError, match="decimals"):
        normalize(1, -1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_sources", 0),
        ("max_deviation", 1.0),
        ("max_deviation", math.nan),
        ("max_jump", 0.0),
        ("confirm_rounds", 0),
        ("volatility_floor", -0.1),
        ("max_confidence_ratio", 1.0),
        ("ewma_lambda", 1.0),
        ("max_price", D("5")),
    ],
)
def test_oracle_params_reject_nonsense(field: str, value: object) -> None:
    kwargs: dict[str, object] = {field: value}
    if field == "max_price":
        kwargs["min_price"] = D("10")
    with pytest.raises(ValueError, match=field):
        OracleParams(**kwargs)  # type: ignore[arg-type]


# --- per-source validity ---------------------------------------------------------------------

PARAMS = OracleParams(min_price=D("1"), max_price=D("100000"), max_confidence_ratio=0.01)


def http(
    price: str | None = "3000",
    *,
    at: float | None = NOW - 10,
    max_age_s: float = 60.0,
    conf: str | None = None,
) -> SourceQuote:
    return SourceQuote(
        source_id="cex",
        kind=SourceKind.HTTP,
        price=None if price is None else D(price),
        observed_at=at,
        max_age_s=max_age_s,
        confidence=None if conf is None else D(conf),
    )


def feed(answer: int, updated_at: int, max_age_s: float = HOUR_S) -> SourceQuote:
    return SourceQuote.chainlink(
        "feed", answer=answer, decimals=8, updated_at=updated_at, max_age_s=max_age_s
    )


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        (http(), None),
        (SourceQuote.failed("feed", SourceKind.CHAINLINK, DropReason.REVERTED), "reverted"),
        (SourceQuote.failed("cex", SourceKind.HTTP, DropReason.FETCH_FAILED), "fetch_failed"),
        (http(None), "malformed"),
        (http("NaN"), "malformed"),
        (http("Infinity"), "malformed"),
        (http("1E-999999"), "malformed"),  # exact arithmetic on it would never finish
        (http("1E+41"), "malformed"),
        (http("1." + "1" * 80), "malformed"),
        (http("1." + "1" * 79), None),  # exactly MAX_PRICE_DIGITS (80) digits is sane
        (http("1E-40"), "out_of_bounds"),  # sane in size, below min_price
        (feed(0, int(NOW)), "zero_or_negative"),
        (feed(-1, int(NOW)), "zero_or_negative"),
        (feed(300_000_000_000, 0), "no_timestamp"),
        (http(at=None), "no_timestamp"),
        (http(at=math.nan), "no_timestamp"),
        (http(at=1.0, max_age_s=NOW), None),  # any positive timestamp is one (> 0, not > 1)
        (http(at=NOW + 5), None),  # within the clock-skew tolerance
        (http(at=NOW + 5.001), "future_timestamp"),
        (feed(300_000_000_000, int(NOW - HOUR_S)), None),  # exactly max_age_s old
        (feed(300_000_000_000, int(NOW - HOUR_S - 1)), "stale"),
        (http("0.99"), "out_of_bounds"),
        (http("1"), None),  # bounds are inclusive
        (http("100000"), None),
        (http("100000.01"), "out_of_bounds"),
        (http("3000", conf="30"), None),  # exactly 1 %
        (http("3000", conf="30.000001"), "confidence_too_wide"),
        (http("3000", conf="-1"), "malformed"),
        (http("3000", conf="1E-999999"), "malformed"),
        (http("3000", conf="0"), None),
    ],
)
def test_each_source_is_judged_on_its_own(quote: SourceQuote, reason: str | None) -> None:
    assert validate(quote, PARAMS, NOW) == (None if reason is None else DropReason(reason))


def test_revert_stale_and_zero_are_distinct_reasons() -> None:
    reasons = {
        validate(SourceQuote.failed("f", SourceKind.CHAINLINK, DropReason.REVERTED), PARAMS, NOW),
        validate(feed(300_000_000_000, int(NOW - 2 * HOUR_S)), PARAMS, NOW),
        validate(feed(0, int(NOW)), PARAMS, NOW),
    }
    assert reasons == {DropReason.REVERTED, DropReason.STALE, DropReason.ZERO_OR_NEGATIVE}


# --- sequencer-uptime feeds ------------------------------------------------------------------

GRACE_S = 3_600.0


@pytest.mark.parametrize(
    ("answer", "started_at", "expected"),
    [
        (1, NOW - 10, SequencerStatus.DOWN),  # down
        (1, NOW - 365 * 86_400, SequencerStatus.DOWN),
        (0, NOW - 10, SequencerStatus.GRACE),  # up again, inside the grace period
        (0, NOW - GRACE_S + 1, SequencerStatus.GRACE),
        (0, NOW - GRACE_S, SequencerStatus.UP),  # grace period over
        (0, NOW - 365 * 86_400, SequencerStatus.UP),  # a year-old status is normal: no staleness
        (0, NOW + 30, SequencerStatus.GRACE),  # startedAt ahead of our clock
        (0, 0, SequencerStatus.DOWN),  # feed not initialised
        (2, NOW - 10 * GRACE_S, SequencerStatus.DOWN),  # not an answer the feed gives
        (None, None, SequencerStatus.DOWN),  # the read failed
    ],
)
def test_sequencer_status(
    answer: int | None, started_at: float | None, expected: SequencerStatus
) -> None:
    started = None if started_at is None else int(started_at)
    status = sequencer_status(answer, started, NOW, GRACE_S)
    assert status is expected
    assert status.usable is (expected is SequencerStatus.UP)


def test_sequencer_rejects_a_negative_grace_period() -> None:
    with pytest.raises(ValueError, match="grace_period_s"):
        sequencer_status(0, int(NOW), NOW, -1)


def test_sequencer_edges_of_the_grace_period_and_of_started_at() -> None:
    # A grace period of 0 (or under a second) is allowed: up since now is usable at once.
    # startedAt = 1 is a real time (1970), not the uninitialised 0: up for decades.
    assert sequencer_status(0, int(NOW), NOW, 0) is SequencerStatus.UP
    assert sequencer_status(0, int(NOW), NOW, 0.5) is SequencerStatus.GRACE  # up for 0 s
    assert sequencer_status(0, int(NOW) - 1, NOW, 0.5) is SequencerStatus.UP
    assert sequencer_status(0, 1, NOW, GRACE_S) is SequencerStatus.UP


# --- Uniswap v3 TWAP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "window", "tick"),
    [
        (0, 0, 60, 0),
        (0, 600, 60, 10),
        (1_000, 1_659, 60, 10),  # 10.98 → 10
        (0, -600, 60, -10),
        (0, -7, 2, -4),  # −3.5 rounds toward −∞, like OracleLibrary.consult
        (-1_000, -1_001, 60, -1),
        (0, 5, 1, 5),  # a window of one second
        (0, -887_272 * 10, 10, -887_272),  # TickMath.MIN_TICK itself
        (0, 887_272 * 10, 10, 887_272),  # TickMath.MAX_TICK itself
    ],
)
def test_mean_tick_rounds_toward_negative_infinity(
    start: int, end: int, window: int, tick: int
) -> None:
    assert mean_tick(start, end, window) == tick


def test_twap_price_of_a_usdc_weth_pool() -> None:
    # token0 = USDC (6 decimals), token1 = WETH (18): tick 200_000 ≈ 2063 USDC per WETH.
    window = 1_800
    start = 123_456_789
    end = start + 200_000 * window
    weth_per_usdc = twap_price_from_ticks(start, end, window, 6, 18)
    usdc_per_weth = twap_price_from_ticks(start, end, window, 6, 18, invert=True)
    raw = math.exp(200_000 * math.log1p(1e-4))  # 1.0001 ** tick without float's 1.0001 error
    assert float(weth_per_usdc) == pytest.approx(raw * 1e-12, rel=1e-12)
    assert float(usdc_per_weth) == pytest.approx(1e12 / raw, rel=1e-12)
    assert 2_063 < usdc_per_weth < 2_064
    assert abs(weth_per_usdc * usdc_per_weth - 1) < D("1e-38")


def test_twap_price_is_rounded_to_forty_significant_digits() -> None:
    # 1.0001 ** 200_000 (USDC per WETH before the 10**12 scale) to 100 digits, then rounded
    # half-even to 40: the product keeps 40 significant digits, not the default context's 28.
    wide = Context(prec=100)
    exact = wide.scaleb(wide.power(D("1.0001"), 200_000), -12)
    expected = Context(prec=40, rounding=ROUND_HALF_EVEN).plus(exact)
    price = twap_price_from_ticks(0, 200_000 * 60, 60, 6, 18)
    assert len(price.as_tuple().digits) == 40
    assert price == expected


def test_twap_tick_zero_is_one_adjusted_by_decimals() -> None:
    assert twap_price_from_ticks(0, 0, 60, 18, 18) == 1
    assert twap_price_from_ticks(0, 0, 60, 8, 18) == D("1E-10")
    assert twap_price_from_ticks(0, 0, 60, 8, 18, invert=True) == D("1E10")


@pytest.mark.parametrize(
    ("start", "end", "window", "match"),
    [
        (0, 60, 0, "window_s"),
        (0, 887_273 * 10, 10, "outside"),
        (0, -887_273 * 10, 10, "outside"),
    ],
)
def test_twap_rejects_bad_inputs(start: int, end: int, window: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        twap_price_from_ticks(start, end, window, 18, 18)


def test_twap_takes_tokens_without_decimals_and_refuses_negative_ones() -> None:
    # 0 decimals is a valid token (e.g. some wrapped NFTs' fractions): tick 0 scales by 10**±d
    assert twap_price_from_ticks(0, 0, 60, 0, 6) == D("1E-6")
    assert twap_price_from_ticks(0, 0, 60, 6, 0) == D("1E6")
    assert twap_price_from_ticks(0, 0, 60, 0, 0) == 1
    for d0, d1 in ((-1, 6), (6, -1)):
        with pytest.raises(ValueError, match=r"^decimals must be >= 0$"):
            twap_price_from_ticks(0, 0, 60, d0, d1)
