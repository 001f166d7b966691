"""Hostile and broken config files: each is refused with one line naming what is wrong (exit 2),
never a traceback, and never after burning time or memory (``daemon.config.yaml_reader``,
``daemon.config.types``)."""

from __future__ import annotations

import copy
import math
import resource
import subprocess
import sys
import typing
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from core.errors import ConfigError
from daemon.config.load import load_config, parse_config
from daemon.config.model import Config
from daemon.config.yaml_reader import (
    DEFAULT_LOADER,
    LOADERS,
    MAX_ALIAS_NODES,
    MAX_ALIASES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    dotted,
    parse_yaml,
)

CLI_MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024
"""Address space of the CLI in the memory-bound tests: the daemon's imports fit easily, a
billion laughs expanded (4 GiB before) does not."""
CLI_TIMEOUT_S = 120

MINIMAL = """\
chains:
  - name: eth
    chain_id: 1
    rpc_urls: ["http://127.0.0.1:8545", "http://127.0.0.1:8547"]
    poll_interval_s: 1.0
    liquidation_latency_s: 60
    request_timeout_s: 10
tokens:
  - {chain: eth, address: "0x00000000000000000000000000000000000000aa", asset: ETH,
     role: collateral, weight: 0.8}
accounts: ["0x0000000000000000000000000000000000000001"]
api:
  listen: "127.0.0.1:8080"
"""

