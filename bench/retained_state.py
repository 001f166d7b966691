"""CPU of deciding and building the retained account state of one market-wide move.

    uv run python -P bench/retained_state.py      # 100,000 accounts, 5 moves

Each move (ETH 2,000 ↔ 1,000 on ``tests.mqtt.test_relay.healthy_book``: every account changes
bucket) runs ``EngineLoop._publish`` over all accounts, then ``Outbox.take_retained`` of all of
them (what the publisher's carrier builds), with an enabled publisher that is never started
(no broker I/O). Prints the CPU seconds (``time.process_time``) of each stage and the medians.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np

from daemon.config.model import MqttConfig
from daemon.engine_loop import EngineLoop
from daemon.mqtt.publisher import MqttPublisher
from daemon.risk_inputs import price_inputs
from daemon.store.writer import HealthStore
from tests.mqtt.test_relay import eth_at, healthy_book

ACCOUNTS = 100_000
MOVES = ("2000", "1000", "2000", "1000", "2000")


async def main() -> None:
    """Run the moves and print the figures."""
    engine = healthy_book(ACCOUNTS)
    publisher = MqttPublisher(MqttConfig(url="mqtt://127.0.0.1:1", topic_prefix="bench"))
    store: HealthStore = None  # type: ignore[assignment]  # _publish never writes
    loop = EngineLoop(engine=engine, store=store, publisher=publisher, value_decimals=2)
    marks: list[float] = []
    builds: list[float] = []
    for price in MOVES:
        engine.set_prices(price_inputs(eth_at(price, 1.0).prices.values()))
        engine.recompute_all()
        started = time.process_time()
        await loop._publish(np.arange(ACCOUNTS, dtype=np.intp), time.time())
        marks.append(time.process_time() - started)
        started = time.process_time()
        taken = publisher._outbox.take_retained(ACCOUNTS)
        builds.append(time.process_time() - started)
        assert len(taken) == ACCOUNTS, len(taken)
    print("mark CPU s: ", " ".join(f"{s:.3f}" for s in marks))
    print("build CPU s:", " ".join(f"{s:.3f}" for s in builds))
    print(f"median: mark {statistics.median(marks):.3f} s, build {statistics.median(builds):.3f} s")


if __name__ == "__main__":
    asyncio.run(main())
