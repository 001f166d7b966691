"""Bearer-token check of the write endpoints (RFC 6750).

- no ``api.token`` configured → 403, writes are disabled (nothing to authenticate against);
- no ``Authorization`` header, or not ``Bearer <token>`` → 401 with ``WWW-Authenticate``;
- a token that does not match → 403.

The comparison is constant-time (``hmac.compare_digest``) and neither the expected nor the
presented token is ever logged or echoed back.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import SecretStr

from daemon.api.errors import FORBIDDEN, UNAUTHORIZED, ApiError

REALM = "crossmargin"
_SCHEME = "bearer"


def _challenge(error: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{REALM}"'
    if error is not None:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def require_bearer(request: web.Request, token: SecretStr | None) -> None:
    """Raise ``ApiError`` (401/403) unless ``request`` carries ``token`` as its bearer token."""
    if token is None:
        raise ApiError(403, FORBIDDEN, "writes are disabled: no api.token is configured")
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(
            401, UNAUTHORIZED, "a bearer token is required (Authorization: Bearer <token>)",
            headers=_challenge(),
        )  # fmt: skip
    scheme, _, presented = header.strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != _SCHEME or not presented:
        raise ApiError(
            401, UNAUTHORIZED, "the Authorization header must be 'Bearer <token>'",
            headers=_challenge("invalid_request"),
        )  # fmt: skip
    expected = token.get_secret_value().encode()
    if not hmac.compare_digest(presented.encode("utf-8", "replace"), expected):
        raise ApiError(403, FORBIDDEN, "the bearer token is not valid for writes")
