"""Structured logs: one event name plus ``key=value`` fields per line, on stderr.

Messages are written as ``"event key=%s ..."`` at the call site; this module adds time, level
and logger. Secrets never reach a log line: URLs are redacted where they are formatted, and
every formatted line (tracebacks included) is passed through ``core.redaction.scrub`` on its
way out, which redacts any URL left in it and masks every secret of the loaded config.
"""

from __future__ import annotations

import logging
import sys

from core.redaction import scrub

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ScrubbingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output has passed through ``core.redaction.scrub``."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, scrubbed (exception text and stack included)."""
        return scrub(super().format(record))


def setup_logging(level: int) -> None:
    """Route all logs to stderr at ``level`` (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_crossmargin", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ScrubbingFormatter(LOG_FORMAT))
        handler._crossmargin = True  # type: ignore[attr-defined]
        root.addHandler(handler)


LOG_FIELD_MAX_CHARS = 256
"""A field from outside (a request path) is cut here: a log line stays one readable line."""
_PLAIN = frozenset(chr(code) for code in range(0x21, 0x7F)) - {"\\"}


def log_safe(value: object, limit: int = LOG_FIELD_MAX_CHARS) -> str:
    """``value`` as one ``key=value`` field: printable ASCII other than space and backslash
    as is, every other character as a ``\\xNN``/``\\uNNNN`` escape, cut after ``limit``
    characters (marked ``...``). CR, LF or a space from a request cannot start a forged line
    or field."""
    text = str(value)
    shown = "".join(char if char in _PLAIN else _escaped(char) for char in text[:limit])
    return shown + "..." if len(text) > limit else shown


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
