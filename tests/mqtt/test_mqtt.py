"""MQTT publishing: pure rules as tables, the publisher against real Mosquitto brokers.

Every broker here is a private ``mosquitto`` started by the test (``tests.mqttkit``), without
persistence, so a restart loses retained state exactly like a crashed broker would and the
machine's shared broker is never polluted. Each test uses its own topic prefix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from daemon.config.load import parse_config
from daemon.config.model import MqttConfig
from daemon.documents import HealthBucket, health_bucket
from daemon.mqtt.outbox import Outbox
from daemon.mqtt.publisher import MqttPublisher
from daemon.mqtt.session import BrokerAddress, reconnect_delay
from daemon.mqtt.topics import (
    AccountSignal,
    Topics,
    account_signal,
    encode_json,
    should_publish_state,
    transition_events,
)
from margin.model import Flag
from tests.mqttkit import Mosquitto, Subscriber, TcpGate, wait_until
from tests.waitkit import WAIT_S

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "0xAbCdEf0000000000000000000000000000000001"
FAST_RECONNECT = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2}

B = HealthBucket
LIQ, LAT, STALE = Flag.LIQUIDATABLE, Flag.LATENCY_RISK, Flag.STALE_CHAIN


# --- pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("health", "bucket"),
    [
        (None, B.NO_DEBT),
        (float("inf"), B.NO_DEBT),
        (float("-inf"), B.LIQUIDATABLE),
        (-0.5, B.LIQUIDATABLE),
        (0.0, B.LIQUIDATABLE),
        (0.9999, B.LIQUIDATABLE),
        (1.0, B.CRITICAL),
        (1.0499, B.CRITICAL),
        (1.05, B.WARNING),
        (1.1999, B.WARNING),
        (1.2, B.HEALTHY),
        (1e9, B.HEALTHY),
    ],
)
def test_health_bucket(health: float | None, bucket: HealthBucket) -> None:
    assert health_bucket(health) is bucket


def test_health_bucket_of_nan_is_unknown() -> None:
    assert health_bucket(float("nan")) is B.UNKNOWN  # a liability never read


@pytest.mark.parametrize(
    ("previous", "current", "publish"),
    [
        (None, AccountSignal(Flag.NONE, B.HEALTHY), True),
        (AccountSignal(Flag.NONE, B.HEALTHY), AccountSignal(Flag.NONE, B.HEALTHY), False),
        (AccountSignal(Flag.NONE, B.HEALTHY), AccountSignal(Flag.NONE, B.WARNING), True),
        (AccountSignal(Flag.NONE, B.WARNING), AccountSignal(STALE, B.WARNING), True),
        (AccountSignal(LIQ | STALE, B.LIQUIDATABLE), AccountSignal(LIQ, B.LIQUIDATABLE), True),
        (AccountSignal(LIQ, B.LIQUIDATABLE), AccountSignal(LIQ, B.LIQUIDATABLE), False),
    ],
)
def test_should_publish_state(
    previous: AccountSignal | None, current: AccountSignal, publish: bool
) -> None:
    assert should_publish_state(previous, current) is publish


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        (None, Flag.NONE, ()),
        (None, LIQ, ("liquidatable",)),
        (None, LIQ | LAT, ("liquidatable", "latency_risk")),
        (Flag.NONE, LAT, ("latency_risk",)),
        (LAT, LIQ, ("liquidatable",)),
        (LIQ, LIQ | STALE, ()),
        (LIQ, Flag.NONE, ("recovered",)),
        (LAT, STALE, ("recovered",)),
        (LIQ | LAT, LAT, ()),
        (STALE, Flag.NONE, ()),
    ],
)
def test_transition_events(before: Flag | None, after: Flag, events: tuple[str, ...]) -> None:
    previous = None if before is None else AccountSignal(before, B.HEALTHY)
    assert transition_events(previous, AccountSignal(after, B.HEALTHY)) == events


def test_encode_json_is_compact_sorted_and_safe_for_money_and_infinity() -> None:
    payload = {"b": Decimal("1.10"), "a": float("inf"), "c": [float("nan"), 1.5], "d": B.CRITICAL}
    assert encode_json(payload) == b'{"a":null,"b":"1.10","c":[null,1.5],"d":"critical"}'
    with pytest.raises(TypeError, match="object"):
        encode_json({"x": object()})


def test_topics() -> None:
    topics = Topics("dex/crossmargin")
    assert topics.status == "dex/crossmargin/status"
    assert topics.account(ACCOUNT) == f"dex/crossmargin/accounts/{ACCOUNT.lower()}"
    assert topics.event("recovered") == "dex/crossmargin/events/recovered"
    assert topics.oracle("ETH") == "dex/crossmargin/oracle/ETH"
    assert topics.chain("arbitrum-one") == "dex/crossmargin/chains/arbitrum-one"
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(ValueError, match="topic level"):
            topics.chain(bad)


def test_reconnect_delay_stays_within_bounds_and_grows() -> None:
    for failures in (0, 1, 3, 10, 10_000):
        for _ in range(50):
            delay = reconnect_delay(failures, 0.5, 30.0)
            assert 0.5 <= delay <= min(30.0, 0.5 * 2 ** min(failures, 10))
    assert reconnect_delay(0, 0.5, 30.0) == 0.5


def test_broker_address_from_url_decodes_credentials() -> None:
    password = "p@ss:w/rd"
    url = f"mqtts://alice:{quote(password, safe='')}@broker.example.com"
    assert BrokerAddress.from_url(url) == BrokerAddress(
        host="broker.example.com", port=8883, username="alice", password=password, tls=True
    )
    assert BrokerAddress.from_url("mqtt://127.0.0.1") == BrokerAddress(
        host="127.0.0.1", port=1883, username=None, password=None, tls=False
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"topic_prefix": "a/+/b"}, "wildcards"),
        ({"topic_prefix": "a/#"}, "wildcards"),
        ({"topic_prefix": "/a"}, "must not start with /"),
        ({"topic_prefix": "a/"}, "end with /"),
        ({"topic_prefix": "a//b"}, "empty levels"),
        ({"url": "http://127.0.0.1:1883"}, "mqtt:// or mqtts://"),
        ({"url": "mqtt://"}, "no broker host"),
        ({"url": "mqtt://h:notaport"}, "not a valid URL"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_min_s"),
    ],
)
def test_mqtt_config_validation(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttConfig.model_validate(fields)


def test_mqtt_config_defaults_and_redacted_errors() -> None:
    config = MqttConfig()
    assert (config.url, config.topic_prefix, config.keepalive_s) == (None, "crossmargin", 30)
    assert (config.reconnect_min_s, config.reconnect_max_s, config.max_pending) == (0.5, 30, 10000)
    data = {
        "chains": [{"name": "a", "chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}],
        "tokens": [
            {"chain": "a", "address": "0x" + "11" * 20, "asset": "ETH", "role": "collateral"}
            | {"weight": 0.8}
        ],
        "accounts": ["0x" + "22" * 20],
        "mqtt": {"url": "ftp://alice:hunter2@broker:1883"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.key == "mqtt.url"
    assert "hunter2" not in str(caught.value)
    assert "alice" not in str(caught.value)
    assert "ftp://broker:1883/…#" in str(caught.value)
    data["mqtt"] = {"url": "mqtt://127.0.0.1:1883", "topic_prefix": "risk/crossmargin"}
    assert parse_config(data).mqtt.topic_prefix == "risk/crossmargin"


def test_account_signals_are_shared_per_value() -> None:
    bits = int(Flag.LIQUIDATABLE | Flag.LATENCY_RISK)
    signal = account_signal(bits, HealthBucket.CRITICAL)
    assert signal == AccountSignal(Flag.LIQUIDATABLE | Flag.LATENCY_RISK, HealthBucket.CRITICAL)
    assert type(signal.flags) is Flag
    assert account_signal(bits, HealthBucket.CRITICAL) is signal
    assert account_signal(bits, HealthBucket.WARNING) != signal
    assert not should_publish_state(signal, account_signal(bits, HealthBucket.CRITICAL))


def test_outbox_keeps_latest_retained_and_forgets_confirmed_deletes() -> None:
    outbox = Outbox()
    assert outbox.retain("p/a", b"1")
    assert not outbox.retain("p/a", b"1")  # unchanged: nothing to publish
    assert outbox.retain("p/a", b"2")
    assert outbox.take_retained(10) == [("p/a", b"2")]
    assert outbox.take_retained(10) == []
    outbox.retained_failed(("p/a", b"2"))  # lost with the connection: due again
    assert outbox.take_retained(10) == [("p/a", b"2")]
    outbox.retained_done(("p/a", b"2"))
    outbox.retain("p/b", b"")
    outbox.retain("p/c", b"3")
    outbox.connected()  # a new connection republishes everything, in batches
    assert outbox.due == 3
    assert outbox.take_retained(2) == [("p/a", b"2"), ("p/b", b"")]
    assert outbox.take_retained(2) == [("p/c", b"3")]
    outbox.retained_done(("p/b", b""))
    assert outbox.retained_topics == 2


def test_outbox_keeps_accounts_under_their_address_and_publishes_their_topic() -> None:
    topics = Topics("p")
    outbox = Outbox(account_prefix=topics.accounts_prefix)
    alice, bob = "0x" + "a1" * 20, "0x" + "b0" * 20
    assert outbox.retain(topics.account_key(alice), b"1")
    outbox.retain_rows([topics.account_key(bob.upper().replace("0X", "0x"))], [2], Rows())
    assert outbox.retain("p/oracle/ETH", b"3")
    assert outbox.take_retained(10) == [
        (topics.account(alice), b"1"),
        (topics.account(bob), b"2"),
        ("p/oracle/ETH", b"3"),
    ]
    assert topics.account(alice) == f"p/accounts/{alice}"
    outbox.retained_failed((topics.account(bob), b"2"))  # due again, under its address
    assert not outbox.retain(topics.account_key(bob), b"2")  # the same key: unchanged
    assert outbox.take_retained(10) == [(topics.account(bob), b"2")]
    outbox.retain(topics.account_key(alice), b"")
    assert outbox.take_retained(10) == [(topics.account(alice), b"")]
    outbox.retained_done((topics.account(alice), b""))  # a confirmed delete is forgotten
    assert outbox.retained_topics == 2
    outbox.connected()
    assert outbox.take_retained(10) == [(topics.account(bob), b"2"), ("p/oracle/ETH", b"3")]


class Rows:
    """A ``PayloadRows`` source whose payload of row n is ``b"n"``; records what it built."""

    def __init__(self) -> None:
        self.built: list[int] = []

    def payload(self, row: int) -> bytes:
        self.built.append(row)
        return b"%d" % row


def test_outbox_builds_a_lazy_payload_once_when_it_is_taken() -> None:
    outbox = Outbox()
    rows = Rows()
    outbox.retain_rows(["p/a"], [1], rows)
    outbox.retain_rows(["p/a"], [2], rows)  # replaced before it was published
    assert rows.built == []
    assert outbox.take_retained(10) == [("p/a", b"2")]
    outbox.connected()
    assert outbox.take_retained(10) == [("p/a", b"2")]  # republished as built, not rebuilt
    assert rows.built == [2]
    assert not outbox.retain("p/a", b"2")


# --- the publisher against real brokers ------------------------------------------------------


def config(url: str, prefix: str, **fields: object) -> MqttConfig:
    return MqttConfig.model_validate({"url": url, "topic_prefix": prefix, **fields})


async def test_disabled_publisher_is_a_no_op() -> None:
    async with MqttPublisher(MqttConfig()) as publisher:
        publisher.set_account_state(ACCOUNT, {"health": 2.0})
        with pytest.raises(RuntimeError, match="MQTT is off"):
            await publisher.deliver([("p/events/liquidatable", b"{}")])
        stats = publisher.stats()
    assert not stats.enabled
    assert (stats.retained_topics, stats.events, stats.published) == (0, 0, 0)


async def test_retained_state_reaches_a_late_subscriber(broker: Mosquitto, prefix: str) -> None:
    topics = Topics(prefix)
    account = {"health": float("inf"), "shortfall": Decimal("0"), "flags": []}
    async with MqttPublisher(config(broker.url, prefix)) as publisher:
        publisher.set_account_state(ACCOUNT, account)
        publisher.set_oracle_status("ETH", {"status": "OK", "price": Decimal("3150.25")})
        publisher.set_chain_status("mainnet", {"head": 123, "lag_s": 1.5})
        await wait_until(lambda: publisher.stats().published == 4)  # status + 3 retained

        async with Subscriber(broker.port, f"{prefix}/#") as late:
            await wait_until(lambda: len(late.messages) == 4)
        assert all(m.retain for m in late.messages)
        assert late.latest() == {
            topics.status: b"online",
            f"{prefix}/accounts/{ACCOUNT.lower()}": b'{"flags":[],"health":null,"shortfall":"0"}',
            f"{prefix}/oracle/ETH": b'{"price":"3150.25","status":"OK"}',
            f"{prefix}/chains/mainnet": b'{"head":123,"lag_s":1.5}',
        }

        publisher.clear_account(ACCOUNT.upper().replace("0X", "0x"))
        await wait_until(lambda: publisher.stats().retained_topics == 2)
        async with Subscriber(broker.port, f"{prefix}/#") as later:
            await wait_until(lambda: len(later.messages) == 3)
            await asyncio.sleep(0.1)  # a short look: the cleared account does NOT come back
        assert topics.account(ACCOUNT) not in later.latest()


def events(topics: Topics, seqs: range) -> list[tuple[str, bytes]]:
    return [
        (topics.event("liquidatable" if seq % 2 else "latency_risk"), b'{"seq":%d}' % seq)
        for seq in seqs
    ]


async def test_events_are_qos1_acknowledged_and_arrive_in_order(
    broker: Mosquitto, prefix: str
) -> None:
    window = 1000
    count = 3 * window + 7  # more than one window in flight
    async with (
        Subscriber(broker.port, f"{prefix}/events/#") as keeper,
        MqttPublisher(config(broker.url, prefix), in_flight_window=window) as publisher,
    ):
        await publisher.deliver(events(Topics(prefix), range(count)))
        assert publisher.stats().events == count  # deliver returned: every PUBACK is in
        await wait_until(lambda: len(keeper.messages) == count)
    assert [json.loads(m.payload or b"")["seq"] for m in keeper.messages] == list(range(count))
    assert {m.qos for m in keeper.messages} == {1}
    assert not any(m.retain for m in keeper.messages)
    assert keeper.messages[1].topic.value == f"{prefix}/events/liquidatable"


async def test_status_online_while_running_offline_after_close(
    broker: Mosquitto, prefix: str
) -> None:
    status = Topics(prefix).status
    publisher = MqttPublisher(config(broker.url, prefix))
    async with Subscriber(broker.port, status) as watcher, publisher:
        await wait_until(lambda: watcher.payloads(status) == [b"online"])
        assert publisher.connected
    await publisher.close()  # idempotent
    await wait_until(lambda: watcher.payloads(status) == [b"online", b"offline"])
    assert not publisher.connected
    async with Subscriber(broker.port, status) as late:
        await wait_until(lambda: late.payloads(status) == [b"offline"])
        assert late.messages[0].retain


CHILD = """
import asyncio, sys
from daemon.config.model import MqttConfig
from daemon.mqtt.publisher import MqttPublisher

