"""Judging a chaos storm: stored transitions and delivered events against the ground truth.

The storm is a sequence of *episodes* (one fault each, with the balance or price change it
hides behind), each ending at a *settled point* where the bench checked the daemon's state
against the truth and noted the highest stored transition id. Transitions with ids in
(previous settle, this settle] belong to the episode; an episode that could not settle lends
its legitimate states to the next one.

Per episode and account:
- *expected*: the account's true flags changed between the two settled points (one
  transition, raising one event: ``liquidatable`` or ``recovered``).
- *lost*: an expected change the store does not end the episode with (``lost_stored``), or a
  stored transition whose event never reached the keeper by the end (``lost_published``).
- *duplicated*: a stored transition repeating the previous one for the account (same from and
  to: one change stored twice), or one id delivered with two different payloads. The same
  payload delivered again is an at-least-once re-send (``resends``), not a duplicate.
- *false*: a stored transition to flags the account never truly had during the episode, or an
  event whose id is unknown to the store or whose content disagrees with the stored row.
- *inconsistent*: a stored transition whose ``from_flags`` is not the account's previous
  ``to_flags`` and that is not a duplicate either.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_book import Legit, Truth
from bench.chaos_probe import Availability
from daemon.mqtt.topics import flag_events
from margin.model import Flag, flag_names

KINDS = ("start", "reorg", "kill", "db_cut", "broker_cut")
DETAIL_LIMIT = 8  # examples kept per kind of problem


@dataclass
class Episode:
    """One fault (and the change it hides behind), up to its settled point."""

    index: int
    kind: str
    legit: Legit = field(default_factory=Legit)
    faults: Counter[str] = field(default_factory=Counter)
    detail: list[str] = field(default_factory=list)
    expected: dict[str, int] = field(default_factory=dict)
    last_id: int = 0
    settled: bool = False
    caught_up: bool = False  # chains read and prices seen: what is stored can be judged
    settle_s: float = 0.0
    fault_s: float = 0.0  # how long its outage lasted, or the daemon stayed dead
    last_seen: str = ""
    orphan_refs: int = 0


@dataclass
class Tally:
    """Figures of one storm type (or the total)."""

    episodes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    expected: int = 0
    stored: int = 0
    published: int = 0
    event_ids: int = 0  # stored transitions that raise events
    lost_stored: int = 0
    lost_published: int = 0
    duplicated_stored: int = 0
    duplicated_payload: int = 0
    inconsistent: int = 0
    transient: int = 0  # stored transitions beyond the net change (states true only briefly)
    false_transitions: int = 0
    false_events: int = 0
    resends: int = 0
    unavailable_s: float = 0.0
    not_ready_s: float = 0.0
    reasons_s: dict[str, float] = field(default_factory=dict)  # unavailable or not ready, why
    fault_s: float = 0.0
    unsettled: int = 0
    settle_s: list[float] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Expected but never stored, or stored and never published."""
        return self.lost_stored + self.lost_published

    @property
    def duplicated(self) -> int:
        """Stored twice for one change, or one id with two payloads."""
        return self.duplicated_stored + self.duplicated_payload

    def add(self, other: Tally) -> None:
        """Sum ``other`` into this one."""
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, Counter):
                mine.update(value)
            elif isinstance(value, dict):
                for key, seconds in value.items():
                    mine[key] = mine.get(key, 0.0) + seconds
            elif isinstance(value, list):
                mine.extend(value)
            else:
                setattr(self, name, mine + value)


@dataclass
class Judgement:
    """Tallies per storm type and the examples behind any defect."""

    tallies: dict[str, Tally]
    total: Tally
    problems: dict[str, list[str]]


Delivered = Mapping[tuple[str, int], Sequence[bytes]]


def deliveries(messages: Iterable[Any], prefix: str) -> dict[tuple[str, int], list[bytes]]:
    """Every event received, by (kind, id), in arrival order."""
    out: dict[tuple[str, int], list[bytes]] = {}
    for message in messages:
        topic = message.topic.value
        if not topic.startswith(f"{prefix}/events/"):
            continue
        payload = message.payload
        assert isinstance(payload, bytes)
        out.setdefault((topic.rsplit("/", 1)[-1], json.loads(payload)["id"]), []).append(payload)
    return out


