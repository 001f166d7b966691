"""The events' own connection (``daemon.mqtt.event_link``) against real Mosquitto brokers:
delivery once and in order, a broker killed mid-batch, cuts and stalls through a TCP proxy,
keepalive, refused logins, TLS, and a peer that breaks the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from core.lifecycle import within
from daemon.config.model import MqttConfig
from daemon.mqtt.acks import LinkLost
from daemon.mqtt.event_link import EventLink
from daemon.mqtt.event_session import EventSession
from daemon.mqtt.outbox import Message
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.session import BrokerAddress
from tests.mqttkit import Mosquitto, Subscriber, wait_until
from tests.tcpproxy import TcpProxy

WINDOW = 1000


def address(port: int, *, user: str | None = None, password: str | None = None) -> BrokerAddress:
    return BrokerAddress(host="127.0.0.1", port=port, username=user, password=password, tls=False)


async def connect(
    broker: BrokerAddress,
    *,
    keepalive_s: int = 30,
    ack_timeout_s: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> EventLink:
    return await EventLink.connect(
        broker,
        client_id=f"test-events-{uuid.uuid4().hex[:8]}",
        keepalive_s=keepalive_s,
        tls_context=tls_context,
        window=WINDOW,
        ack_timeout_s=ack_timeout_s,
    )


def numbered(topic: str, count: int, start: int = 0) -> list[Message]:
    return [(topic, b'{"seq":%d}' % seq) for seq in range(start, start + count)]


def seqs(keeper: Subscriber, topic: str) -> list[int]:
    return [json.loads(payload)["seq"] for payload in keeper.payloads(topic)]


async def test_events_arrive_once_and_in_order_across_the_packet_id_wraparound(
    broker: Mosquitto, prefix: str
) -> None:
    topic = f"{prefix}/events/liquidatable"
    unwatched = 70_000  # more than the 65,535 packet ids: ids are reused once acknowledged
    async with Subscriber(broker.port, topic) as keeper:
        link = await connect(address(broker.port))
        await link.publish(numbered(f"{prefix}/events/unwatched", unwatched), retain=False)
        assert link.acknowledged == unwatched
        await link.publish(numbered(topic, 5_000), retain=False)  # ids past the wrap
        assert link.acknowledged == unwatched + 5_000
        link.close()
        await wait_until(
            lambda: len(keeper.messages) >= 5_000,
            what="5,000 events at the keeper",
            seen=lambda: len(keeper.messages),
        )
    assert seqs(keeper, topic) == list(range(5_000))
    assert not any(m.retain for m in keeper.messages)


async def test_a_broker_killed_mid_batch_hands_back_exactly_what_it_did_not_acknowledge(
    tmp_path: Path, prefix: str
) -> None:
    topic = f"{prefix}/events/liquidatable"
    messages = numbered(topic, 100_000)
    async with Mosquitto(tmp_path) as doomed:
        link = await connect(address(doomed.port))
        publishing = asyncio.create_task(link.publish(messages, retain=False))
        await wait_until(lambda: link.acknowledged >= 1_000, seen=lambda: link.acknowledged)
        await doomed.kill()  # SIGKILL while thousands are in flight
        with pytest.raises(LinkLost) as lost:
            await publishing
        assert not link.alive
        left = lost.value.unacknowledged
        # Mosquitto acknowledges in order: what is handed back is the tail, each message once
        assert 0 < len(left) == len(messages) - link.acknowledged
        assert left == messages[len(messages) - len(left) :]

        await doomed.start()  # the same port again: what was handed back goes out
        again = await connect(address(doomed.port))
        await again.publish(left, retain=False)
        assert again.acknowledged == len(left)
        again.close()


async def test_a_stalled_connection_fails_after_the_ack_timeout_with_every_message_back(
    broker: Mosquitto, prefix: str
) -> None:
    async with TcpProxy("127.0.0.1", broker.port) as proxy:
        link = await connect(address(proxy.port), ack_timeout_s=0.5)
        proxy.pause()  # a black hole: nothing is refused, nothing is answered
        messages = numbered(f"{prefix}/events/x", 2_500)
        with pytest.raises(LinkLost, match=r"no PUBACK within 0\.5s") as lost:
            await link.publish(messages, retain=False)
        assert lost.value.unacknowledged == messages
        assert not link.alive
        proxy.resume()


async def test_a_cancelled_publish_retires_the_link_and_the_next_connection_works(
    broker: Mosquitto, prefix: str
) -> None:
    async with TcpProxy("127.0.0.1", broker.port) as proxy:
        link = await connect(address(proxy.port))
        proxy.pause()  # nothing is acknowledged: the publish is still waiting when cancelled
        publishing = asyncio.create_task(
            link.publish(numbered(f"{prefix}/events/x", 10), retain=False)
        )
        await wait_until(lambda: proxy.connections == 1 and not publishing.done())
        await asyncio.sleep(0.05)  # a short look: it waits for PUBACKs that cannot come
        publishing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await publishing
        assert link.failure == "a publish was cancelled"
        with pytest.raises(LinkLost, match="a publish was cancelled") as lost:
            await link.publish(numbered(f"{prefix}/events/x", 2), retain=False)
        assert len(lost.value.unacknowledged) == 2
        proxy.resume()
        again = await connect(address(proxy.port))
        await again.publish(numbered(f"{prefix}/events/x", 10), retain=False)
        assert again.acknowledged == 10
        again.close()


async def test_keepalive_pings_an_idle_link_and_a_silent_broker_fails_it(
    broker: Mosquitto, prefix: str
) -> None:
    async with TcpProxy("127.0.0.1", broker.port) as proxy:
        # keepalive 1 s: Mosquitto drops a client silent for 1.5 s, so staying connected
        # over several seconds of idleness needs the PINGREQs
        link = await connect(address(proxy.port), keepalive_s=1, ack_timeout_s=0.5)
        await wait_until(lambda: link.pings_answered >= 4, seen=lambda: link.pings_answered)
        assert link.alive
        await link.publish(numbered(f"{prefix}/events/x", 1), retain=False)
        proxy.pause()
        await wait_until(lambda: not link.alive, seen=lambda: link.failure)
        assert link.failure == "no PINGRESP within 0.5s"
        proxy.resume()


async def test_a_refused_login_names_the_reason_and_a_good_one_publishes(
    tmp_path: Path, prefix: str
) -> None:
    user, password = "alice", "p@ss:w/rd-7f3a"
    topic = f"{prefix}/events/x"
    async with Mosquitto(tmp_path, users={user: password}) as secured:
        with pytest.raises(LinkLost, match="broker refused the connection: not authorised"):
            await connect(address(secured.port, user=user, password="wrong"))
        with pytest.raises(LinkLost, match="broker refused the connection: not authorised"):
            await connect(address(secured.port))  # anonymous: off
        async with Subscriber(secured.port, topic, username=user, password=password) as keeper:
            link = await connect(address(secured.port, user=user, password=password))
            await link.publish(numbered(topic, 5), retain=False)
            link.close()
            await wait_until(lambda: len(keeper.messages) == 5)
        assert seqs(keeper, topic) == list(range(5))


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1"
    command += " -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    return cert, key


async def test_events_go_over_tls_and_an_untrusted_broker_is_refused(
    tmp_path: Path, tls_files: tuple[Path, Path], prefix: str
) -> None:
    cert, key = tls_files
    lines = (f"certfile {cert}", f"keyfile {key}")
    topic = f"{prefix}/events/x"
    async with Mosquitto(tmp_path, listener_lines=lines) as secured:
        tls = BrokerAddress("127.0.0.1", secured.port, username=None, password=None, tls=True)
        with pytest.raises(LinkLost, match="CERTIFICATE_VERIFY_FAILED"):
            await connect(tls, tls_context=ssl.create_default_context())  # system CAs only
        link = await connect(tls, tls_context=ssl.create_default_context(cafile=str(cert)))
        await link.publish(numbered(topic, 2_000), retain=False)
        assert link.acknowledged == 2_000
        link.close()


@contextlib.asynccontextmanager
async def fake_broker(answer: bytes) -> AsyncIterator[int]:
    """A loopback peer that reads the CONNECT and answers ``answer`` (then stays silent)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(answer)
        await reader.read()  # until the client goes

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"", r"no CONNACK within 0\.5s"),
        (b"\x20\x02\x00\x00\x30\x05\x00\x01tx\x01", "unexpected packet type 0x30"),
        (b"\x20\x02\x00\x02", "broker refused the connection: client identifier rejected"),
    ],
)
async def test_a_peer_that_breaks_the_protocol_fails_the_link(answer: bytes, problem: str) -> None:
    async with fake_broker(answer) as port:
        with pytest.raises(LinkLost, match=problem):
            await connect_and_publish_one(address(port))


