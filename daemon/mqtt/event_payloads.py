"""MQTT event payloads: the events a stored transition raises, encoded from the store alone.

Each event is built from its ``health_transitions`` row and the block numbers of the cycle
that stored it (``OutboxEntry``), never from live memory, so a re-send after a restart — and
the API's event stream (``daemon.api.sse``) — carries the same bytes for the same id. The JSON
is ``encode_json(event_payload(entry))`` (README, MQTT), spelt out as one format string per
event (``event_payload_bytes``): a market-wide move encodes tens of thousands at once.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence

from daemon.documents import cached_flag_names
from daemon.mqtt.outbox import Message
from daemon.mqtt.topics import Topics, flag_events
from daemon.store.records import OutboxEntry
from margin.model import Flag, flag_names

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # encode_json's format
_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def event_payload(entry: OutboxEntry) -> dict[str, object]:
    """The JSON document of every event a stored transition raises (README, MQTT): built
    from the store alone, so each delivery of one id carries the same payload."""
    return {
        "id": entry.id,
        "account": entry.account,
        "from_flags": flag_names(Flag(entry.from_flags)),
        "to_flags": flag_names(Flag(entry.to_flags)),
        "health": entry.health,  # encode_json turns ∞ (no debt) into null
        "health_latency": entry.health_latency,
        "shortfall": str(entry.shortfall),
        "actionable": entry.actionable,
        "blocks": dict(entry.blocks),
        "at": entry.at,
    }


def event_messages(topics: Topics, entry: OutboxEntry) -> list[Message]:
    """The events (topic, payload) one stored transition raises, in order; often none (a
    change of held reasons alone raises no event).

    The payload is ``encode_json(event_payload(...))``, spelt out for speed (a market-wide
    move encodes tens of thousands): see ``event_payload_bytes``; a test holds the two equal.
    """
    return batch_messages(topics, [entry])


def batch_messages(topics: Topics, entries: Sequence[OutboxEntry]) -> list[Message]:
    """``event_messages`` of every entry, in order; the block numbers of each cycle (one
    mapping shared by its entries) are encoded once per batch, not once per event."""
    blocks: dict[int, str] = {}
    held = []  # keeps each mapping alive while its id() is a key above
    out: list[Message] = []
    for entry in entries:
        kinds = flag_events(entry.from_flags, entry.to_flags)
        if not kinds:
            continue
        key = id(entry.blocks)
        encoded = blocks.get(key)
        if encoded is None:
            encoded = blocks[key] = _blocks_json(entry.blocks)
            held.append(entry.blocks)
        payload = event_payload_bytes(entry, encoded)
        out.extend((topics.event(kind), payload) for kind in kinds)
    return out


def event_payload_bytes(entry: OutboxEntry, blocks_json: str) -> bytes:
    """``encode_json(event_payload(entry))`` without building the document: the keys in sorted
    order, compact separators, ∞/NaN as null, strings escaped by ``json``'s own C escaper
    (``ensure_ascii``, as ``encode_json``); ``blocks_json`` is ``_blocks_json(entry.blocks)``."""
    return (
        f'{{"account":{_string(entry.account)},'
        f'"actionable":{"true" if entry.actionable else "false"},'
        f'"at":{_number(entry.at)},'
        f'"blocks":{blocks_json},'
        f'"from_flags":{_flags_json(entry.from_flags)},'
        f'"health":{_number(entry.health)},'
        f'"health_latency":{_number(entry.health_latency)},'
        f'"id":{int(entry.id)},'
        f'"shortfall":{_string(str(entry.shortfall))},'
        f'"to_flags":{_flags_json(entry.to_flags)}}}'
    ).encode()


def _number(value: float) -> str:
    if isinstance(value, float):
        return float.__repr__(value) if math.isfinite(value) else "null"
    return _ENCODER.encode(value)  # an int where a float was expected: as encode_json does


@functools.cache
def _flags_json(flags: int) -> str:
    return _ENCODER.encode(list(cached_flag_names(flags)))


def _blocks_json(blocks: Mapping[str, int]) -> str:
    return _ENCODER.encode({str(chain): int(number) for chain, number in sorted(blocks.items())})
