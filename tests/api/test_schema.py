"""Schemathesis against the live ``/openapi.json``: every operation, generated requests valid
(positive) and invalid (negative) by the document, must get no 5xx; positive requests must get
a documented status and a response matching its schema. The PUT runs with the bearer token.

Schemathesis calls the server through ``requests`` (blocking), so the fuzzing runs in a worker
thread while the server keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.apikit import TOKEN, running_api

CLUSTER_TTL_S = 30.0  # /v1/cluster answers with a lease table (two of four shards held)
POSITIVE_EXAMPLES = 60
NEGATIVE_EXAMPLES = 40
EXPECTED_OPERATIONS = {
    "GET /v1/liquidatable",
    "GET /v1/accounts",
    "GET /v1/accounts/{address}",
    "PUT /v1/positions/{address}",
    "GET /v1/prices",
    "GET /v1/chains",
    "GET /v1/summary",
    "GET /v1/cluster",
    "POST /v1/stress",
    "GET /v1/stress/grid",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
}
"""Schemathesis leaves out the operation serving the document itself (/openapi.json)."""
NEVER_ENDING = {"GET /v1/stream"}
"""A 200 here never ends (Server-Sent Events): tested in ``test_stream`` instead."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POSITIVE_CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Invalid requests may legitimately be answered with statuses an operation does not list
# (a path parameter with a "/" in it is a 404 of another route): only 5xx are failures.
NEGATIVE_CHECKS: list[CheckFunction] = [not_a_server_error]


def fuzz(base_url: str) -> dict[str, Counter[int]]:
    """Run every operation in both modes; return the statuses each got, by label."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    sent: dict[str, Counter[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise here
        if operation.label in NEVER_ENDING:
            continue
        modes = [(GenerationMode.POSITIVE, POSITIVE_EXAMPLES, POSITIVE_CHECKS)]
        if operation.path_parameters or operation.query or operation.body:
            # Without parameters or a body there is nothing to make invalid.
            modes.append((GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, NEGATIVE_CHECKS))
        for mode, examples, checks in modes:
            statuses = sent.setdefault(f"{operation.label} {mode.value}", Counter())
            strategy = operation.as_strategy(generation_mode=mode)
            send_all(strategy, examples, base_url, checks, statuses)
    return sent


def send_all(
    strategy: SearchStrategy[Case[Any]],
    examples: int,
    base_url: str,
    checks: list[CheckFunction],
    statuses: Counter[int],
) -> None:
    """Send ``examples`` generated requests, validate each response, count the statuses."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case: Case[Any]) -> None:
        response = case.call_and_validate(base_url=base_url, headers=AUTH, checks=checks)
        statuses[response.status_code] += 1

    send()


async def test_no_server_errors_for_any_generated_request() -> None:
    async with running_api(cluster_ttl_s=CLUSTER_TTL_S) as api:
        started = time.perf_counter()
        sent = await asyncio.to_thread(fuzz, api.url)
        elapsed = time.perf_counter() - started
        operations = {label.rsplit(" ", 1)[0] for label in sent}
        assert operations >= EXPECTED_OPERATIONS, sorted(sent)
        assert all(sent.values()), sent
        total = sum(sum(statuses.values()) for statuses in sent.values())
        print(f"schemathesis: {total} requests in {elapsed:.1f} s: {sent}")
        # Generated bodies are both stored and refused, and every stored one was announced.
        put = sent["PUT /v1/positions/{address} positive"]
        assert put[200] > 0
        assert put[400] > 0
        assert len(api.view.changed) == put[200] + sent["PUT /v1/positions/{address} negative"][200]
