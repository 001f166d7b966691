"""QoS 1 publishing cost per message: the events' own connection against paho (issue 14).

    uv run python -P bench/event_link.py                  # 50,000 messages, 3 rounds each
    uv run python -P bench/event_link.py --messages 100000 --rounds 5
    uv run python -P bench/event_link.py --busy-ms 150 --window 20000 --lean-only

With ``--busy-ms`` a task on the same event loop holds it that long every ``--busy-every-ms``
(as the engine's full recompute does on every price round after a market-wide move), messages
go out in batches of ``--batch`` one after the other (as the event relay delivers them), and a
QoS 1 ``mosquitto_sub`` must receive every one: the figure is then the burst's wall time on a
shared, busy loop, to the last PUBACK and to the subscriber's last message.

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
BATCH = 10_000  # the relay's batch (mqtt.max_pending's default)
TOPIC = "bench/events/liquidatable"


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def event_messages(count: int) -> list[Message]:
    """Event-sized payloads on one topic (the relay's shape: a handful of topics)."""
    pad = b"x" * 250
    return [
        (TOPIC, b'{"id":%d,"account":"0x%040x","pad":"%s"}' % (i, i, pad)) for i in range(count)
    ]


async def lean(
    broker: BrokerAddress, messages: list[Message], args: argparse.Namespace
) -> tuple[float, float]:
    link = await EventLink.connect(
        broker,
        client_id=f"bench-lean-{os.getpid()}",
        keepalive_s=30,
        tls_context=None,
        window=args.window,
        ack_timeout_s=ACK_TIMEOUT_S,
    )
    wall, cpu = time.perf_counter(), cpu_s()
    if not args.busy_ms:
        await link.publish(messages, retain=False)
        out = time.perf_counter() - wall, cpu_s() - cpu
    else:
        out = await busy(link, messages, args)
    assert link.acknowledged == len(messages)
    link.close()
    return out


async def hog(busy_s: float, every_s: float, stop: asyncio.Event) -> None:
    """Hold the event loop ``busy_s`` every ``every_s`` (an engine recompute per round)."""
    while not stop.is_set():
        await asyncio.sleep(every_s)
        until = time.perf_counter() + busy_s
        while time.perf_counter() < until:
            pass


async def busy(
    link: EventLink, messages: list[Message], args: argparse.Namespace
) -> tuple[float, float]:
    """Batches one after the other on a loop held by ``hog``: (s to the last PUBACK, s to the
    subscriber's last message)."""
    sub = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(args.port), "-q", "1"),
        *("-C", str(len(messages)), "-t", TOPIC, "--nodelay"),
        stdout=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # subscribed before the burst
    stop = asyncio.Event()
    hogging = asyncio.create_task(hog(args.busy_ms / 1000, args.busy_every_ms / 1000, stop))
    await asyncio.sleep(args.busy_every_ms / 2000)
    wall = time.perf_counter()
    for start in range(0, len(messages), args.batch):
        await link.publish(messages[start : start + args.batch], retain=False)
    acked = time.perf_counter() - wall
    await asyncio.wait_for(sub.wait(), ACK_TIMEOUT_S)
    received = time.perf_counter() - wall
    stop.set()
    await hogging
    return acked, received


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
            args.port = mosquitto.port
            for _ in range(args.rounds):
                results["EventLink"].append(await lean(broker, messages, args))
                if not args.lean_only:
                    results["paho Link"].append(await paho(broker, messages))
    if args.lean_only:
        del results["paho Link"]
    load = "load " + " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.messages:,} QoS 1 messages, {args.window} in flight, {args.rounds} rounds; {load}"
    )
    if args.busy_ms:
        print(
            f"loop held {args.busy_ms:g} ms every {args.busy_every_ms:g} ms, batches of "
            f"{args.batch:,}; columns: s to the last PUBACK / s to the subscriber's last message"
        )
    if args.busy_ms:
        print("| publisher | last PUBACK s (median) | subscriber's last s (median) | rounds |")
        print("|---|---:|---:|---|")
        for name, laps in results.items():
            acked = statistics.median(a for a, _ in laps)
            received = statistics.median(r for _, r in laps)
            each = ", ".join(f"{a:.2f}/{r:.2f}" for a, r in laps)
            print(f"| {name} | {acked:.3f} | {received:.3f} | {each} |")
        return
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
    parser.add_argument("--window", type=int, default=WINDOW, help="EventLink's in-flight window")
    parser.add_argument("--lean-only", action="store_true", help="EventLink only, not paho")
    parser.add_argument("--busy-ms", type=float, default=0.0, help="hold the loop this long …")
    parser.add_argument("--busy-every-ms", type=float, default=100.0, help="… this often")
    parser.add_argument("--batch", type=int, default=BATCH, help="messages per publish (busy)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