FEED = "0x" + "ab" * 20
EVERY_MODEL: dict[str, Any] = {
    "chains": [
        {
            "name": "eth",
            "chain_id": 1,
            "rpc_urls": ["http://127.0.0.1:8545"],
            "ws_url": "ws://127.0.0.1:8546",
            "sequencer_uptime_feed": FEED,
        }
    ],
    "tokens": [
        {
            "chain": "eth",
            "address": "0x00000000000000000000000000000000000000aa",
            "asset": "ETH",
            "role": "collateral",
            "weight": 0.8,
            "tiers": [{"up_to": 100_000.0, "weight": 0.8}, {"weight": 0.5}],
        },
        {
            "chain": "eth",
            "address": "0x00000000000000000000000000000000000000bb",
            "asset": "ETH",
            "role": "liability",
            "weight": 1.05,
        },
    ],
    "accounts": ["0x0000000000000000000000000000000000000001"],
    "assets": [
        {
            "symbol": "ETH",
            "oracle": {"min_price": "1", "max_price": "1000000"},
            "sources": [
                {"kind": "chainlink", "chain": "eth", "address": FEED},
                {"kind": "http", "url": "http://127.0.0.1:9001/eth", "price_path": "p"},
                {"kind": "pyth", "feed_id": "ff" * 32},
                {"kind": "uniswap_v3_twap", "chain": "eth", "address": FEED, "decimals0": 6,
                 "decimals1": 18},
            ],
        }
    ],
    "mqtt": {"url": "mqtt://127.0.0.1:1883"},
    "margin": {
        "model": "tiered",
        "portfolio": {
            "groups": {"ETH": {"assets": ["ETH"], "scan_range": 0.15}},
        },
    },
    "venues": [
        {"name": "aave", "kind": "aave_v3", "chain": "eth", "pool_addresses_provider": FEED},
    ],
}  # fmt: skip
"""A valid config in which every config model appears at least once."""


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "crossmargin.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def billion_laughs() -> str:
    """The classic: 9 levels of 9 aliases each, 342 bytes expanding to 9⁹ strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CLI_MEMORY_LIMIT_BYTES, CLI_MEMORY_LIMIT_BYTES))


def run_cli(path: Path) -> subprocess.CompletedProcess[str]:
    """``crossmargin snapshot -c path`` under a memory limit: config errors come first."""
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", "snapshot", "-c", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin"},
        check=False,
        timeout=CLI_TIMEOUT_S,
        preexec_fn=_limit_memory,
    )


# ---- the file as a whole: exit 2, one line, never a traceback -------------------------------


@pytest.mark.parametrize(
    ("content", "line"),
    [
        pytest.param(
            billion_laughs() + MINIMAL,
            "crossmargin: config error at <file>: aliases expand to more than "
            f"{MAX_ALIAS_NODES} nodes at line 5, column 8",
            id="billion-laughs",
        ),
        pytest.param(
            "chains: " + "[" * 20_000 + "]" * 20_000 + "\n",
            f"crossmargin: config error at <file>: nested deeper than {MAX_DEPTH} levels "
            "at line 1, column 40",
            id="20000-levels",
        ),
        pytest.param(
            MINIMAL.encode().replace(b"name: eth", b"name: \xe9th"),
            "crossmargin: config error at <file>: not UTF-8: byte 0xe9 at line 2, column 11",
            id="latin-1",
        ),
        pytest.param(
            MINIMAL.replace(":8547", ":99999"),
            "crossmargin: config error at chains[0].rpc_urls[1]: not a valid URL (a port must "
            "be a number from 0 to 65535) (got '<not a valid URL>')",
            id="port-99999",
        ),
        pytest.param(
            MINIMAL + "api:\n  token: ${CROSSMARGIN_API_TOKEN}\n",
            "crossmargin: config error at api: key given twice (line 12 and line 14): remove one",
            id="duplicate-api",
        ),
        pytest.param(
            MINIMAL.replace("poll_interval_s: 1.0", "poll_interval_s: .inf"),
            "crossmargin: config error at chains[0].poll_interval_s: Input should be a finite "
            "number (got inf)",
            id="inf-poll-interval",
        ),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path: Path, content: str | bytes, line: str) -> None:
    proc = run_cli(write(tmp_path, content))
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [line]
    assert proc.returncode == 2


def test_the_minimal_file_is_good(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.chains[0].rpc_urls[1] == "http://127.0.0.1:8547"


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "#" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.key, info.value.problem) == (
        "<file>",
        f"{path} is larger than {MAX_CONFIG_BYTES} bytes",
    )


# ---- YAML rules, with both of PyYAML's loaders ----------------------------------------------


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("api: {listen: a}\napi: {listen: b}\n", "api", "key given twice (line 1 and line 2)"),
        ("api:\n  listen: a\n  token: t\n  listen: b\n", "api.listen",
         "key given twice (line 2 and line 4)"),
        ("chains:\n  - name: a\n  - name: b\n    name: c\n", "chains[1].name",
         "key given twice (line 3 and line 4)"),
        ("a: {b: [{c: {d: 1, d: 2}}]}\n", "a.b[0].c.d", "key given twice (line 1 and line 1)"),
        ("x: {true: 1, yes: 2}\n", "x.yes", "key given twice"),  # both are True in YAML 1.1
        ("x: {1: a, 0x1: b}\n", "x.0x1", "key given twice"),
    ],
)  # fmt: skip
def test_duplicate_keys_are_named_by_their_path(
    loader: Any, text: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, loader)
    assert info.value.key == key
    assert info.value.problem.startswith(problem)


def test_merge_keys_may_be_overridden_and_a_few_aliases_are_fine(loader: Any) -> None:
    text = "defaults: &defaults {max_age_s: 60, timeout_s: 5}\nsources:\n" + "".join(
        f"  - {{<<: *defaults, name: s{i}, timeout_s: {i}}}\n" for i in range(20)
    )
    data = parse_yaml(text, loader)
    assert data["sources"][7] == {"max_age_s": 60, "timeout_s": 7, "name": "s7"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (billion_laughs(), f"aliases expand to more than {MAX_ALIAS_NODES} nodes at line 5"),
        ("a: &a [1]\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n",
         f"more than {MAX_ALIASES} aliases at line 2"),
        ("a: &a [1, *a]\n", "alias *a inside its own anchor at line 1, column 11"),
        ("a: &a {b: *a}\n", "alias *a inside its own anchor"),
        ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n",
         f"nested deeper than {MAX_DEPTH} levels at line 1"),
        ("a: &a " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\nb: [*a]\n",
         f"nested deeper than {MAX_DEPTH} levels at line 2"),  # deep only through an alias
        ("a: " + "[" * 200_000 + "]" * 200_000 + "\n", f"nested deeper than {MAX_DEPTH}"),
        ("a: *nope\n", "not valid YAML at line 1, column 4: found undefined alias 'nope'"),
        ("a: &x 1\nb: &x 2\n", "not valid YAML at line 2, column 4: anchor &x defined twice"),
        ("a: 1\n---\nb: 2\n", "not valid YAML at line 2, column 1: a second document"),
        ("a: [\n", "not valid YAML at line 2, column 1"),
        ("a: \x00\n", "not valid YAML: a character YAML does not allow at line 1, column 4"),
    ],
)  # fmt: skip
def test_yaml_limits(loader: Any, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, loader)
    assert info.value.key == "<file>"
    assert info.value.problem.startswith(problem), info.value.problem


def test_nesting_up_to_the_limit_and_empty_files_are_fine(loader: Any) -> None:
    depth = MAX_DEPTH - 1  # under the root mapping
    assert parse_yaml("a: " + "[" * depth + "]" * depth, loader) == {"a": _nested(depth)}
    assert parse_yaml("# nothing\n", loader) is None
    assert parse_yaml("", loader) is None


def _nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth - 1):
        out = [out]
    return out


def test_libyaml_is_the_default_loader_when_pyyaml_has_it() -> None:
    # The daemon parses with the C loader (a config of 100,000 accounts: 0.3 s instead of 2.6 s);
    # the pure-Python one stays the fallback, and every rule above runs with both.
    expected = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    assert DEFAULT_LOADER is expected
    assert parse_yaml.__defaults__ == (expected,)


def test_both_loaders_build_the_same_data() -> None:
    text = MINIMAL + "assets:\n  - &eth {symbol: ETH, sources: [{kind: http, url: u}]}\n"
    results = [parse_yaml(text, loader) for loader in LOADERS]
    assert all(result == yaml.safe_load(text) for result in results)


# ---- every float of the config is finite -----------------------------------------------------


def _number_annotation(annotation: Any) -> bool:
    if annotation in (float, Decimal):
        return True
    return any(_number_annotation(arg) for arg in typing.get_args(annotation))


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def reachable_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model class the config's annotations can reach."""
    seen: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for info in current.model_fields.values():
            todo.extend(_models_in(info.annotation))
    return seen