def judge(
    episodes: Sequence[Episode],
    rows: Sequence[Mapping[str, Any]],
    delivered: Delivered,
    truth: Truth,
    availability: Availability,
) -> Judgement:
    """Judge every stored transition and delivered event; sum per storm type."""
    problems: dict[str, list[str]] = {}

    def problem(kind: str, text: str) -> None:
        examples = problems.setdefault(kind, [])
        if len(examples) < DETAIL_LIMIT:
            examples.append(text)

    tallies = {kind: Tally() for kind in KINDS}
    stored_ids = {int(r["id"]): r for r in rows}
    episode_of: dict[int, Episode] = {}
    previous_to: dict[str, int] = {}
    previous_row: dict[str, Mapping[str, Any]] = {}
    expected_before: dict[str, int] = {}
    carried = Legit()
    lower = 0
    position = 0
    for number, episode in enumerate(episodes):
        tally = tallies[episode.kind]
        tally.episodes += 1
        tally.faults.update(episode.faults)
        tally.fault_s += episode.fault_s
        tally.unavailable_s += availability.unavailable_s.get(episode.index, 0.0)
        tally.not_ready_s += availability.not_ready_s.get(episode.index, 0.0)
        for reason, seconds in availability.reasons_s.get(episode.index, {}).items():
            tally.reasons_s[reason] = tally.reasons_s.get(reason, 0.0) + seconds
        if episode.settled:
            tally.settle_s.append(episode.settle_s)
        else:
            tally.unsettled += 1
            problem("unsettled", f"episode {episode.index} ({episode.kind}): {episode.last_seen}")
        legit = Legit()
        legit.merge(carried)
        legit.merge(episode.legit)
        last = number == len(episodes) - 1
        upper = episode.last_id if not last else max(stored_ids, default=0)
        upper = max(upper, lower)
        touched: list[str] = []
        before_episode = dict(previous_to)
        while position < len(rows) and int(rows[position]["id"]) <= upper:
            row = rows[position]
            position += 1
            episode_of[int(row["id"])] = episode
            account = str(row["account"]).lower()
            before, after = int(row["from_flags"]), int(row["to_flags"])
            tally.stored += 1
            touched.append(account)
            had = previous_to.get(account, 0)
            if before != had:
                prior = previous_row.get(account)
                if prior is not None and (before, after) == (
                    int(prior["from_flags"]),
                    int(prior["to_flags"]),
                ):
                    tally.duplicated_stored += 1
                    problem("duplicated_stored", _row_text(row, episode))
                else:
                    tally.inconsistent += 1
                    problem("inconsistent", f"{_row_text(row, episode)} after {_names(had)}")
            if after not in legit.flags(truth, account):
                tally.false_transitions += 1
                kinds = flag_events(before, after)
                tally.false_events += sum(1 for k in kinds if (k, int(row["id"])) in delivered)
                problem("false_transition", _row_text(row, episode))
            previous_to[account] = after
            previous_row[account] = row
        lower = upper
        for account, count in Counter(touched).items():
            net = episode.expected.get(account, before_episode.get(account, 0)) != (
                before_episode.get(account, 0)
            )
            tally.transient += max(0, count - int(net))
        for account, flags in episode.expected.items():
            changed = flags != expected_before.get(account, 0)
            tally.expected += changed
            if previous_to.get(account, 0) != flags and (episode.settled or episode.caught_up):
                tally.lost_stored += 1
                problem(
                    "lost_stored",
                    f"episode {episode.index} ({episode.kind}) {account}: stored "
                    f"{_names(previous_to.get(account, 0))}, true {_names(flags)}",
                )
        if episode.expected:
            expected_before = dict(episode.expected)
        carried = Legit() if episode.settled else legit
    phantoms = _judge_events(stored_ids, episode_of, delivered, tallies, problem)
    total = Tally()
    for tally in tallies.values():
        total.add(tally)
    total.false_events += phantoms
    return Judgement(tallies, total, problems)


def _judge_events(
    stored: Mapping[int, Mapping[str, Any]],
    episode_of: Mapping[int, Episode],
    delivered: Delivered,
    tallies: Mapping[str, Tally],
    problem: Any,
) -> int:
    """Judge every delivered event; the number of events no stored transition explains."""
    for transition_id, row in stored.items():
        episode = episode_of.get(transition_id)
        if episode is None:
            continue
        tally = tallies[episode.kind]
        kinds = flag_events(int(row["from_flags"]), int(row["to_flags"]))
        if not kinds:
            continue
        tally.event_ids += 1
        got = [k for k in kinds if (k, transition_id) in delivered]
        if got:
            tally.published += 1
        if len(got) < len(kinds):
            tally.lost_published += 1
            problem("lost_published", _row_text(row, episode))
        for kind in got:
            payloads = delivered[(kind, transition_id)]
            tally.resends += len(payloads) - len(set(payloads))
            if len(set(payloads)) > 1:
                tally.duplicated_payload += 1
                problem("duplicated_payload", f"{kind} id {transition_id}: {set(payloads)}")
            event = json.loads(payloads[0])
            to_flags = flag_names(Flag(int(row["to_flags"])))
            if event["account"] != str(row["account"]).lower() or event["to_flags"] != to_flags:
                tally.false_events += 1
                problem("event_content", f"{kind} id {transition_id}: {event} vs stored {row}")
    phantoms = 0
    for (name, transition_id), payloads in delivered.items():
        if transition_id not in stored:
            phantoms += 1
            problem("phantom_event", f"{name} id {transition_id}: {payloads[0]!r}")
    return phantoms


def _names(flags: int) -> str:
    return "|".join(flag_names(Flag(flags))) or "NONE"


def _row_text(row: Mapping[str, Any], episode: Episode) -> str:
    return (
        f"id {row['id']} episode {episode.index} ({episode.kind}) {row['account']}: "
        f"{_names(int(row['from_flags']))} -> {_names(int(row['to_flags']))}"
    )
