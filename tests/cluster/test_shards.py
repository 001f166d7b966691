"""The shard of an address: stable, case-blind, spread evenly; and the fair share."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from daemon.cli import main
from daemon.cluster.shards import ShardMap, fair_share, shard_of
from daemon.config.load import parse_config


def test_shard_is_blake2b_of_the_20_address_bytes() -> None:
    address = "0x" + "ab" * 20
    digest = hashlib.blake2b(bytes.fromhex("ab" * 20), digest_size=8).digest()
    assert shard_of(address, 16) == int.from_bytes(digest, "big") % 16
    assert shard_of(address.upper().replace("0X", "0x"), 16) == shard_of(address, 16)


def test_shards_spread_evenly_over_many_addresses() -> None:
    counts = [0] * 16
    for i in range(16_000):
        counts[shard_of(f"0x{i:040x}", 16)] += 1
    assert min(counts) > 850  # 1,000 expected each; a skewed hash would leave one far below
    assert max(counts) < 1150


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 20])
def test_a_malformed_address_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - bytes.fromhex's or ours
        shard_of(bad, 16)


def test_shard_map_owns_only_its_shards() -> None:
    everything = ShardMap(16)
    accounts = [f"0x{i:040x}" for i in range(200)]
    assert all(everything.owns(a) for a in accounts)
    mine = ShardMap(16, held={0, 5})
    owned = [a for a in accounts if mine.owns(a)]
    assert owned == [a for a in accounts if shard_of(a, 16) in {0, 5}]
    assert 0 < len(owned) < len(accounts)


@pytest.mark.parametrize(
    ("shards", "alive", "share"), [(16, 1, 16), (16, 3, 6), (16, 4, 4), (3, 5, 1), (16, 0, 16)]
)
def test_fair_share_is_the_ceiling(shards: int, alive: int, share: int) -> None:
    assert fair_share(shards, alive) == share


# ---- config -------------------------------------------------------------------------------

CONFIG = {
    "chains": [{"name": "eth", "chain_id": 1, "rpc_urls": ["http://127.0.0.1:1"]}],
    "tokens": [
        {
            "chain": "eth",
            "address": "0x1111111111111111111111111111111111111111",
            "asset": "ETH",
            "role": "collateral",
            "weight": 0.8,
        }
    ],
    "accounts": ["0x2222222222222222222222222222222222222222"],
}


def test_cluster_config_defaults_and_values() -> None:
    off = parse_config(CONFIG).cluster
    assert (off.enabled, off.shards, off.lease_ttl_s, off.replica_id) == (False, 16, 10.0, None)
    on = parse_config(
        {
            **CONFIG,
            "database_url": "postgresql://db/risk",
            "cluster": {"enabled": True, "shards": 4, "lease_ttl_s": 3, "replica_id": "r1"},
        }
    ).cluster
    assert (on.enabled, on.shards, on.lease_ttl_s, on.replica_id) == (True, 4, 3.0, "r1")


def test_cluster_mode_on_sqlite_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.enabled: cluster mode needs PostgreSQL"):
        parse_config({**CONFIG, "cluster": {"enabled": True}})  # default: SQLite


@pytest.mark.parametrize(
    ("cluster", "key"),
    [
        ({"shards": 0}, "cluster.shards"),
        ({"lease_ttl_s": 0.1}, "cluster.lease_ttl_s"),
        ({"replicas": 3}, "cluster.replicas"),
    ],
)
def test_bad_cluster_keys_are_named(cluster: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({**CONFIG, "cluster": cluster})


def test_cluster_on_sqlite_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "cluster": {"enabled": True}}))
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cluster.enabled" in err
