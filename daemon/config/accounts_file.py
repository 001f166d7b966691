"""``accounts_file:``: the watched accounts listed in a plain text file, one address per line.

A deployment with a million accounts does not want them in YAML (a 47 MB document, seconds of
parsing): it points ``accounts_file`` at a list it can produce with any tool. The format is

- one address per line (``0x`` + 40 hex digits, any case; stored lower-case);
- ``#`` starts a comment, on its own line or after an address;
- blank lines and surrounding whitespace are ignored.

Anything else is refused as one ``ConfigError`` at ``accounts_file`` naming ``file:line``.
A relative path is taken from the config file's directory. The accounts are added to the
config's ``accounts`` (both may be given): the union, each address once, in first-seen order.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.addresses import ADDRESS_PROBLEM
from core.errors import ConfigError

KEY = "accounts_file"
SHOWN_LINE_CHARS = 100
"""A bad line is echoed in the error up to this many characters."""

_LOWER_LINE = re.compile(rb"[ \t]*(0x[0-9a-f]{40})[ \t]*\r?")
"""The common line, after the whole file was lower-cased: an address and nothing else."""
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def resolve_accounts_file(value: str, base_dir: Path | None) -> Path:
    """``value`` as a path: relative ones from ``base_dir`` (the config file's directory)."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def read_accounts_file(path: Path) -> list[str]:
    """The addresses listed in ``path``, lower-case, each once, in file order.

    ``ConfigError`` at ``accounts_file`` for a file that cannot be read, is not UTF-8, or has
    a line that is neither blank, a comment, nor one address (named as ``file:line``).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(KEY, f"cannot read {path}: {exc.strerror}") from None
    try:
        data.decode("utf-8")  # the lines are checked below; this only locates bad bytes
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(KEY, f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x})") from None
    accounts: dict[str, None] = {}
    # Lower-casing the whole file once turns the per-line check into one anchored match.
    lines = data.lower().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        match = _LOWER_LINE.fullmatch(raw)
        if match is not None:
            accounts[match.group(1).decode("ascii")] = None
            continue
        address = _other_line(path, number, data, raw)
        if address is not None:
            accounts[address] = None
    return list(accounts)


def _other_line(path: Path, number: int, data: bytes, lowered: bytes) -> str | None:
    """A line that is not a bare address: blank, a comment, an address and a comment, or bad."""
    text = lowered.decode("utf-8").split("#", 1)[0].strip()
    if not text:
        return None
    if _ADDRESS.fullmatch(text) is not None:
        return text
    original = data.split(b"\n")[number - 1].decode("utf-8").rstrip("\r")
    shown = original if len(original) <= SHOWN_LINE_CHARS else original[:SHOWN_LINE_CHARS] + "…"
    raise ConfigError(KEY, f"{path}:{number}: {ADDRESS_PROBLEM}", shown)


def merge_accounts(listed: list[str], from_file: list[str]) -> list[str]:
    """``accounts:`` then the file's, each address once (both are lower-case already)."""
    return list(dict.fromkeys([*listed, *from_file]))
