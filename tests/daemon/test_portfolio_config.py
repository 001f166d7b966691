"""``margin.portfolio``: the block loads into the engine's parameters, and every bad value is
one keyed error (exit 2 from the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from daemon.config.load import load_config
from daemon.config.portfolio import correlation_estimator, portfolio_params, representative_assets
from margin.model import MarginModel
from margin.scenarios import CorrelationSource

BASE = """
chains:
  - {name: mainnet, chain_id: 1, rpc_urls: ["http://127.0.0.1:8545"]}
tokens:
  - {chain: mainnet, address: "0x00000000000000000000000000000000000000aa", asset: ETH,
     role: collateral, weight: 0.8, decimals: 18}
  - {chain: mainnet, address: "0x00000000000000000000000000000000000000ab", asset: stETH,
     role: collateral, weight: 0.7, decimals: 18}
  - {chain: mainnet, address: "0x00000000000000000000000000000000000000bb", asset: USDC,
     role: liability, weight: 1.0, decimals: 6}
  - {chain: mainnet, address: "0x00000000000000000000000000000000000000cc", asset: BTC,
     role: collateral, weight: 0.8, decimals: 8}
accounts: ["0x0000000000000000000000000000000000000001"]
margin:
  model: portfolio
  portfolio:
    groups:
      ETH: {assets: [ETH, stETH], scan_range: 0.15}
      USD: {assets: [USDC], scan_range: 0.03}
    default_scan_range: 0.2
    price_steps: 3
    extreme_multiple: 2.5
    extreme_weight: 0.3
    vol_up: 0.4
    vol_down: 0.2
    correlations: {"BTC/ETH": 0.8}
    default_correlation: 0.9
    correlation_source: static
    min_correlation: 0.1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crossmargin.yaml"
    path.write_text(text)
    return path


