"""The ``venues:`` config: a config with only venues and assets is valid, ``tokens:`` works
beside venues, and every mistake is one error naming the field (exit 2 from the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from daemon.config.load import load_config

PROVIDER = "0x00000000000000000000000000000000000000A1"
MORPHO = "0x00000000000000000000000000000000000000B2"
WETH = "0x00000000000000000000000000000000000000C3"
MARKET = "0x" + "ab" * 32

VENUES_ONLY = f"""
chains:
  - {{name: mainnet, chain_id: 1, rpc_urls: ["http://127.0.0.1:8545"]}}
  - {{name: base, chain_id: 8453, rpc_urls: ["http://127.0.0.1:8546"]}}
assets:
  - symbol: ETH
    sources: [{{kind: http, url: "http://127.0.0.1:9001/eth", price_path: p}}]
  - symbol: USDC
    sources: [{{kind: http, url: "http://127.0.0.1:9001/usdc", price_path: p}}]
venues:
  - name: aave-eth
    kind: aave_v3
    chain: mainnet
    pool_addresses_provider: "{PROVIDER}"
    assets: {{"{WETH}": ETH}}
    drift_threshold: 0.03
  - name: morpho-base
    kind: morpho_blue
    chain: base
    morpho: "{MORPHO}"
    markets: ["{MARKET}"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crossmargin.yaml"
    path.write_text(text)
    return path


def test_a_config_with_only_venues_and_assets_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VENUES_ONLY))
    assert config.tokens == []
    assert config.accounts == []
    aave, morpho = config.venues
    assert (aave.kind, aave.address, aave.drift_threshold) == ("aave_v3", PROVIDER.lower(), 0.03)
    spec = aave.spec(frozenset({"ETH", "USDC"}))
    assert dict(spec.assets) == {WETH.lower(): "ETH"}
    assert spec.known_assets == frozenset({"ETH", "USDC"})
    assert (morpho.address, morpho.markets, morpho.drift_threshold) == (
        MORPHO.lower(),
        [MARKET],
        0.02,
    )
    assert morpho.spec(frozenset()).markets == (MARKET,)
    assert config.venue("morpho-base") is morpho


def test_tokens_keep_working_beside_venues(tmp_path: Path) -> None:
    text = VENUES_ONLY + (
        f'tokens: [{{chain: mainnet, address: "{WETH}", asset: ETH, role: collateral,'
        " weight: 0.8}]\n"
        'accounts: ["0x0000000000000000000000000000000000000001"]\n'
    )
    config = load_config(write(tmp_path, text))
    assert len(config.tokens) == 1
    assert len(config.venues) == 2


def test_assets_alone_are_valid_for_prices(tmp_path: Path) -> None:
    text = VENUES_ONLY.split("venues:")[0]
    assert load_config(write(tmp_path, text)).venues == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("name: morpho-base", "name: aave-eth", "venues[1].name: duplicate venue name"),
        ("chain: base\n", "chain: optimism\n", "venues[1].chain: names no configured chain"),
        ("kind: morpho_blue", "kind: compound", "venues[1].kind: Input should be 'aave_v3' or"),
        (
            f'pool_addresses_provider: "{PROVIDER}"',
            f'morpho: "{PROVIDER}"',
            "venues[0].pool_addresses_provider: is required for kind aave_v3",
        ),
        (
            f'morpho: "{MORPHO}"',
            f'morpho: "{MORPHO}"\n    pool_addresses_provider: "{PROVIDER}"',
            "venues[1].pool_addresses_provider: does not apply to kind morpho_blue",
        ),
        (f'"{PROVIDER}"', '"0x1234"', "venues[0].pool_addresses_provider: must be a 0x-prefixed"),
        (f'"{MARKET}"', '"0xabc"', "venues[1].markets[0]: a Morpho market id is 0x followed"),
        (": ETH}", ": WETH}", f"venues[0].assets.{WETH.lower()}: names no configured asset"),
        ('{"' + WETH, '{"0xnope', "venues[0].assets.0xnope"),
        ("drift_threshold: 0.03", "drift_threshold: 0", "venues[0].drift_threshold: Input should"),
        ("drift_threshold: 0.03", "drift_threshold: 1.5", "venues[0].drift_threshold: Input"),
        ("drift_threshold: 0.03", "drift_treshold: 0.03", "venues[0].drift_treshold: is not a"),
        (
            "drift_threshold: 0.03",
            f'markets: ["{MARKET}"]',
            "venues[0].markets: apply to kind morpho_blue only",
        ),
    ],
)
def test_bad_venues_name_their_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in VENUES_ONLY
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, VENUES_ONLY.replace(old, new, 1)))
    assert message in str(caught.value)


def test_tokens_without_accounts_still_need_accounts(tmp_path: Path) -> None:
    text = VENUES_ONLY + (
        f'tokens: [{{chain: mainnet, address: "{WETH}", asset: ETH, role: collateral,'
        " weight: 0.8}]\n"
    )
    with pytest.raises(ConfigError, match="accounts: nothing to watch"):
        load_config(write(tmp_path, text))


def test_cli_exits_2_with_one_line_naming_the_venue_field(tmp_path: Path) -> None:
    path = write(tmp_path, VENUES_ONLY.replace("chain: base\n", "chain: nowhere\n"))
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "health", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "crossmargin: config error at venues[1].chain: names no configured chain (got 'nowhere')"
    ]


def test_venues_in_cluster_mode_are_refused_naming_venues(tmp_path: Path) -> None:
    text = VENUES_ONLY + (
        'database_url: "postgresql+asyncpg://127.0.0.1/risk"\ncluster: {enabled: true}\n'
    )
    with pytest.raises(
        ConfigError, match=r"at venues: venues are not supported in cluster mode.*aave-eth"
    ):
        load_config(write(tmp_path, text))
