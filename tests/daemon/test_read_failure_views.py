"""How failed reads and unknown health are shown: the MQTT account state and events, the API
document, the metrics gauge. One representation everywhere: ``health: null`` with
``health_known: false`` and the flags ``READ_FAILED``/``DEBT_UNKNOWN`` — never "no debt"."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest

from core.domain import Role
from daemon.api.schemas import balance_line
from daemon.documents import (
    HealthBucket,
    account_document,
    engine_state,
    health_bucket,
)
from daemon.metrics import Metrics
from daemon.mqtt.topics import AccountSignal, encode_json, transition_events
from daemon.store.records import StoredBalance, StoredHealth
from daemon.store.rows import breakdown_record
from margin.engine import MarginEngine
from margin.model import ChainInput, Flag, PriceInput, TokenRisk

LIQ, LAT = Flag.LIQUIDATABLE, Flag.LATENCY_RISK
FAILED, UNKNOWN = Flag.READ_FAILED, Flag.DEBT_UNKNOWN
TOKENS = [
    TokenRisk(chain="l1", token="weth", asset="ETH", role=Role.COLLATERAL, weight=0.8, decimals=18),
    TokenRisk(chain="l2", token="debt", asset="USDC", role=Role.LIABILITY, weight=1.0, decimals=6),
]


def engine() -> MarginEngine:
    chains = [ChainInput(name=n, liquidation_latency_s=1) for n in ("l1", "l2")]
    e = MarginEngine(tokens=TOKENS, chains=chains)
    e.set_prices([PriceInput(asset="ETH", price=1_800.0), PriceInput(asset="USDC", price=1.0)])
    e.set_balance("bob", "l1", "weth", 10**18, 5)
    e.set_balance("bob", "l2", "debt", 1_500 * 10**6, 5)
    e.set_read_failed("bob", "l2", "debt", 9)  # held at the last good debt
    e.set_balance("carol", "l1", "weth", 10**18, 5)
    e.set_read_failed("carol", "l2", "debt", 9)  # never read: unknown
    e.recompute_all()
    return e


def mqtt_state(e: MarginEngine, account: str) -> dict[str, object]:
    """The retained MQTT account state of ``account``, as the broker gets it."""
    i = e.account_index(account)
    state = engine_state(account, e.results, i, value_decimals=2, at=1.0)
    return json.loads(encode_json(account_document(state)))  # type: ignore[no-any-return]


def test_mqtt_account_state_says_unknown_not_no_debt() -> None:
    e = engine()
    held = mqtt_state(e, "bob")
    assert held["flags"] == ["LIQUIDATABLE", "READ_FAILED"]
    assert held["held_reasons"] == ["READ_FAILED"]
    assert (held["actionable"], held["health_known"], held["bucket"]) == (
        False,
        True,
        "liquidatable",
    )
    assert held["health"] == pytest.approx(1_440 / 1_500)
    unknown = mqtt_state(e, "carol")
    assert unknown["flags"] == ["READ_FAILED", "DEBT_UNKNOWN"]
    assert (unknown["health"], unknown["health_known"], unknown["bucket"]) == (
        None,
        False,
        "unknown",
    )
    assert unknown["actionable"] is False
    assert health_bucket(math.nan) is HealthBucket.UNKNOWN
    assert health_bucket(math.inf) is HealthBucket.NO_DEBT


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        (LIQ, LIQ | FAILED, ()),  # held at its last good debt: no false recovery
        (LIQ, FAILED | UNKNOWN, ()),  # unknown is no recovery either
        (LAT, FAILED | UNKNOWN, ()),
        (FAILED | UNKNOWN, Flag.NONE, ()),  # read at last, owes nothing: never was at risk
        (FAILED | UNKNOWN, LIQ, ("liquidatable",)),
        (LIQ | FAILED, LIQ, ()),
        (LIQ | FAILED, Flag.NONE, ("recovered",)),  # a real recovery once read again
    ],
)
def test_events_around_failed_reads(before: Flag, after: Flag, events: tuple[str, ...]) -> None:
    bucket = HealthBucket.HEALTHY
    assert transition_events(AccountSignal(before, bucket), AccountSignal(after, bucket)) == events


def stored(flags: Flag, health: float) -> StoredHealth:
    zero = Decimal("0.00")
    return StoredHealth(
        account="0xcarol",
        health=health,
        health_latency=health,
        collateral_value=Decimal("1800.00"),
        weighted_collateral=Decimal("1440.00"),
        liability_value=zero,
        weighted_liability=zero,
        unrealized_pnl=zero,
        maintenance=zero,
        shortfall=zero,
        flags=flags,
        actionable=False,
        breakdown=None,
        cycle_id=3,
        updated_at=1.0,
    )


def test_api_documents_tell_unknown_from_infinite() -> None:
    unknown = account_document(stored(FAILED | UNKNOWN, math.nan))
    assert (unknown["health"], unknown["health_latency"], unknown["health_known"]) == (
        None,
        None,
        False,
    )
    assert unknown["flags"] == ["READ_FAILED", "DEBT_UNKNOWN"]
    assert unknown["held_reasons"] == ["READ_FAILED"]
    no_debt = account_document(stored(Flag.NONE, math.inf))
    assert (no_debt["health"], no_debt["health_known"]) == (None, True)
    line = balance_line(
        StoredBalance(
            chain="l2",
            token="0xDEBT",
            account="0xcarol",
            raw=1_500,
            block_number=5,
            block_hash="0x05",
            failed_block_number=9,
        )
    )
    assert line == {
        "chain": "l2",
        "token": "0xdebt",
        "raw": "1500",
        "block": 5,
        "block_hash": "0x05",
        "read_failed": True,
        "failed_block": 9,
    }


def test_failed_holdings_gauge_per_token_goes_back_to_zero() -> None:
    metrics = Metrics()
    metrics.observe_read_failures("l2", ["0xdebt", "0xok"], {"0xdebt": (3, 4)})
    text = metrics.render().decode()
    assert 'crossmargin_failed_holdings{chain="l2",token="0xdebt"} 3.0' in text
    assert 'crossmargin_failed_holdings{chain="l2",token="0xok"} 0.0' in text
    metrics.observe_read_failures("l2", ["0xdebt", "0xok"], {})
    assert 'crossmargin_failed_holdings{chain="l2",token="0xdebt"} 0.0' in metrics.render().decode()


def test_mqtt_api_and_cli_print_one_account_document() -> None:
    """The retained MQTT state (from the engine) and the API's stored state have the same keys,
    breakdown nested, and the same values for the same account."""
    e = engine()
    bob = e.account_index("bob")
    record = breakdown_record(e.account_health("bob"))
    live = account_document(
        engine_state("bob", e.results, bob, value_decimals=2, at=1.0, breakdown=record)
    )
    stored = StoredHealth(
        **{
            **{
                k: getattr(engine_state("bob", e.results, bob, value_decimals=2, at=1.0), k)
                for k in StoredHealth.__dataclass_fields__
            },
            "breakdown": json.loads(json.dumps(record)),  # through the store's JSON column
            "cycle_id": 7,
        }
    )
    api = account_document(stored)
    assert set(live) == set(api)
    assert {k: v for k, v in live.items() if k != "cycle_id"} == {
        k: v for k, v in api.items() if k != "cycle_id"
    }
    assert (live["cycle_id"], api["cycle_id"]) == (None, 7)
    assert set(live["breakdown"]) == {"holdings", "positions"}  # type: ignore[arg-type]