def test_the_block_loads_into_engine_parameters(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert config.margin.model is MarginModel.PORTFOLIO
    params = portfolio_params(config.margin.portfolio, {"ETH": 0.5})
    assert [g.name for g in params.groups] == ["ETH", "USD"]
    assert params.group_of("stETH") == "ETH"
    assert params.group_of("BTC") == "BTC"  # a lone asset is a group of its own
    assert params.base_range("BTC") == 0.2
    assert params.correlation("ETH", "BTC") == 0.8  # either order
    assert params.correlation("USD", "BTC") == 0.9
    assert params.correlation("USD", "USD") == 1.0
    assert (params.price_steps, params.extreme_multiple, params.extreme_weight) == (3, 2.5, 0.3)
    assert (params.vol_up, params.vol_down, params.min_correlation) == (0.4, 0.2, 0.1)
    assert params.correlation_source is CorrelationSource.STATIC
    assert params.floor_of("ETH") == 0.5


def test_ewma_builds_an_estimator_over_every_pair_of_groups(tmp_path: Path) -> None:
    text = BASE.replace(
        "correlation_source: static",
        "correlation_source: ewma\n    correlation_warmup_returns: 30\n"
        "    correlation_sample_s: 10",
    )
    config = load_config(write(tmp_path, text))
    symbols = ["ETH", "stETH", "USDC", "BTC", "SOL"]  # as the oracle would price them
    portfolio = config.margin.portfolio
    assert representative_assets(portfolio, ["stETH", "BTC"]) == [("ETH", "stETH"), ("BTC", "BTC")]
    assert representative_assets(portfolio, symbols) == [
        ("ETH", "ETH"),  # a group's first listed asset
        ("USD", "USDC"),
        ("BTC", "BTC"),  # a lone asset is its own group
        ("SOL", "SOL"),
    ]
    estimator = correlation_estimator(portfolio, symbols)
    assert estimator is not None
    assert estimator.assets == {"ETH", "USDC", "BTC", "SOL"}
    # static values until warm: configured (either order) or the default
    assert estimator.correlations() == {
        ("ETH", "USD"): 0.9,
        ("ETH", "BTC"): 0.8,
        ("ETH", "SOL"): 0.9,
        ("USD", "BTC"): 0.9,
        ("USD", "SOL"): 0.9,
        ("BTC", "SOL"): 0.9,
    }
    assert estimator._warmup == 30
    assert estimator._pairs["ETH/BTC"]._sample_s == 10
    assert (
        correlation_estimator(load_config(write(tmp_path, BASE)).margin.portfolio, symbols) is None
    )


def test_defaults_are_the_issues() -> None:
    from daemon.config.portfolio import PortfolioConfig

    params = portfolio_params(PortfolioConfig(), {})
    assert (params.default_scan_range, params.price_steps) == (0.15, 4)
    assert (params.extreme_multiple, params.extreme_weight) == (2.0, 0.35)
    assert (params.vol_up, params.vol_down, params.default_correlation) == (0.5, 0.3, 1.0)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "assets: [ETH, stETH]",
            "assets: [ETH, stETHH]",
            "margin.portfolio.groups.ETH.assets[1]: names no configured asset (got 'stETHH')",
        ),
        (
            "assets: [USDC]",
            "assets: [USDC, ETH]",
            "margin.portfolio.groups.USD.assets[1]: asset already in group ETH",
        ),
        (
            "assets: [ETH, stETH]",
            "assets: [stETH]",
            "margin.portfolio.groups.ETH: asset ETH is in no group, so it is a group of its own "
            "named ETH: list it in this group or rename the group (got 'ETH')",
        ),
        (
            '{"BTC/ETH": 0.8}',
            '{"BTC/ETH": 1.2}',
            "margin.portfolio.correlations.BTC/ETH: Input should be less than or equal to 1",
        ),
        (
            '{"BTC/ETH": 0.8}',
            '{"BTC/ETH": -0.1}',
            "margin.portfolio.correlations.BTC/ETH: Input should be greater than or equal to 0",
        ),
        (
            '{"BTC/ETH": 0.8}',
            '{"BTC/ETH": 0.8, "ETH/BTC": 0.7}',
            "margin.portfolio.correlations.ETH/BTC: pair given twice",
        ),
        (
            '{"BTC/ETH": 0.8}',
            '{"BTC/SOL": 0.8}',
            "margin.portfolio.correlations.BTC/SOL: names no risk group",
        ),
        ('{"BTC/ETH": 0.8}', '{"BTCETH": 0.8}', "margin.portfolio.correlations.BTCETH: a pair"),
        ("scan_range: 0.15", "scan_range: 1.5", "margin.portfolio.groups.ETH.scan_range"),
        ("price_steps: 3", "price_steps: 0", "margin.portfolio.price_steps"),
        ("vol_down: 0.2", "vol_down: 1.0", "margin.portfolio.vol_down"),
        ("extreme_weight: 0.3", "extreme_weight: 2", "margin.portfolio.extreme_weight"),
        ("correlation_source: static", "correlation_source: guess", "correlation_source"),
        ("min_correlation: 0.1", "min_correlaton: 0.1", "min_correlaton: is not a known key"),
        (
            "min_correlation: 0.1",
            "min_correlation: 0.1\n    correlation_warmup_returns: 0",
            "margin.portfolio.correlation_warmup_returns: Input should be greater than or equal "
            "to 1",
        ),
        (
            "min_correlation: 0.1",
            "min_correlation: 0.1\n    correlation_sample_s: -5",
            "margin.portfolio.correlation_sample_s: Input should be greater than or equal to 0",
        ),
        (
            "min_correlation: 0.1",
            "min_correlation: 0.1\n    correlation_sample_s: 901",
            "margin.portfolio.correlation_sample_s: Input should be less than or equal to 900",
        ),
        ("min_correlation: 0.1", "min_correlation: 1.1", "margin.portfolio.min_correlation"),
        (
            "min_correlation: 0.1",
            "min_correlation: 0.1\n    correlation_sample_s: 900\n"
            "    correlation_warmup_returns: 2000",
            "margin.portfolio.correlation_warmup_returns: out of reach with correlation_sample_s"
            " 900: a pair counts at most ~3,103 effective returns (λ 0.94 per day); use at most "
            "1551 (got 2000)",
        ),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in BASE
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, BASE.replace(old, new, 1)))
    assert message in str(info.value)


def test_the_cli_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("assets: [USDC]", "assets: [USDC, stETH]"))
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "health", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "crossmargin: config error at margin.portfolio.groups.USD.assets[1]: asset already in "
        "group ETH: an asset belongs to one group (got 'stETH')"
    ]
