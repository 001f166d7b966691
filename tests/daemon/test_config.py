"""Config loading: env interpolation, and one clear keyed error (exit 2) for bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.domain import Role
from core.errors import ConfigError
from daemon.cli import main
from daemon.config.load import interpolate_env, load_config

GOOD = """
chains:
  - name: mainnet
    chain_id: 1
    rpc_urls: ["http://127.0.0.1:8545/${RPC_KEY}", "http://127.0.0.1:8547"]
    confirmations: 2
tokens:
  - chain: mainnet
    address: "0x00000000000000000000000000000000000000AA"
    asset: ETH
    role: collateral
    weight: 0.8
    decimals: 18
  - {chain: mainnet, address: "0x00000000000000000000000000000000000000bb", asset: USDC,
     role: liability, weight: 1.05}
accounts: ["0x0000000000000000000000000000000000000001"]
discover_accounts: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crossmargin.yaml"
    path.write_text(text)
    return path


def test_good_config_loads_with_env_and_normalized_addresses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={"RPC_KEY": "k123"})
    assert config.chains[0].rpc_urls[0] == "http://127.0.0.1:8545/k123"
    assert config.chains[0].confirmations == 2
    assert config.tokens[0].address == "0x00000000000000000000000000000000000000aa"
    assert config.tokens[1].role is Role.LIABILITY
    assert config.tokens_on("mainnet")[1].asset == "USDC"


def test_env_default_and_missing_variable() -> None:
    assert interpolate_env("a ${X:-dflt} b", env={}) == "a dflt b"
    with pytest.raises(ConfigError, match=r"\$\{NOPE\}: environment variable is not set"):
        interpolate_env("${NOPE}", env={})


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("chain_id: 1", "chain_id: -5", "chains[0].chain_id: Input should be greater than 0"),
        ("- chain: mainnet\n", "- chain: mainnt\n", "tokens[0].chain: names no configured chain"),
        ("weight: 0.8", "weight: 1.2", "tokens[0].weight: a collateral weight"),
        ("weight: 1.05", "weight: 0.9", "tokens[1].weight: a liability weight must be >= 1"),
        ("00000000AA", "0000000Z", "tokens[0].address: must be a 0x-prefixed"),
        ("confirmations: 2", "confirmatons: 2", "chains[0].confirmatons: is not a known key"),
        ("role: collateral", "role: both", "tokens[0].role: Input should be"),
        ("decimals: 18", "decimals: eighteen", "tokens[0].decimals"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)), env={"RPC_KEY": "k"})
    assert message in str(info.value)


def test_secret_urls_are_not_echoed_in_errors(tmp_path: Path) -> None:
    text = GOOD.replace("http://127.0.0.1:8547", "ftp://h/SECRETSECRETSECRET0123")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={"RPC_KEY": "k"})
    assert "SECRETSECRET" not in str(info.value)
    assert "chains[0].rpc_urls" in str(info.value)


def test_cli_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("chain_id: 1", "chain_id: zero"))
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "snapshot", "-c", str(path)],
        capture_output=True,
        text=True,
        env={"RPC_KEY": "x", "PATH": "/usr/bin"},
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "crossmargin: config error at chains[0].chain_id: "
        "Input should be a valid integer, unable to parse string as an integer (got 'zero')"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chains: [\n", "not valid YAML at line"),
        ("- just a list\n", "<root>: the config must be a YAML mapping"),
    ],
)
def test_unparsable_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_env_references_in_comments_are_ignored_and_errors_name_the_key(tmp_path: Path) -> None:
    text = "# set ${UNSET_IN_COMMENT} before starting\n" + GOOD
    config = load_config(write(tmp_path, text), env={"RPC_KEY": "k"})
    assert config.chains[0].rpc_urls[0].endswith("/k")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD), env={})
    assert str(info.value) == (
        "config error at chains[0].rpc_urls[0]: ${RPC_KEY}: environment variable is not set"
    )


# ---- input hardening ------------------------------------------------------------------------

ACCOUNT = "0x0000000000000000000000000000000000000001"
OTHER = "0x" + "ab" * 20


@pytest.mark.parametrize("tail", ["\\n", "\\r\\n", " ", "\\x00"])
@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (f'["{ACCOUNT}"]', f'["{ACCOUNT}{{tail}}"]', "accounts[0]"),
        ('00AA"', '00AA{tail}"', "tokens[0].address"),
        ("confirmations: 2", f'multicall_address: "{OTHER}{{tail}}"',
         "chains[0].multicall_address"),
        ("confirmations: 2", f'sequencer_uptime_feed: "{OTHER}{{tail}}"',
         "chains[0].sequencer_uptime_feed"),
    ],
)  # fmt: skip
def test_addresses_are_matched_exactly(
    tmp_path: Path, tail: str, old: str, new: str, key: str
) -> None:
    """``$`` also matches before a final newline: "0x…\\n" was a second, unreadable account."""
    assert old in GOOD
    text = GOOD.replace(old, new.format(tail=tail), 1)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={"RPC_KEY": "k"})
    assert info.value.key == key
    assert "must be a 0x-prefixed 20-byte hex address" in str(info.value)


def test_health_refuses_a_malformed_account_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["health", "-c", "unused.yaml", "--account", ACCOUNT + "\n"])
    assert exited.value.code == 2
    assert "--account: must be a 0x-prefixed 20-byte hex address" in capsys.readouterr().err
