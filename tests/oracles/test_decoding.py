"""How the sources read raw answers: JSON paths, numbers, timestamps, Hermes entries, ABI words."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eth_abi.abi import encode

from oracles.model import DropReason
from oracles.sources.base import SourceFault
from oracles.sources.chainlink import decode_decimals, decode_round_data
from oracles.sources.http import HTTP_PRESETS, lookup, parse_path, to_decimal, to_timestamp
from oracles.sources.pyth import hermes_url, normalize_feed_id, parse_hermes
from oracles.sources.twap import decode_tick_cumulatives, observe_calldata

FEED_ID = "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"


def malformed(fn: Any, *args: Any) -> str:
    with pytest.raises(SourceFault) as info:
        fn(*args)
    assert info.value.reason is DropReason.MALFORMED
    return info.value.detail


def test_json_paths() -> None:
    kraken = {"error": [], "result": {"XETHZUSD": {"c": ["3000.12", "0.5"]}}}
    assert lookup(kraken, parse_path("result.*.c.0")) == "3000.12"
    assert "no data.amount" in malformed(lookup, {"data": {}}, parse_path("data.amount"))
    assert "no result.*.c.5" in malformed(lookup, kraken, parse_path("result.*.c.5"))
    assert "2 keys" in malformed(lookup, {"result": {"a": 1, "b": 2}}, parse_path("result.*"))
    with pytest.raises(ValueError, match="bad JSON path"):
        parse_path("data..amount")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3000.12000000", Decimal("3000.12")), (Decimal("1.5"), Decimal("1.5")), (7, Decimal(7))],
)
def test_prices_are_exact_decimals(value: Any, expected: Decimal) -> None:
    assert to_decimal(value, "price") == expected


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}, "abc", "Infinity", "1" * 101])
def test_non_numbers_are_malformed(value: Any) -> None:
    malformed(to_decimal, value, "price")


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1_700_000_000, "s", 1_700_000_000.0),
        ("1700000000", "s", 1_700_000_000.0),
        (1_700_000_000_250, "ms", 1_700_000_000.25),
        ("2023-11-14T22:13:20Z", "s", 1_700_000_000.0),
        ("2023-11-14T22:13:20", "s", 1_700_000_000.0),  # no offset: UTC
        ("2023-11-14T23:13:20+01:00", "s", 1_700_000_000.0),
    ],
)
def test_timestamps(value: Any, unit: Any, expected: float) -> None:
    assert to_timestamp(value, unit) == expected


def test_presets_build_real_urls() -> None:
    assert HTTP_PRESETS["coinbase"].url(None, "ETH-USD") == (
        "https://api.coinbase.com/v2/prices/ETH-USD/spot"
    )
    assert HTTP_PRESETS["kraken"].url("http://127.0.0.1:1/", "ETH USD").endswith("pair=ETH%20USD")


def test_hermes_answers() -> None:
    entry = {"id": FEED_ID, "price": {"price": "-5", "conf": "1", "expo": -8, "publish_time": 9}}
    assert parse_hermes({"parsed": [entry]}, FEED_ID) == (-5, 1, -8, 9)
    assert normalize_feed_id("0x" + FEED_ID.upper()) == FEED_ID
    assert hermes_url("https://h/", "0x" + FEED_ID).endswith(f"latest?ids[]={FEED_ID}&parsed=true")
    assert "not in the answer" in malformed(parse_hermes, {"parsed": []}, FEED_ID)
    assert "no parsed" in malformed(parse_hermes, [entry], FEED_ID)
    bad = {**entry, "price": {**entry["price"], "price": "1.5"}}  # type: ignore[dict-item]
    assert "not an integer" in malformed(parse_hermes, {"parsed": [bad]}, FEED_ID)


def test_abi_words() -> None:
    words = encode(["uint80", "int256", "uint256", "uint256", "uint80"], [1, -7, 2, 3, 1])
    data = decode_round_data("0x" + words.hex())
    assert (data.answer, data.started_at, data.updated_at) == (-7, 2, 3)
    assert "no data" in malformed(decode_round_data, "0x")
    assert "64 bytes" in malformed(decode_round_data, "0x" + "00" * 64)
    assert decode_decimals("0x" + encode(["uint8"], [18]).hex()) == 18
    assert "decimals() returned 200" in malformed(decode_decimals, "0x" + f"{200:064x}")
    cumulatives = encode(["int56[]", "uint160[]"], [[-1_000, 5_000], [0, 0]])
    assert decode_tick_cumulatives("0x" + cumulatives.hex()) == (-1_000, 5_000)
    assert observe_calldata(60).startswith("0x883bdbfd")
    assert len(observe_calldata(60)) == 2 + 8 + 4 * 64
