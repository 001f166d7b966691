"""Table tests of ``core.redaction``: how URLs are shown, how free text is scrubbed, and the
source ids and registered secrets a config yields."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from core.errors import ConfigError
from core.redaction import (
    FINGERPRINT_CHARS,
    SECRETS,
    SecretRegistry,
    distinct_fingerprints,
    fingerprint,
    redact_url,
    scrub,
)
from daemon.config.assets import AssetConfig
from daemon.config.load import parse_config
from daemon.logs import ScrubbingFormatter

FP = r"[0-9a-f]{4}"


@pytest.fixture
def registry() -> Iterator[SecretRegistry]:
    """The process-wide registry, emptied before and after the test."""
    SECRETS.clear()
    yield SECRETS
    SECRETS.clear()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545"),
        ("https://eth.example/v2/AbCdEf0123456789xyzKEY", "https://eth.example/…#"),
        ("https://eth.example/v2/k3y12chars00", "https://eth.example/…#"),  # short
        ("https://eth.example/ab.cd~ef", "https://eth.example/…#"),  # dotted
        ("https://eth.example/?apikey=secret123", "https://eth.example/…#"),
        ("https://user:pass@rpc.example.org:8443/", "https://rpc.example.org:8443/…#"),
        ("wss://[::1]:8546/ws/v3/key", "wss://[::1]:8546/…#"),
        ("HTTPS://RPC.Example/K", "https://rpc.example/…#"),
        ("postgresql+asyncpg://risk:pw@db:5432/risk", "postgresql+asyncpg://db:5432/…#"),
        ("mqtt://alice:pw@broker", "mqtt://broker/…#"),
        ("http://host:99999/key", "http://host/…#"),  # bad port: the host alone
        ("sqlite+aiosqlite:////var/lib/cm.sqlite3", "sqlite+aiosqlite:////var/lib/cm.sqlite3"),
        ("not a url", "…#"),
    ],
)
def test_redact_url_shows_scheme_host_port_and_a_fingerprint(url: str, shown: str) -> None:
    redacted = redact_url(url)
    if shown.endswith("#"):
        assert redacted == shown + fingerprint(url.strip())
    else:
        assert redacted == shown
    assert redact_url(redacted) == redacted  # redacting twice changes nothing


def test_fingerprint_tells_endpoints_on_one_host_apart() -> None:
    one, two = redact_url("https://h.example/v2/key-one"), redact_url("https://h.example/v2/key-2")
    assert one != two
    assert one == redact_url("https://h.example/v2/key-one")  # stable


def test_scrub_redacts_every_url_in_text_keeping_punctuation() -> None:
    text = (
        "404, message='Invalid response status', url='ws://127.0.0.1:1/ab.cd~ef?k=v' "
        "(see https://x.example/KEY), rpc http://127.0.0.1:8545: HTTP 500"
    )
    out = scrub(text)
    assert "ab.cd~ef" not in out
    assert "KEY" not in out
    assert f"url='{redact_url('ws://127.0.0.1:1/ab.cd~ef?k=v')}'" in out
    assert f"(see {redact_url('https://x.example/KEY')})," in out
    assert "rpc http://127.0.0.1:8545: HTTP 500" in out
    assert scrub(out) == out


def test_registered_secrets_are_masked_without_their_url(registry: SecretRegistry) -> None:
    registry.register_url("postgresql://risk_9:hunter@db:5432/risk?sslkey=k3y.pem")
    registry.register_url("https://rpc.example/mainnet/Q8.HV~bO?apikey=AcwoQ7hK&chain=ethereum")
    registry.register_secret("Bearer tok3n-abcdef")
    text = (
        'password authentication failed for user "risk_9"; hunter; hunters; k3y.pem; '
        "key Q8.HV~bO, Q8.HV%7EbO, AcwoQ7hK, tok3n-abcdef; chain=mainnet ethereum postgresql"
    )
    assert scrub(text) == (
        'password authentication failed for user "***"; ***; hunters; ***; '
        "key ***, ***, ***, ***; chain=mainnet ethereum postgresql"
    )


def test_short_fragments_and_plain_words_are_not_registered(registry: SecretRegistry) -> None:
    registry.register_url("https://rpc.example/eth/v2/mainnet?format=json&pair=ETH-USD")
    registry.register_url("http://127.0.0.1:8545")
    registry.register_secret("pw")
    assert len(registry) == 0
    assert scrub("eth v2 mainnet json ETH-USD pw") == "eth v2 mainnet json ETH-USD pw"


def test_log_lines_are_scrubbed(registry: SecretRegistry) -> None:
    registry.register_secret("s3cr3t-value")
    record = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "event url=%s error=%s",
        ("http://h/k?a=1", "s3cr3t-value"),
        None,
    )
    line = ScrubbingFormatter("%(message)s").format(record)
    assert line == f"event url={redact_url('http://h/k?a=1')} error=***"


def _source_ids(*sources: dict[str, Any]) -> list[str]:
    asset = AssetConfig.model_validate({"symbol": "ETH", "sources": list(sources)})
    return [s.source_id() for s in asset.sources]


def test_default_source_ids_never_carry_the_url_path_or_query() -> None:
    http = {"kind": "http", "price_path": "p"}
    one = f"http://127.0.0.1:9001/{'k' * 12}/eth?apikey=ab.cd~ef"
    two = "http://127.0.0.1:9001/other/eth"
    assert _source_ids({**http, "url": "https://api.example/KEY/eth"}) == ["http:api.example"]
    assert _source_ids({**http, "url": one}, {**http, "url": two}) == [
        f"http:127.0.0.1:9001#{fingerprint(one)}",
        f"http:127.0.0.1:9001#{fingerprint(two)}",
    ]
    preset = {"kind": "http", "preset": "coinbase", "pair": "ETH-USD"}
    assert _source_ids({**preset, "url": "http://127.0.0.1:9002/KEY"}) == ["coinbase:ETH-USD"]
    named = {**http, "url": one, "name": "mine"}
    assert _source_ids(named, {**http, "url": two}) == ["mine", "http:127.0.0.1:9001"]


def _colliding_urls() -> tuple[str, str]:
    """Two URLs on one host whose short fingerprints are the same (found by search)."""
    seen: dict[str, str] = {}
    for i in range(1_000_000):
        url = f"http://127.0.0.1:9001/feed/{i}"
        first = seen.setdefault(fingerprint(url), url)
        if first != url:
            return first, url
    raise AssertionError("no collision among a million URLs")


def test_sources_whose_short_fingerprints_collide_still_get_distinct_ids() -> None:
    one, two = _colliding_urls()
    assert fingerprint(one) == fingerprint(two)
    http = {"kind": "http", "price_path": "p"}
    third = "http://127.0.0.1:9001/other/eth"
    ids = _source_ids({**http, "url": one}, {**http, "url": two}, {**http, "url": third})
    assert len(set(ids)) == 3, ids
    # the two that collide get longer prefixes of their own hashes; the third keeps its id
    for url, got in zip((one, two), ids[:2], strict=True):
        digits = got.removeprefix("http:127.0.0.1:9001#")
        assert len(digits) > FINGERPRINT_CHARS
        assert hashlib.sha256(url.encode()).hexdigest().startswith(digits)
    assert ids[2] == f"http:127.0.0.1:9001#{fingerprint(third)}"


def test_distinct_fingerprints_are_as_short_as_they_can_be() -> None:
    one, two = _colliding_urls()
    got = distinct_fingerprints([one, two, "x", one])
    assert got["x"] == fingerprint("x")
    assert got[one] != got[two]
    shared = 0
    while got[one][shared] == got[two][shared]:
        shared += 1
    assert len(got[one]) == len(got[two]) == shared + 1  # one digit past the common prefix
    assert distinct_fingerprints([]) == {}


def test_the_same_url_twice_is_still_refused_as_one_name() -> None:
    http = {"kind": "http", "price_path": "p", "url": "http://127.0.0.1:9001/a"}
    data = {
        "chains": [{"name": "a", "chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}],
        "tokens": [
            {
                "chain": "a",
                "address": "0x" + "11" * 20,
                "asset": "ETH",
                "role": "collateral",
                "weight": 0.8,
            }
        ],
        "assets": [{"symbol": "ETH", "sources": [http, dict(http)]}],
        "accounts": ["0x" + "22" * 20],
    }
    with pytest.raises(ConfigError, match="share this name"):
        parse_config(data)


def test_a_config_registers_its_secrets(registry: SecretRegistry) -> None:
    data = {
        "chains": [
            {
                "name": "a",
                "chain_id": 1,
                "rpc_urls": ["http://127.0.0.1:8545/short1key"],
                "ws_url": "ws://u:wspass1@127.0.0.1:8546",
            }
        ],
        "tokens": [
            {"chain": "a", "address": "0x" + "11" * 20, "asset": "ETH", "role": "collateral"}
            | {"weight": 0.8}
        ],
        "assets": [
            {
                "symbol": "ETH",
                "sources": [
                    {
                        "kind": "http",
                        "url": "http://127.0.0.1:9001/eth?token=tok.en~1",
                        "price_path": "p",
                        "headers": {"X-Api-Key": "hdr-key-1", "Accept": "application/json"},
                    }
                ],
            }
        ],
        "accounts": ["0x" + "22" * 20],
        "database_url": "postgresql://risk:dbpass12@db/risk",
        "mqtt": {"url": "mqtt://alice:mqttpass@broker"},
        "api": {"token": "api-token-0123456789"},
    }
    parse_config(data)
    text = "short1key wspass1 tok.en~1 hdr-key-1 dbpass12 mqttpass api-token-0123456789"
    assert scrub(text) == " ".join(["***"] * 7)
    assert scrub("application/json") == "application/json"
