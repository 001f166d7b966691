"""The chaos storm's judge (``bench/chaos_ledger.py``) counts what it claims to count: a storm
reporting zeros must be a storm that found nothing, not a judge that cannot see."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bench.chaos_book import State, Truth
from bench.chaos_ledger import Episode, judge
from bench.chaos_probe import Availability
from margin.model import Flag, flag_names

A = "0x" + "a1" * 20
WETH, DEBT = "0x" + "e1" * 20, "0x" + "d1" * 20
CALM, CRASH = Decimal(2000), Decimal(1700)  # 1 WETH against 1,500: health 1.067 / 0.907
NONE, LIQ = int(Flag.NONE), int(Flag.LIQUIDATABLE)
TRUTH = Truth(WETH, DEBT)


def episode(index: int, kind: str, last_id: int, expected: int, *prices: Decimal) -> Episode:
    settled = Episode(index, kind, expected={A: expected}, last_id=last_id, settled=True)
    for price in prices:
        settled.legit.add(State({A: 10**18}, {A: 1500 * 10**6}, price))
    return settled


def row(transition_id: int, before: int, after: int) -> dict[str, Any]:
    return {"id": transition_id, "account": A, "from_flags": before, "to_flags": after}


def event(transition_id: int, after: int, health: float = 0.9) -> bytes:
    names = flag_names(Flag(after))
    document = {"id": transition_id, "account": A, "to_flags": names, "health": health}
    return json.dumps(document).encode()


def run(
    episodes: Sequence[Episode],
    rows: Sequence[Mapping[str, Any]],
    delivered: Mapping[tuple[str, int], list[bytes]],
) -> Any:
    return judge(episodes, rows, delivered, TRUTH, Availability())


def test_a_clean_storm_counts_the_change_and_tells_a_resend_from_a_duplicate() -> None:
    episodes = [episode(0, "start", 0, NONE, CALM), episode(1, "kill", 1, LIQ, CALM, CRASH)]
    payload = event(1, LIQ)
    verdict = run(episodes, [row(1, NONE, LIQ)], {("liquidatable", 1): [payload, payload]})
    kill = verdict.tallies["kill"]
    assert (kill.expected, kill.stored, kill.published, kill.resends) == (1, 1, 1, 1)
    assert (kill.lost, kill.duplicated, kill.false_events, kill.false_transitions) == (0, 0, 0, 0)
    assert verdict.problems == {}


def test_every_kind_of_defect_is_counted() -> None:
    episodes = [
        episode(0, "start", 0, NONE, CALM),
        episode(1, "kill", 2, LIQ, CALM, CRASH),
        episode(2, "reorg", 3, LIQ, CRASH),  # under water all along: no recovery was true
    ]
    rows = [row(1, NONE, LIQ), row(2, NONE, LIQ), row(3, LIQ, NONE)]
    delivered = {
        ("liquidatable", 2): [event(2, LIQ), event(2, LIQ, health=0.8)],  # two payloads
        ("recovered", 3): [event(3, NONE)],  # false: the account never recovered
        ("liquidatable", 99): [event(99, LIQ)],  # no such transition
    }  # id 1 never delivered
    verdict = run(episodes, rows, delivered)
    kill, reorg, total = verdict.tallies["kill"], verdict.tallies["reorg"], verdict.total
    assert (kill.duplicated_stored, kill.duplicated_payload, kill.lost_published) == (1, 1, 1)
    assert (reorg.false_transitions, reorg.false_events, reorg.lost_stored) == (1, 1, 1)
    assert (total.lost, total.duplicated, total.false_events) == (2, 2, 2)  # + the phantom
    assert set(verdict.problems) == {
        "duplicated_stored",
        "duplicated_payload",
        "lost_published",
        "false_transition",
        "lost_stored",
        "phantom_event",
    }
