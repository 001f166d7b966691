"""Which values of a loaded config are secret, registered with ``core.redaction``.

Every URL (RPC, ws, price sources, database, broker), every source header value and the API
token go into the process-wide registry when a config is parsed, so ``core.redaction.scrub``
masks them in any text shown afterwards — log lines, ``last_error`` fields, fault details,
command output — even where a library quoted a key without its URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.redaction import register_secret, register_url

if TYPE_CHECKING:
    from daemon.config.model import Config

# Request headers whose values describe the request rather than authorize it.
DESCRIPTIVE_HEADERS = frozenset(
    {"accept", "accept-encoding", "accept-language", "cache-control", "content-type", "user-agent"}
)


def secret_urls(config: Config) -> Iterator[str]:
    """Every URL the config names (the operator's, before presets add their paths)."""
    for chain in config.chains:
        yield from chain.rpc_urls
        if chain.ws_url is not None:
            yield chain.ws_url
    for asset in config.assets:
        for source in asset.sources:
            url = getattr(source, "url", None)
            if isinstance(url, str):
                yield url
    if config.database_url is not None:
        yield config.database_url
    if config.mqtt.url is not None:
        yield config.mqtt.url


def secret_values(config: Config) -> Iterator[str]:
    """Header values of the price sources (but ``Accept`` and the like) and the API token."""
    for asset in config.assets:
        for source in asset.sources:
            headers: dict[str, str] = getattr(source, "headers", None) or {}
            for name, value in headers.items():
                if name.lower() not in DESCRIPTIVE_HEADERS:
                    yield value
    if config.api.token is not None:
        yield config.api.token.get_secret_value()


def register_config_secrets(config: Config) -> None:
    """Add every secret of ``config`` to the process-wide scrubbing registry."""
    for url in secret_urls(config):
        register_url(url)
    for value in secret_values(config):
        register_secret(value)
