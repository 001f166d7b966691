"""Availability as a keeper sees it: ``/v1/liquidatable`` and ``/readyz`` polled all storm long.

Each path is polled on its own (a slow answer on one does not blur the other). A sample of
``/v1/liquidatable`` is *unavailable* when it answers anything but 200 or nothing at all within
``ANSWER_BOUND_S`` (a refused connection while the daemon restarts counts); one of ``/readyz``
is *not ready* when it is not 200. Each sample's interval (until that path's next sample) is
charged to the episode running when its answer came back: an episode that began while the
request was in flight (its fault injected) caused what it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp

PROBE_PERIOD_S = 0.25
ANSWER_BOUND_S = 12.0  # slower is "not at all": a hang (the API's own deadline is 10 s)
REASON_CHARS = 160
API_PATH = "/v1/liquidatable?limit=1"
READY_PATH = "/readyz"
LABELS = {API_PATH: "API", READY_PATH: "readyz"}


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe of one path: when, during which episode, and what was wrong (None: 200)."""

    at: float
    episode: int
    path: str
    problem: str | None


@dataclass
class Availability:
    """Unavailable and not-ready seconds per episode, and per episode and reason."""

    unavailable_s: dict[int, float] = field(default_factory=dict)
    not_ready_s: dict[int, float] = field(default_factory=dict)
    reasons_s: dict[int, dict[str, float]] = field(default_factory=dict)
    samples: int = 0


class Prober:
    """Polls the API in the background; ``availability()`` sums what it saw."""

    def __init__(self, api: str, episode: Callable[[], int]) -> None:
        self.api = api
        self.episode = episode
        self.samples: list[Sample] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # A fresh connection per request: a pooled one to a killed daemon would fail once
        # after its restart and be counted as an outage that was not there.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=ANSWER_BOUND_S),
        )
        self._tasks = [
            asyncio.create_task(self._run(path), name=f"chaos-prober{path}")
            for path in (API_PATH, READY_PATH)
        ]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    async def _problem(self, path: str) -> str | None:
        """``None`` for a 200, else a short reason: the error code or the readiness reasons
        (numbers stripped, so one reason over time counts as one), or why nothing came."""
        assert self._session is not None
        try:
            async with self._session.get(self.api + path) as response:
                body = await response.read()
                if response.status == 200:
                    return None
                return f"{response.status} {_gist(body)}"
        except TimeoutError:
            return f"no answer within {ANSWER_BOUND_S:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return f"no answer ({type(exc).__name__})"

    async def _run(self, path: str) -> None:
        while True:
            at = time.monotonic()
            problem = await self._problem(path)
            self.samples.append(Sample(at, self.episode(), path, problem))
            await asyncio.sleep(max(0.0, PROBE_PERIOD_S - (time.monotonic() - at)))

    def dump(self, path: Path) -> None:
        """Every sample as a JSON line (seconds since the first), for a closer look."""
        first = self.samples[0].at if self.samples else 0.0
        with path.open("w") as out:
            for sample in self.samples:
                row = {**asdict(sample), "at": round(sample.at - first, 3)}
                out.write(json.dumps(row) + "\n")

    def availability(self) -> Availability:
        """Seconds charged per episode."""
        out = Availability(samples=len(self.samples))
        for path, charged in ((API_PATH, out.unavailable_s), (READY_PATH, out.not_ready_s)):
            mine = [sample for sample in self.samples if sample.path == path]
            for sample, following in itertools.pairwise(mine):
                if sample.problem is None:
                    continue
                span = following.at - sample.at
                charged[sample.episode] = charged.get(sample.episode, 0.0) + span
                reasons = out.reasons_s.setdefault(sample.episode, {})
                reason = f"{LABELS[path]} {sample.problem}"
                reasons[reason] = reasons.get(reason, 0.0) + span
        return out


def _gist(body: bytes) -> str:
    """The error code or readiness reasons of an answer, without numbers."""
    try:
        document = json.loads(body)
    except ValueError:
        return "(not JSON)"
    if isinstance(document, dict) and isinstance(document.get("reasons"), list):
        text = "; ".join(str(r) for r in document["reasons"])
    elif isinstance(document, dict) and isinstance(document.get("error"), dict):
        text = str(document["error"].get("code"))
    else:
        text = "?"
    return re.sub(r"\d+(\.\d+)?", "N", text)[:REASON_CHARS]