def number_fields(
    model: BaseModel, path: tuple[int | str, ...] = ()
) -> Iterator[tuple[tuple[int | str, ...], type[BaseModel]]]:
    """``(path, model class)`` of every float/decimal field of a validated config."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, dict):  # a mapping of numbers: each value is a field
            for key, item in value.items():
                if isinstance(item, float):
                    yield (*path, name, key), type(model)
        elif _number_annotation(info.annotation):
            yield (*path, name), type(model)
        if isinstance(value, dict):
            items: Iterable[tuple[int | str | None, Any]] = value.items()
        else:
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if isinstance(item, BaseModel):
                where = (*path, name) if index is None else (*path, name, index)
                yield from number_fields(item, where)


def _set(data: Any, path: tuple[int | str, ...], value: object) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {}) if isinstance(part, str) else data[part]
    data[path[-1]] = value


NUMBER_FIELDS = list(number_fields(parse_config(copy.deepcopy(EVERY_MODEL))))


def test_the_sweep_sees_every_config_model() -> None:
    """A new model (or float field in one) is swept without anyone listing it here."""
    covered = {model for _, model in NUMBER_FIELDS}
    with_numbers = {
        model
        for model in reachable_models(Config)
        if any(_number_annotation(info.annotation) for info in model.model_fields.values())
    }
    assert with_numbers - covered == set(), "add the missing model to EVERY_MODEL"
    assert len(NUMBER_FIELDS) >= 30


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize(
    "path", [path for path, _ in NUMBER_FIELDS], ids=[dotted(p) for p, _ in NUMBER_FIELDS]
)
def test_every_float_field_must_be_finite(path: tuple[int | str, ...], bad: float) -> None:
    data = copy.deepcopy(EVERY_MODEL)
    _set(data, path, bad)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.key == dotted(path)
    assert info.value.problem == "Input should be a finite number"


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("chains", 0, "poll_interval_s"), 1e300, "less than or equal to 86400"),
        (("chains", 0, "request_timeout_s"), 3600, "less than or equal to 600"),
        (("chains", 0, "liquidation_latency_s"), 1e9, "less than or equal to 2592000"),
        (("tokens", 1, "weight"), 1e6, "less than or equal to 10"),
        (("assets", 0, "sources", 1, "timeout_s"), 1e6, "less than or equal to 600"),
        (("assets", 0, "volatility_floor"), 1e6, "less than or equal to 10"),
        (("mqtt", "reconnect_max_s"), 1e9, "less than or equal to 86400"),
    ],
)
def test_durations_and_weights_are_bounded(
    path: tuple[int | str, ...], value: float, problem: str
) -> None:
    data = copy.deepcopy(EVERY_MODEL)
    _set(data, path, value)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.key == dotted(path)
    assert problem in info.value.problem
