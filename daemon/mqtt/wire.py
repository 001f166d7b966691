"""MQTT 3.1.1 packets of a publish-only QoS 1 connection, as bytes (no I/O).

The event link (``daemon.mqtt.event_link``) speaks only this part of the protocol: CONNECT /
CONNACK, PUBLISH (QoS 1) / PUBACK, PINGREQ / PINGRESP and DISCONNECT, the protocol level
aiomqtt negotiates for the rest of the daemon (paho's default, 3.1.1). Encoding a burst is one
``bytearray`` for many PUBLISH packets (written with one ``write()``); decoding takes whatever
bytes arrived and returns the packet ids acknowledged in them (OASIS MQTT 3.1.1, sections 2
and 3).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import RetryableError

PROTOCOL_LEVEL_311 = 4
MAX_REMAINING_LENGTH = 268_435_455  # the largest the 4-byte variable length can say
MAX_PACKET_ID = 65_535  # packet ids are 1 … 65,535 (0 is not a valid id)

CONNECT = 0x10
CONNACK = 0x20
PUBLISH_QOS1 = 0x32  # PUBLISH, QoS 1, not retained, not a duplicate
RETAIN = 0x01
PUBACK = 0x40
PINGREQ_PACKET = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT_PACKET = b"\xe0\x00"

_USERNAME_FLAG = 0x80
_PASSWORD_FLAG = 0x40
_CLEAN_SESSION_FLAG = 0x02

CONNACK_REFUSALS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
"""CONNACK return codes other than 0 (accepted), as the specification names them."""

_U16 = struct.Struct(">H")


class ProtocolViolation(RetryableError):
    """The broker sent bytes this connection cannot take (a packet it must never send to a
    publish-only client, or a malformed one): the connection is dropped and made again."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"MQTT protocol violation from the broker: {problem}")


def remaining_length(length: int) -> bytes:
    """The variable-length encoding of a packet's remaining length (1–4 bytes)."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"an MQTT packet cannot carry {length} bytes")
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def utf8_field(text: str) -> bytes:
    """A length-prefixed UTF-8 string field."""
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"an MQTT string holds at most 65,535 bytes, not {len(raw)}")
    return _U16.pack(len(raw)) + raw


def connect_packet(
    *, client_id: str, keepalive_s: int, username: str | None, password: str | None
) -> bytes:
    """CONNECT with a clean session and no will (the will lives on the daemon's main
    connection); ``password`` is sent only with a ``username``, as MQTT 3.1.1 requires."""
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError(f"keepalive must be 0 … 65,535 s, not {keepalive_s}")
    flags = _CLEAN_SESSION_FLAG
    payload = utf8_field(client_id)
    if username is not None:
        flags |= _USERNAME_FLAG
        payload += utf8_field(username)
        if password is not None:
            flags |= _PASSWORD_FLAG
            payload += utf8_field(password)
    body = utf8_field("MQTT") + bytes((PROTOCOL_LEVEL_311, flags)) + _U16.pack(keepalive_s)
    body += payload
    return bytes((CONNECT,)) + remaining_length(len(body)) + body


class PublishEncoder:
    """Builds QoS 1 PUBLISH packets; each topic's header part is encoded once and kept (a
    burst goes to a handful of topics)."""

    def __init__(self) -> None:
        self._topics: dict[str, bytes] = {}

    def append(
        self, out: bytearray, topic: str, payload: bytes, packet_id: int, *, retain: bool
    ) -> None:
        """Append one PUBLISH packet for ``payload`` on ``topic`` to ``out``."""
        field = self._topics.get(topic)
        if field is None:
            if not topic or "+" in topic or "#" in topic:
                raise ValueError(f"not a topic to publish on: {topic!r}")
            field = self._topics[topic] = utf8_field(topic)
        length = len(field) + 2 + len(payload)
        out.append(PUBLISH_QOS1 | RETAIN if retain else PUBLISH_QOS1)
        if length < 0x80:
            out.append(length)
        elif length < 0x4000:
            out += bytes(((length & 0x7F) | 0x80, length >> 7))
        else:
            out += remaining_length(length)
        out += field
        out += _U16.pack(packet_id)
        out += payload

    def packets(
        self, messages: Sequence[tuple[str, bytes]], first_id: int, *, retain: bool
    ) -> bytearray:
        """PUBLISH packets of ``messages`` with ids ``first_id``, ``first_id + 1`` … (the
        caller keeps them within 1 … 65,535)."""
        out = bytearray()
        for offset, (topic, payload) in enumerate(messages):
            self.append(out, topic, payload, first_id + offset, retain=retain)
        return out


@dataclass(frozen=True, slots=True)
class ConnAck:
    """The broker's answer to CONNECT: ``code`` 0 is accepted."""

    code: int

    @property
    def refusal(self) -> str | None:
        """Why the broker refused the connection, or None when it accepted it."""
        if self.code == 0:
            return None
        return CONNACK_REFUSALS.get(self.code, f"return code {self.code}")


class PacketReader:
    """Incremental decoder of what the broker sends a publish-only client: bytes in, the
    acknowledged packet ids (and any CONNACK / PINGRESP) out. Keeps a partial packet until
    the rest arrives."""

    def __init__(self) -> None:
        self._pending = b""
        self.connack: ConnAck | None = None
        self.pingresps = 0

    def feed(self, data: bytes) -> list[int]:
        """Decode every whole packet in what arrived so far; return the PUBACKed packet ids
        in their order. Raise ``ProtocolViolation`` on anything else than CONNACK (once,
        first), PUBACK or PINGRESP."""
        buf = self._pending + data if self._pending else data
        acked: list[int] = []
        i, end = 0, len(buf)
        while i < end:
            kind = buf[i]
            if kind == PUBACK and i + 4 <= end and buf[i + 1] == 2:  # the hot path
                acked.append((buf[i + 2] << 8) | buf[i + 3])
                i += 4
                continue
            header = _packet_extent(buf, i)
            if header is None:
                break  # incomplete: wait for more
            start, stop = header
            if stop > end:
                break
            self._packet(kind, buf[start:stop], acked)
            i = stop
        self._pending = buf[i:]
        return acked

    def _packet(self, kind: int, body: bytes, acked: list[int]) -> None:
        if kind == PUBACK:
            if len(body) != 2:
                raise ProtocolViolation(f"PUBACK of {len(body)} bytes")
            acked.append(_U16.unpack(body)[0])
        elif kind == CONNACK:
            if self.connack is not None:
                raise ProtocolViolation("a second CONNACK")
            if len(body) != 2:
                raise ProtocolViolation(f"CONNACK of {len(body)} bytes")
            self.connack = ConnAck(code=body[1])
        elif kind == PINGRESP:
            self.pingresps += 1
        else:
            raise ProtocolViolation(f"unexpected packet type 0x{kind:02x}")


def _packet_extent(buf: bytes, i: int) -> tuple[int, int] | None:
    """(start of the body, end of the packet) of the packet at ``i``, or None while its length
    bytes have not all arrived."""
    length, shift, at = 0, 0, i + 1
    while True:
        if at >= len(buf):
            return None
        byte = buf[at]
        length |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return at, at + length
        shift += 7
        if shift > 21:
            raise ProtocolViolation("remaining length longer than 4 bytes")