async def main():
    config = MqttConfig(url=sys.argv[1], topic_prefix=sys.argv[2])
    async with MqttPublisher(config) as publisher:
        while publisher.stats().published < 1:
            await asyncio.sleep(0.01)
        print("online", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_abrupt_death_publishes_the_last_will(broker: Mosquitto, prefix: str) -> None:
    status = Topics(prefix).status
    async with Subscriber(broker.port, status) as watcher:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            broker.url,
            prefix,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            assert await asyncio.wait_for(child.stdout.readline(), WAIT_S) == b"online\n"
            await wait_until(lambda: watcher.payloads(status) == [b"online"])
        finally:
            child.kill()  # SIGKILL: no DISCONNECT, no offline of its own
            await child.wait()
        await wait_until(lambda: watcher.payloads(status) == [b"online", b"offline"])


async def test_broker_down_at_start_then_everything_is_delivered(
    broker: Mosquitto, prefix: str
) -> None:
    gate = TcpGate(broker.port)  # shut: the publisher's connections are refused
    topic = Topics(prefix).event("liquidatable")
    async with MqttPublisher(config(gate.url, prefix, **FAST_RECONNECT)) as publisher:
        # Retained state never waits for the broker: the setters are plain functions (nothing
        # to await) that keep the latest state per topic for the publisher task to send.
        publisher.set_account_state(ACCOUNT, {"bucket": "critical"})
        publisher.set_oracle_status("ETH", {"status": "OK"})
        publisher.set_chain_status("mainnet", {"head": 1})
        assert publisher.stats().retained_topics == 3
        delivery = asyncio.create_task(
            publisher.deliver([(topic, b'{"seq":%d}' % seq) for seq in range(5)])
        )
        await wait_until(lambda: publisher.stats().last_error is not None, what="a failed connect")
        stats = publisher.stats()
        assert not stats.connected
        assert not delivery.done()  # events wait for their PUBACK

        async with Subscriber(broker.port, f"{prefix}/#") as keeper:
            await gate.open()
            await asyncio.wait_for(delivery, 10)
            await wait_until(lambda: len(keeper.messages) == 9)
            assert publisher.connected
        latest = keeper.latest()
        assert latest[Topics(prefix).status] == b"online"
        assert latest[Topics(prefix).account(ACCOUNT)] == b'{"bucket":"critical"}'
        assert latest[f"{prefix}/oracle/ETH"] == b'{"status":"OK"}'
        assert latest[f"{prefix}/chains/mainnet"] == b'{"head":1}'
        assert keeper.payloads(topic) == [b'{"seq":%d}' % seq for seq in range(5)]
        assert publisher.stats().events == 5
    await gate.close()


async def test_broker_restart_republishes_retained_state(tmp_path: Path, prefix: str) -> None:
    topics = Topics(prefix)
    async with Mosquitto(tmp_path) as restartable:
        settings = config(restartable.url, prefix, **FAST_RECONNECT)
        async with MqttPublisher(settings) as publisher:
            publisher.set_account_state(ACCOUNT, {"bucket": "warning"})
            publisher.set_oracle_status("ETH", {"status": "OK"})
            publisher.set_chain_status("mainnet", {"head": 7})
            await wait_until(lambda: publisher.stats().published == 4)

            await restartable.kill()  # crash: with persistence off it forgets everything
            await wait_until(lambda: not publisher.connected)
            publisher.set_oracle_status("ETH", {"status": "TRIPPED"})  # changes while down
            publisher.set_account_state("0x" + "ab" * 20, {"bucket": "liquidatable"})
            await restartable.start()

            await wait_until(lambda: publisher.connected and publisher.stats().reconnects >= 1)
            await wait_until(lambda: publisher.stats().published >= 4 + 5)  # status + 4 again
            async with Subscriber(restartable.port, f"{prefix}/#") as late:
                await wait_until(lambda: len(late.messages) == 5)
    assert late.latest() == {
        topics.status: b"online",
        topics.account(ACCOUNT): b'{"bucket":"warning"}',
        topics.account("0x" + "ab" * 20): b'{"bucket":"liquidatable"}',
        topics.oracle("ETH"): b'{"status":"TRIPPED"}',
        topics.chain("mainnet"): b'{"head":7}',
    }
    assert all(m.retain for m in late.messages)


async def test_credentials_are_used_and_never_logged(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    user, password = "alice", "p@ss:w/rd-7f3a"
    caplog.set_level(logging.DEBUG)
    async with Mosquitto(tmp_path, users={user: password}) as secured:
        good = f"mqtt://{user}:{quote(password, safe='')}@127.0.0.1:{secured.port}"
        bad = f"mqtt://{user}:{quote('wrong-' + password, safe='')}@127.0.0.1:{secured.port}"
        status = Topics(prefix).status
        async with (
            Subscriber(secured.port, status, username=user, password=password) as watcher,
            MqttPublisher(config(good, prefix)) as publisher,
        ):
            await wait_until(lambda: watcher.payloads(status) == [b"online"])
        async with MqttPublisher(config(bad, f"{prefix}-bad", **FAST_RECONNECT)) as refused:
            await wait_until(lambda: refused.stats().last_error is not None)
            await asyncio.sleep(0.2)  # a short look: the refused login does NOT connect later
            assert not refused.connected
            shown = f"{refused!r} {refused.stats()} {publisher!r} {publisher.stats()}"
    assert f"mqtt://127.0.0.1:{secured.port}/…#" in caplog.text
    assert "mqtt_unavailable" in caplog.text
    for secret in (password, quote(password, safe=""), "wrong-", user):
        assert secret not in caplog.text
        assert secret not in shown
