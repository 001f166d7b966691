"""QoS 1 publishing cost per message: the events' own connection against paho (issue 14).

    uv run python -P bench/event_link.py                  # 50,000 messages, 3 rounds each
    uv run python -P bench/event_link.py --messages 100000 --rounds 5

Publishes the same messages (the size of an event: ~330 bytes) to a private Mosquitto, QoS 1,
1,000 in flight, until every PUBACK, alternating in each round between:

- ``EventLink`` (``daemon.mqtt.event_link``): PUBLISH packets written half a window at a time,
  PUBACKs matched in bulk — what ``MqttPublisher.deliver`` uses now;
- ``Link`` (``daemon.mqtt.acks``) through paho inside an aiomqtt client — what it used before,
  and what retained state still uses.

Prints wall time and this process's CPU time per round, medians, and the load average. Nobody
subscribes: what is measured is the publisher's side (and the broker's PUBACKs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] != str(ROOT):  # first: bench/venues.py must not shadow the venues package
    sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402

from daemon.mqtt.acks import Link  # noqa: E402
from daemon.mqtt.event_link import EventLink  # noqa: E402
from daemon.mqtt.outbox import Message  # noqa: E402
from daemon.mqtt.session import BrokerAddress  # noqa: E402
from tests.mqttkit import Mosquitto  # noqa: E402

WINDOW = 1000
ACK_TIMEOUT_S = 60.0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def event_messages(count: int) -> list[Message]:
    """Event-sized payloads on one topic (the relay's shape: a handful of topics)."""
    pad = b"x" * 250
    return [
        ("bench/events/liquidatable", b'{"id":%d,"account":"0x%040x","pad":"%s"}' % (i, i, pad))
        for i in range(count)
    ]


async def lean(broker: BrokerAddress, messages: list[Message]) -> tuple[float, float]:
    link = await EventLink.connect(
        broker,
        client_id=f"bench-lean-{os.getpid()}",
        keepalive_s=30,
        tls_context=None,
        window=WINDOW,
        ack_timeout_s=ACK_TIMEOUT_S,
    )
    wall, cpu = time.perf_counter(), cpu_s()
    await link.publish(messages, retain=False)
    out = time.perf_counter() - wall, cpu_s() - cpu
    assert link.acknowledged == len(messages)
    link.close()
    return out


async def paho(broker: BrokerAddress, messages: list[Message]) -> tuple[float, float]:
    client = aiomqtt.Client(
        broker.host, broker.port, identifier=f"bench-paho-{os.getpid()}", max_inflight_messages=0
    )
    async with client:
        link = Link(client, window=WINDOW, ack_timeout_s=ACK_TIMEOUT_S)
        wall, cpu = time.perf_counter(), cpu_s()
        await link.publish(messages, retain=False)
        out = time.perf_counter() - wall, cpu_s() - cpu
        assert link.acknowledged == len(messages)
    return out


async def run(args: argparse.Namespace) -> None:
    messages = event_messages(args.messages)
    results: dict[str, list[tuple[float, float]]] = {"EventLink": [], "paho Link": []}
    with tempfile.TemporaryDirectory(prefix="bench-event-link-") as work:
        async with Mosquitto(Path(work)) as mosquitto:
            broker = BrokerAddress("127.0.0.1", mosquitto.port, None, None, tls=False)
            for _ in range(args.rounds):
                results["EventLink"].append(await lean(broker, messages))
                results["paho Link"].append(await paho(broker, messages))
    load = "load " + " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.messages:,} QoS 1 messages, {WINDOW} in flight, {args.rounds} rounds; {load}")
    print("| publisher | wall s (median) | CPU s (median) | CPU µs/message | rounds (wall/CPU) |")
    print("|---|---:|---:|---:|---|")
    for name, laps in results.items():
        wall = statistics.median(w for w, _ in laps)
        cpu = statistics.median(c for _, c in laps)
        each = ", ".join(f"{w:.2f}/{c:.2f}" for w, c in laps)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {cpu / args.messages * 1e6:.1f} | {each} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
