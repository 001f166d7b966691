"""Database URLs: which ones the store accepts, and the embedded default.

Pure string handling (no SQLAlchemy import), so the config can validate ``database_url``
cheaply. Operators may write the common short forms; they are rewritten to the async drivers.
"""

from __future__ import annotations

from pathlib import Path

from core.redaction import redact_url

DEFAULT_SQLITE_FILE = "crossmargin.sqlite3"
POSTGRES_SCHEME = "postgresql+asyncpg"
SQLITE_SCHEME = "sqlite+aiosqlite"
_ALIASES = {
    "postgres": POSTGRES_SCHEME,
    "postgresql": POSTGRES_SCHEME,
    POSTGRES_SCHEME: POSTGRES_SCHEME,
    "sqlite": SQLITE_SCHEME,
    SQLITE_SCHEME: SQLITE_SCHEME,
}


def normalize_database_url(url: str) -> str:
    """``url`` with its scheme rewritten to an async driver; ``ValueError`` if unsupported."""
    scheme, sep, rest = url.partition("://")
    target = _ALIASES.get(scheme.lower()) if sep else None
    if target is None:
        raise ValueError(
            "must be postgresql+asyncpg://… or sqlite+aiosqlite:///… "
            "(postgres://, postgresql:// and sqlite:/// are accepted too)"
        )
    return f"{target}://{rest}"


def default_database_url(directory: Path | None = None) -> str:
    """SQLite in ``directory`` (absolute), or ``./crossmargin.sqlite3`` relative to the cwd."""
    if directory is None:
        return f"{SQLITE_SCHEME}:///{DEFAULT_SQLITE_FILE}"
    return f"{SQLITE_SCHEME}:///{(directory.resolve() / DEFAULT_SQLITE_FILE).as_posix()}"


def dialect_of(url: str) -> str:
    """``"postgresql"`` or ``"sqlite"`` for a normalized URL."""
    return "postgresql" if url.startswith(POSTGRES_SCHEME) else "sqlite"


def shown_url(url: str) -> str:
    """``url`` as it may appear in messages and logs: scheme, host and port, plus a
    fingerprint of the rest (``core.redaction.redact_url``). A SQLite URL holds a file path
    and no credentials; it is shown as is."""
    return redact_url(url)
