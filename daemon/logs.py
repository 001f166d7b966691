"""Structured logs: one event name plus ``key=value`` fields per line, on stderr.

Messages are written as ``"event key=%s ..."`` at the call site; this module adds time, level
and logger. Secrets never reach a log line: URLs are redacted where they are formatted.
"""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(level: int) -> None:
    """Route all logs to stderr at ``level`` (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_crossmargin", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._crossmargin = True  # type: ignore[attr-defined]
        root.addHandler(handler)
