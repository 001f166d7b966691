"""Real Mosquitto brokers, a TCP gate and a collecting subscriber for the MQTT tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import Callable
from getpass import getuser
from pathlib import Path
from types import TracebackType
from typing import Self

import aiomqtt

from tests import waitkit
from tests.faultproxy import free_port
from tests.waitkit import WAIT_S

BURST_SETTINGS = (
    # Mosquitto drops QoS 1 messages for a subscriber beyond 1,000 queued ones by default;
    # event bursts (a market crash) would then lose events between broker and keeper.
    "max_queued_messages 0",
    # Without it Mosquitto's small PUBACKs can wait for Nagle + delayed ACK (~40 ms).
    "set_tcp_nodelay true",
)
"""Broker settings every test broker gets (README, MQTT, recommends them too)."""
BROKER_START_TIMEOUT_S = 30.0  # generous: two cores shared by several test runs
POLL_S = 0.01


async def wait_until(
    predicate: Callable[[], bool],
    timeout_s: float = WAIT_S,
    *,
    what: str = "condition",
    seen: Callable[[], object] | None = None,
) -> None:
    """Poll ``predicate`` until it holds (``tests.waitkit``): a generous bound, and a failure
    that shows ``seen()`` (what the predicate looked at) when given."""
    await waitkit.eventually(predicate, what=what, timeout_s=timeout_s, poll_s=POLL_S, seen=seen)


class Mosquitto:
    """A private Mosquitto on 127.0.0.1:``port`` (no persistence: a restart forgets retained),
    with ``BURST_SETTINGS``; ``listener_lines`` are added under its listener (TLS files).

    ``users`` switches anonymous access off and writes a password file for them.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        users: dict[str, str] | None = None,
        listener_lines: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.users = users or {}
        self.listener_lines = listener_lines  # e.g. certfile/keyfile: a TLS listener
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>`` (no credentials)."""
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start it and wait until it accepts TCP connections."""
        # Run as ourselves: as root Mosquitto would switch to its own user, which cannot read
        # the password file in pytest's private tmp dir.
        lines = [
            f"listener {self.port} 127.0.0.1",
            *self.listener_lines,
            "persistence false",
            f"user {getuser()}",
            *BURST_SETTINGS,
        ]
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for user, password in self.users.items():
                await _run("mosquitto_passwd", "-b", str(passwd), user, password)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._proc = await asyncio.create_subprocess_exec(
            "mosquitto",
            "-c",
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline or self._proc.returncode is not None:
                    raise RuntimeError(f"mosquitto did not start on port {self.port}") from None
                await asyncio.sleep(POLL_S)
            else:
                writer.close()
                return

    async def kill(self) -> None:
        """SIGKILL it (a crash: no clean shutdown) and reap it."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGKILL)
            await self._proc.wait()
        self._proc = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()


class TcpGate:
    """A TCP forwarder to a broker that can be shut (connection refused) and opened at will."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<gate port>``."""
        return f"mqtt://127.0.0.1:{self.port}"

    async def open(self) -> None:
        """Start listening: clients reach the broker from now on."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        """Stop listening and cut every forwarded connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(src, dst, writer, up_writer))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


class Subscriber:
    """A separate aiomqtt client that records every message on ``topic`` (QoS 1)."""

    def __init__(
        self, port: int, topic: str, *, username: str | None = None, password: str | None = None
    ) -> None:
        self.messages: list[aiomqtt.Message] = []
        self._values: dict[str, list[object]] = {}  # key → payload[key] of each message
        self._topic = topic
        self._client = aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=f"test-sub-{uuid.uuid4().hex[:8]}",
            username=username,
            password=password,
        )
        self._task: asyncio.Task[None] | None = None

    def payloads(self, topic: str) -> list[bytes]:
        """Payloads received on exactly ``topic``, in arrival order."""
        return [_payload(m) for m in self.messages if m.topic.value == topic]

    def values(self, key: str) -> list[object]:
        """``payload[key]`` of every message received so far (JSON objects), in arrival
        order. Each message is decoded once, however often this is called: a wait that polls
        every few ms must not decode thousands of messages each time (that starves the
        subscriber's own reading on the same event loop)."""
        values = self._values.setdefault(key, [])
        for message in self.messages[len(values) :]:
            values.append(json.loads(_payload(message))[key])
        return values

    def latest(self) -> dict[str, bytes]:
        """The last payload per topic."""
        return {m.topic.value: _payload(m) for m in self.messages}

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        await self._client.subscribe(self._topic, qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(exc_type, exc, tb)

    async def _collect(self) -> None:
        async for message in self._client.messages:
            self.messages.append(message)


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    assert isinstance(payload, bytes)
    return payload


async def _pipe(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    *writers: asyncio.StreamWriter,
) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        for writer in writers:
            writer.transport.abort()


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {err.decode(errors='replace')}")
