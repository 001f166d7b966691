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
