"""The events connection's MQTT 3.1.1 packets (``daemon.mqtt.wire``), as bytes: tables from
the OASIS specification, and a decoder fed every possible split of what arrives."""

from __future__ import annotations

import pytest

from daemon.mqtt.wire import (
    ConnAck,
    PacketReader,
    ProtocolViolation,
    PublishEncoder,
    connect_packet,
    remaining_length,
)


@pytest.mark.parametrize(
    ("length", "encoded"),
    [  # MQTT 3.1.1 table 2.4
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length(length: int, encoded: bytes) -> None:
    assert remaining_length(length) == encoded


@pytest.mark.parametrize("length", [-1, 268_435_456])
def test_remaining_length_out_of_range_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match=f"cannot carry {length} bytes"):
        remaining_length(length)


def test_connect_packet_without_credentials() -> None:
    assert connect_packet(client_id="c", keepalive_s=30, username=None, password=None) == (
        b"\x10\x0d"  # CONNECT, 13 bytes follow
        b"\x00\x04MQTT\x04"  # protocol name, level 4 (3.1.1)
        b"\x02"  # clean session, no will, no credentials
        b"\x00\x1e"  # keepalive 30 s
        b"\x00\x01c"  # client id
    )


def test_connect_packet_with_credentials_and_a_user_alone() -> None:
    packet = connect_packet(client_id="c", keepalive_s=1, username="u", password="pw")
    assert packet == b"\x10\x14\x00\x04MQTT\x04\xc2\x00\x01\x00\x01c\x00\x01u\x00\x02pw"
    user_only = connect_packet(client_id="c", keepalive_s=1, username="u", password=None)
    assert user_only[9] == 0x82  # a password is only sent with a user name (3.1.2.9)


def test_connect_packet_refuses_a_keepalive_out_of_range() -> None:
    with pytest.raises(ValueError, match="keepalive must be 0 … 65,535 s, not 65536"):
        connect_packet(client_id="c", keepalive_s=65_536, username=None, password=None)


def test_publish_packets_carry_qos1_the_id_and_the_retain_flag() -> None:
    encoder = PublishEncoder()
    out = encoder.packets([("a/b", b"xy"), ("a/b", b"")], 0xFFFE, retain=False)
    assert bytes(out) == (
        b"\x32\x09\x00\x03a/b\xff\xfexy"  # PUBLISH QoS 1: topic, packet id, payload
        b"\x32\x07\x00\x03a/b\xff\xff"
    )
    assert bytes(encoder.packets([("t", b"v")], 1, retain=True)) == b"\x33\x06\x00\x01t\x00\x01v"


@pytest.mark.parametrize("size", [122, 123, 16_376, 16_377, 300_000])
def test_publish_packet_lengths_at_every_encoding_width(size: int) -> None:
    payload = b"p" * size
    out = bytes(PublishEncoder().packets([("t", payload)], 7, retain=False))
    body = b"\x00\x01t\x00\x07" + payload
    assert out == b"\x32" + remaining_length(len(body)) + body


@pytest.mark.parametrize("topic", ["", "a/+/b", "a/#"])
def test_publish_refuses_a_topic_that_is_not_a_topic_name(topic: str) -> None:
    with pytest.raises(ValueError, match="not a topic to publish on"):
        PublishEncoder().packets([(topic, b"x")], 1, retain=False)


def test_reader_takes_acks_split_at_every_byte() -> None:
    stream = (
        b"\x20\x02\x00\x00"  # CONNACK accepted
        + b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in (1, 2, 300, 65_535))
        + b"\xd0\x00"  # PINGRESP
        + b"\x40\x02\x00\x05"
    )
    for cut in range(len(stream) + 1):
        for second in range(cut, len(stream) + 1):
            reader = PacketReader()
            acked = reader.feed(stream[:cut]) + reader.feed(stream[cut:second])
            acked += reader.feed(stream[second:])
            assert acked == [1, 2, 300, 65_535, 5], (cut, second)
            assert reader.connack == ConnAck(code=0)
            assert reader.pingresps == 1


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        (0, None),
        (4, "bad user name or password"),
        (5, "not authorised"),
        (9, "return code 9"),
    ],
)
def test_connack_refusals_are_named(code: int, refusal: str | None) -> None:
    reader = PacketReader()
    assert reader.feed(bytes((0x20, 2, 0, code))) == []
    assert reader.connack is not None
    assert reader.connack.refusal == refusal


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (b"\x30\x05\x00\x01tx\x01", "unexpected packet type 0x30"),  # a PUBLISH to us
        (b"\x20\x02\x00\x00\x20\x02\x00\x00", "a second CONNACK"),
        (b"\x40\x03\x00\x01\x00", "PUBACK of 3 bytes"),
        (b"\x20\x03\x00\x00\x00", "CONNACK of 3 bytes"),
        (b"\x90\xff\xff\xff\xff\x01", "remaining length longer than 4 bytes"),
    ],
)
def test_reader_refuses_what_a_publish_only_client_never_gets(stream: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        PacketReader().feed(stream)
