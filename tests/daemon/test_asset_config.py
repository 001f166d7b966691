"""The ``assets:`` config: presets, defaults, parameters, and one keyed error for each mistake."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.errors import ConfigError
from daemon.config.assets import ChainlinkSourceConfig, HttpSourceConfig
from daemon.config.load import load_config
from daemon.config.model import Config

GOOD = """
chains:
  - {name: mainnet, chain_id: 1, rpc_urls: ["http://127.0.0.1:8545"]}
  - name: arbitrum
    chain_id: 42161
    rpc_urls: ["http://127.0.0.1:8546"]
    sequencer_uptime_feed: "0xFdB631F5EE196F0ed6FAa767959853A9F217697D"
    sequencer_grace_period_s: 3600
tokens:
  - {chain: mainnet, address: "0x00000000000000000000000000000000000000aa", asset: ETH,
     role: collateral, weight: 0.8}
accounts: ["0x0000000000000000000000000000000000000001"]
assets:
  - symbol: ETH
    volatility_floor: 0.5
    oracle: {min_sources: 2, max_deviation: 0.02, max_jump: 0.2, confirm_rounds: 3,
             min_price: 10, max_price: "1e6"}
    sources:
      - {kind: chainlink, chain: mainnet, address: "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419",
         max_age_s: 3600}
      - {kind: http, url: "http://127.0.0.1:9001/eth", price_path: data.amount, max_age_s: 60}
      - {kind: http, preset: coinbase, url: "http://127.0.0.1:9002", pair: ETH-USD, max_age_s: 60}
      - {kind: http, preset: binance, pair: ETHUSDT}
      - {kind: pyth, feed_id: "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"}
      - {kind: uniswap_v3_twap, chain: arbitrum,
         address: "0xC6962004f452bE9203591991D15f6b388e09E8D0", decimals0: 18, decimals1: 6}
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "crossmargin.yaml"
    path.write_text(text)
    return load_config(path)


def test_the_issue_example_loads_with_presets_resolved(tmp_path: Path) -> None:
    config = load(tmp_path, GOOD)
    eth = config.assets[0]
    params = eth.params()
    assert params.volatility_floor == 0.5
    assert params.confirm_rounds == 3
    assert params.min_price == Decimal(10)
    assert params.max_price == Decimal("1e6")
    feed, raw, cb, bn, _, twap = eth.sources
    assert isinstance(feed, ChainlinkSourceConfig)
    assert feed.address == "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"
    assert isinstance(cb, HttpSourceConfig)
    assert isinstance(bn, HttpSourceConfig)
    assert isinstance(raw, HttpSourceConfig)
    assert cb.resolved() == (
        "http://127.0.0.1:9002/v2/prices/ETH-USD/spot",
        "data.amount",
        None,
        "s",
    )
    assert bn.resolved()[:2] == (
        "https://api.binance.com/api/v3/ticker/price?symbol=ETHUSDT",
        "price",
    )
    assert [s.source_id() for s in eth.sources] == [
        "chainlink:mainnet:0x5f4ec3df",
        "http:127.0.0.1:9001",
        "coinbase:ETH-USD",
        "binance:ETHUSDT",
        "pyth:ff61491a",
        "uniswap_v3_twap:arbitrum:0xc6962004",
    ]
    assert (feed.poll_interval_s, raw.max_age_s, twap.window_s) == (10.0, 60.0, 1800)
    assert config.oracle_polling.max_concurrency == 32


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "{kind: chainlink, chain: mainnet,",
            "{kind: chainlink, chain: optimism,",
            "assets[0].sources[0].chain: names no configured chain (got 'optimism')",
        ),
        (
            "uniswap_v3_twap, chain: arbitrum",
            "uniswap_v3_twap, chain: base",
            "assets[0].sources[5].chain: names no configured chain",
        ),
        ("asset: ETH,", "asset: WETH,", "tokens[0].asset: names no configured asset (got 'WETH')"),
        ("{kind: chainlink,", "{kind: chainlnk,", "assets[0].sources[0].kind: must be one of"),
        ("preset: binance, pair: ETHUSDT", "preset: binance", "assets[0].sources[3]: preset bin"),
        ("preset: binance,", "preset: bybit,", "assets[0].sources[3].preset: Input should be"),
        ("price_path: data.amount", "price_path: data..amount", "sources[1].price_path: bad JSON"),
        ("max_age_s: 3600}", "max_age_s: -1}", "assets[0].sources[0].max_age_s: Input should be"),
        ("0x5f4eC3Df", "0x5f4", "assets[0].sources[0].address: must be a 0x-prefixed"),
        ("decimals1: 6", "decimal1: 6", "assets[0].sources[5].decimals1: is required"),
        ("max_jump: 0.2", "max_jump: 0", "assets[0].oracle.max_jump: Input should be greater"),
        ('max_price: "1e6"', "max_price: 5", "assets[0].oracle: max_price must be greater"),
        ('feed_id: "0xff61', 'feed_id: "0xf61', "assets[0].sources[4].feed_id: a Pyth feed id"),
        ("volatility_floor: 0.5", "volatility_floor: -1", "assets[0].volatility_floor"),
    ],
)
def test_mistakes_name_their_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert message in str(info.value)


def test_duplicate_assets_and_source_names(tmp_path: Path) -> None:
    twice = GOOD + "  - {symbol: ETH, sources: [{kind: http, preset: kraken, pair: ETHUSD}]}\n"
    with pytest.raises(ConfigError, match=r"assets\[1\].symbol: duplicate asset symbol"):
        load(tmp_path, twice)
    dup = GOOD.replace("pair: ETHUSDT}", "pair: ETHUSDT, name: coinbase:ETH-USD}")
    with pytest.raises(ConfigError, match=r"assets\[0\].sources\[3\].name: two sources"):
        load(tmp_path, dup)


def test_a_config_without_assets_still_loads_for_the_watchers(tmp_path: Path) -> None:
    config = load(tmp_path, GOOD.split("assets:")[0])
    assert config.assets == []
    assert config.tokens[0].asset == "ETH"  # not checked when no asset is configured


def test_api_keys_in_source_urls_and_headers_are_not_echoed(tmp_path: Path) -> None:
    secret = "SECRETSECRETSECRET0123"
    bad_url = GOOD.replace('url: "http://127.0.0.1:9001/eth"', f'url: "ftp://h/{secret}"')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, bad_url)
    assert "assets[0].sources[1].url" in str(info.value)
    assert secret not in str(info.value)
    bad_header = GOOD.replace("pair: ETHUSDT}", f"pair: ETHUSDT, headers: {{X-Key: [{secret}]}}}}")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, bad_header)
    assert secret not in str(info.value)
