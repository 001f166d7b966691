"""Loading the configuration: YAML (``daemon.config.yaml_reader``), ``${VAR}`` references,
validation into ``Config`` and one-line errors that name the key and never echo a secret."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from core.errors import ConfigError
from daemon.config.accounts_file import merge_accounts, read_accounts_file, resolve_accounts_file
from daemon.config.assets import SOURCE_KINDS
from daemon.config.model import Config
from daemon.config.secrets import register_config_secrets
from daemon.config.types import KeyedError
from daemon.config.yaml_reader import dotted, parse_yaml, read_config_text

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` with environment values.

    A reference to an unset variable without a default is an error, never an empty string:
    an empty RPC URL or token would fail later and further from the cause.
    """
    environ = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"${{{name}}}", "environment variable is not set")

    return _ENV_REF.sub(substitute, text)


def parse_config(data: Any, *, base_dir: Path | None = None) -> Config:
    """Validate already-loaded YAML data; raise ``ConfigError`` naming the first bad key.

    An unset ``database_url`` becomes SQLite in ``base_dir`` (the config file's directory),
    or ``./crossmargin.sqlite3`` relative to the working directory without one.
    """
    if not isinstance(data, dict):
        raise ConfigError("<root>", "the config must be a YAML mapping", type(data).__name__)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, data) from None
    config = _with_database_url(config, base_dir)
    config = _with_accounts_file(config, base_dir)
    _check_cluster_database(config)
    register_config_secrets(config)  # from now on, shown text is scrubbed of them
    return config


def _with_accounts_file(config: Config, base_dir: Path | None) -> Config:
    if config.accounts_file is None:
        return config
    path = resolve_accounts_file(config.accounts_file, base_dir)
    from_file = read_accounts_file(path)
    if not from_file and not config.accounts and not config.discover_accounts:
        raise ConfigError("accounts_file", f"{path} lists no account, and nothing else is watched")
    # Validated already (read_accounts_file checks every line): no second pass over 10^6 rows.
    return config.model_copy(update={"accounts": merge_accounts(config.accounts, from_file)})


def _with_database_url(config: Config, base_dir: Path | None) -> Config:
    from daemon.store.urls import default_database_url, normalize_database_url

    if config.database_url is None:
        return config.model_copy(update={"database_url": default_database_url(base_dir)})
    shown = _redacted_value(("database_url",), config.database_url)
    try:
        url = normalize_database_url(config.database_url)
    except ValueError as exc:
        raise ConfigError("database_url", str(exc), shown) from None
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        raise ConfigError("database_url", "the port must be a number from 0 to 65535") from None
    return config.model_copy(update={"database_url": url})


def _check_cluster_database(config: Config) -> None:
    """Cluster mode coordinates through PostgreSQL row locks and its clock: not on SQLite."""
    url = config.database_url or ""
    if config.cluster.enabled and not url.startswith("postgresql"):
        raise ConfigError(
            "cluster.enabled",
            "cluster mode needs PostgreSQL (database_url: postgresql+asyncpg://…), not SQLite",
            True,
        )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the YAML config at ``path`` (size and depth limits:
    ``daemon.config.yaml_reader``)."""
    path = Path(path)
    data = parse_yaml(read_config_text(path))
    return parse_config(_interpolate_tree(data, env, ()), base_dir=path.parent)


def _interpolate_tree(node: Any, env: Mapping[str, str] | None, loc: tuple[int | str, ...]) -> Any:
    """``${VAR}`` in string values only (after parsing: comments and keys are left alone, and
    a substituted value cannot change the YAML structure). Errors name the key."""
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, (*loc, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env, (*loc, i)) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        try:
            return interpolate_env(node, env)
        except ConfigError as exc:
            raise ConfigError(dotted(loc), f"{exc.key}: {exc.problem}") from None
    return node


def _config_error(exc: ValidationError, data: Any) -> ConfigError:
    first = exc.errors(include_url=False)[0]
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, KeyedError):
        return ConfigError(ctx_error.key, ctx_error.problem, ctx_error.value)
    loc = _without_union_tags(first["loc"])
    key = dotted(loc)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return ConfigError(key, "is required")
    if first["type"] == "extra_forbidden":
        return ConfigError(key, "is not a known key")
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(sorted(SOURCE_KINDS))
        return ConfigError(
            f"{key}.kind", f"must be one of {kinds}", _value_at(data, (*loc, "kind"))
        )
    return ConfigError(key, message, _value_at(data, loc))


def _without_union_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic puts the discriminator's tag in the path (sources.1.chainlink.address).
    return tuple(
        part
        for i, part in enumerate(loc)
        if not (part in SOURCE_KINDS and i >= 2 and loc[i - 2] == "sources")
    )


def _value_at(data: Any, loc: tuple[int | str, ...]) -> object:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(node, (dict, list)):
        return None
    return _redacted_value(loc, node)


def _redacted_value(loc: tuple[int | str, ...], value: object) -> object:
    if "token" in loc:
        return "***"
    # URLs carry API keys: never echo them back in an error message.
    if any(part in ("rpc_urls", "ws_url", "database_url", "url", "headers") for part in loc):
        from core.redaction import redact_url

        try:
            urlsplit(str(value)).port  # noqa: B018 - raises on an unparsable port
        except ValueError:  # unparsable (e.g. port 99999): show nothing of it
            return "<not a valid URL>"
        return redact_url(str(value))
    return value