async def connect_and_publish_one(broker: BrokerAddress) -> None:
    link = await connect(broker, ack_timeout_s=0.5)
    await link.publish([("t", b"x")], retain=False)


async def test_a_proxy_cut_mid_delivery_loses_no_event_and_repeats_few(
    broker: Mosquitto, prefix: str
) -> None:
    count = 20_000
    topic = f"{prefix}/events/liquidatable"
    async with (
        TcpProxy("127.0.0.1", broker.port) as proxy,
        Subscriber(broker.port, topic) as keeper,
    ):
        settings = MqttConfig(
            url=f"mqtt://127.0.0.1:{proxy.port}",
            topic_prefix=prefix,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
        )
        async with MqttPublisher(settings, in_flight_window=WINDOW) as publisher:
            await wait_until(lambda: publisher.connected)
            # Cut once a tenth of the events' topics and payloads went out (a cut fixed by
            # bytes, not by the clock: the events' connection can send all 20,000 between two
            # polls). Beyond the first 1,000 (the in-flight window) every PUBLISH needed a
            # PUBACK first, so some were acknowledged before the cut and most were not.
            messages = numbered(topic, count)
            proxy.cut_after(sum(len(t) + len(p) for t, p in messages[: count // 10]))
            delivery = asyncio.create_task(publisher.deliver(messages))
            await wait_until(lambda: proxy.is_cut, what="the cut mid-delivery")
            await asyncio.sleep(0.2)  # a short look: delivery does NOT complete while cut
            assert not delivery.done()
            assert 0 < publisher.stats().published < count
            await proxy.restore()
            await delivery
            assert publisher.stats().events == count
            assert publisher.stats().reconnects >= 1
        await wait_until(
            lambda: len(set(keeper.values("seq"))) == count,
            what=f"all {count} events at the keeper",
            seen=lambda: len(keeper.messages),
        )
    # at least once: only what was in flight at the cut (unacknowledged) is repeated
    assert len(keeper.messages) - count < WINDOW


async def test_the_password_never_shows_in_a_refused_event_connection(
    tmp_path: Path, prefix: str
) -> None:
    user, password = "bob", "s3cr3t-pass"
    async with Mosquitto(tmp_path, users={user: "other"}) as secured:
        url = f"mqtt://{user}:{quote(password, safe='')}@127.0.0.1:{secured.port}"
        settings = MqttConfig(url=url, topic_prefix=prefix, reconnect_min_s=0.05)
        async with MqttPublisher(settings) as refused:
            await wait_until(lambda: refused.stats().last_error is not None)
            shown = f"{refused!r} {refused.stats()}"
    assert "not authorised" in shown or "Not authorized" in shown
    assert password not in shown


async def test_the_session_reconnects_counts_and_closes_even_mid_connect(
    broker: Mosquitto, prefix: str
) -> None:
    topic = f"{prefix}/events/x"
    async with TcpProxy("127.0.0.1", broker.port) as proxy:
        session = EventSession(
            address(proxy.port),
            client_id=f"test-{uuid.uuid4().hex[:8]}",
            keepalive_s=30,
            tls_context=None,
            window=WINDOW,
            ack_timeout_s=600.0,  # a connection attempt would wait this long for its CONNACK
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
            shown_url="mqtt://127.0.0.1/…",
        )
        session.start()
        link = await within(session.current_link(), 30)
        await link.publish(numbered(topic, 10), retain=False)
        proxy.cut()
        await wait_until(lambda: not session.connected)
        await proxy.restore()
        again = await within(session.current_link(), 30)
        await again.publish(numbered(topic, 5), retain=False)
        assert (session.reconnects, session.acknowledged) == (1, 15)

        accepted = proxy.accepted
        proxy.pause()  # the next attempt gets its TCP connection and never a CONNACK
        proxy.cut()
        await proxy.restore()
        await wait_until(lambda: proxy.accepted > accepted, seen=lambda: proxy.accepted)
        await within(session.close(), 30)  # not the 600 s of the CONNACK wait
        assert not session.connected
        with pytest.raises(LinkLost, match="the publisher is not running"):
            await session.current_link()
        proxy.resume()
