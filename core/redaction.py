"""Redaction of secrets in URLs: RPC URLs routinely embed API keys in path, query or userinfo."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# Path segments at least this long that look like keys (hex, base64url) are replaced.
_KEYLIKE_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]{16,}$")
_REDACTED = "***"


def redact_url(url: str) -> str:
    """Return ``url`` with credentials, query values and key-like path segments hidden.

    Host and port stay visible so operators can still tell endpoints apart.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _REDACTED
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"{_REDACTED}@{host}"
    segments = [_REDACTED if _KEYLIKE_SEGMENT.match(seg) else seg for seg in parts.path.split("/")]
    query = "&".join(
        f"{kv.split('=', 1)[0]}={_REDACTED}" if "=" in kv else _REDACTED
        for kv in parts.query.split("&")
        if kv
    )
    return urlunsplit((parts.scheme, host, "/".join(segments), query, ""))
