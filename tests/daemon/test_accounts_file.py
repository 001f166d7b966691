"""``accounts_file:``: addresses one a line beside ``accounts:`` (``daemon.config.accounts_file``).

Every bad line is one error at ``accounts_file`` naming ``file:line``, the CLI exits 2 with it,
and the accounts loaded are the union of both lists, each once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from daemon.config.accounts_file import read_accounts_file
from daemon.config.load import load_config

A1 = "0x" + "a1" * 20
A2 = "0x" + "b2" * 20
A3 = "0x" + "c3" * 20

CONFIG = """\
chains:
  - {name: eth, chain_id: 1, rpc_urls: ["http://127.0.0.1:8545"]}
tokens:
  - {chain: eth, address: "0x00000000000000000000000000000000000000aa", asset: ETH,
     role: collateral, weight: 0.8}
"""


def write_config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "crossmargin.yaml"
    path.write_text(CONFIG + extra)
    return path


def test_addresses_comments_blank_lines_and_any_case(tmp_path: Path) -> None:
    listing = tmp_path / "accounts.txt"
    listing.write_text(
        "# watched accounts\n"
        f"{A1.upper().replace('0X', '0x')}\n"
        "\n"
        f"   {A2}   # treasury, trailing comment\n"
        f"\t{A3}\r\n"
        "   # an indented comment\n"
        f"{A1}\n"  # again, in the other case: the same account
    )
    assert read_accounts_file(listing) == [A1, A2, A3]


@pytest.mark.parametrize(
    ("content", "line", "shown"),
    [
        (f"{A1}\n0x1234\n", 2, "0x1234"),
        (f"{A1}\n\n# ok\n{A2} {A3}\n", 4, f"{A2} {A3}"),
        (f"{A1[:-1]}g\n", 1, f"{A1[:-1]}g"),
        (f"{A1}x\n", 1, f"{A1}x"),
        (f"{A1[2:]}\n", 1, A1[2:]),
        ("accounts:\n  - " + A1 + "\n", 1, "accounts:"),
        (f"{A1}, {A2}\n", 1, f"{A1}, {A2}"),
        ("x" * 150 + "\n", 1, "x" * 100 + "…"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(
    tmp_path: Path, content: str, line: int, shown: str
) -> None:
    listing = tmp_path / "accounts.txt"
    listing.write_text(content)
    with pytest.raises(ConfigError) as info:
        read_accounts_file(listing)
    assert info.value.key == "accounts_file"
    assert info.value.problem == f"{listing}:{line}: must be a 0x-prefixed 20-byte hex address"
    assert info.value.value == shown


def test_unreadable_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError) as info:
        read_accounts_file(missing)
    assert (info.value.key, info.value.problem) == (
        "accounts_file",
        f"cannot read {missing}: No such file or directory",
    )
    listing = tmp_path / "accounts.txt"
    listing.write_bytes(f"{A1}\n{A2}\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        read_accounts_file(listing)
    assert info.value.problem == f"{listing}:3: not UTF-8 (byte 0xe9)"


def test_config_takes_the_union_of_both_lists_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "accounts.txt").write_text(f"{A2}\n{A3}\n{A1}\n")
    path = write_config(tmp_path, f'accounts: ["{A1}"]\naccounts_file: lists/accounts.txt\n')
    config = load_config(path)
    assert config.accounts == [A1, A2, A3]
    assert config.accounts_file == "lists/accounts.txt"


def test_the_file_alone_is_enough_and_env_references_work(tmp_path: Path) -> None:
    listing = tmp_path / "elsewhere.txt"
    listing.write_text(f"{A3}\n")
    path = write_config(tmp_path, "accounts_file: ${LISTING}\n")
    assert load_config(path, env={"LISTING": str(listing)}).accounts == [A3]


def test_an_empty_file_with_nothing_else_to_watch_is_refused(tmp_path: Path) -> None:
    (tmp_path / "accounts.txt").write_text("# none yet\n\n")
    path = write_config(tmp_path, "accounts_file: accounts.txt\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "accounts_file"
    assert info.value.problem.endswith("accounts.txt lists no account, and nothing else is watched")
    discovering = write_config(tmp_path, "accounts_file: accounts.txt\ndiscover_accounts: true\n")
    assert load_config(discovering).accounts == []


def test_the_cli_exits_2_with_one_line_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "accounts.txt").write_text(f"{A1}\n{A2}\nnot-an-address\n")
    path = write_config(tmp_path, "accounts_file: accounts.txt\n")
    result = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"accounts_file: {tmp_path / 'accounts.txt'}:3: must be a 0x-prefixed" in lines[0]
    assert "Traceback" not in result.stderr
