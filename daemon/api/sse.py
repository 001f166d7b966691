"""Server-Sent Events framing of the event stream (``GET /v1/stream``), pure and synchronous.

A frame is ``event: <kind>`` and ``data: <compact JSON>`` lines ended by a blank line; the
frames of stored transitions carry ``id: <transition id>``. One transition can raise two events
(``liquidatable`` and ``latency_risk``): only the LAST frame of a transition carries the id, so
a client that resumes with ``Last-Event-ID: n`` has received every event of transition ``n``
(a client cut between the two frames still holds the previous id and gets both again).

Payloads are the MQTT payloads byte for byte: transition events are built by the MQTT relay's
own builder (``daemon.mqtt.event_payloads.event_messages``) from the stored row, status events by
``encode_json`` of the ``/v1/chains`` and ``/v1/prices`` documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from daemon.mqtt.event_payloads import event_messages
from daemon.mqtt.topics import Topics, encode_json, flag_events
from daemon.store.records import OutboxEntry

CHAIN_EVENT = "chain"
ORACLE_EVENT = "oracle"
_TOPICS = Topics("stream")  # only the payloads of ``event_messages`` are used, never topics

TransitionFrame = tuple[int, bytes]
"""(transition id, the frame bytes of every event it raises)."""


def frame(event: str, data: bytes, *, event_id: int | None = None) -> bytes:
    """One SSE frame; ``data`` is one line of JSON (compact JSON has no newline)."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def comment(text: str) -> bytes:
    """A comment line (heartbeat, notice): ignored by SSE clients, keeps the connection busy."""
    return b": " + text.encode() + b"\n\n"


def retry(milliseconds: int) -> bytes:
    """Tells the client how long to wait before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def transition_frames(entries: Iterable[OutboxEntry]) -> list[TransitionFrame]:
    """The frames of stored transitions, in id order; a transition that raises no event (a
    change of held reasons only) yields nothing, exactly as on MQTT."""
    frames: list[TransitionFrame] = []
    for entry in entries:
        kinds = flag_events(entry.from_flags, entry.to_flags)
        if not kinds:
            continue
        messages = event_messages(_TOPICS, entry)
        last = len(kinds) - 1
        text = b"".join(
            frame(kind, payload, event_id=entry.id if i == last else None)
            for i, (kind, (_topic, payload)) in enumerate(zip(kinds, messages, strict=True))
        )
        frames.append((entry.id, text))
    return frames


def status_frames(
    event: str, documents: Sequence[Mapping[str, object]], key: str
) -> dict[str, bytes]:
    """One status frame per document (a chain or an asset), keyed by ``document[key]``."""
    return {str(d[key]): frame(event, encode_json(d)) for d in documents}
