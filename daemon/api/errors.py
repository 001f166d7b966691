"""Errors the API answers with, always as JSON: ``{"error": {"code", "message", "field"}}``.

Handlers raise ``ApiError``; the error middleware (``daemon.api.app``) turns it, aiohttp's own
``HTTPException`` (404, 405, 413 …), a database that cannot answer (``StoreUnavailable``: 503
``store_unavailable`` with ``Retry-After``) and anything unexpected (500, without internals)
into the same document; requests the HTTP parser refuses get it too (``daemon.api.server``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from core.errors import CrossmarginError
from daemon.mqtt.topics import encode_json

JSON_CONTENT_TYPE = "application/json"

BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
PAYLOAD_TOO_LARGE = "payload_too_large"
REQUEST_TIMEOUT = "request_timeout"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
INTERNAL_ERROR = "internal_error"
STORE_UNAVAILABLE = "store_unavailable"

STORE_RETRY_AFTER_S = 5
"""``Retry-After`` of a 503 answered while the database cannot answer."""
TOO_MANY_CONNECTIONS = "too_many_connections"
"""503 to a connection beyond ``api.max_connections`` (``daemon.api.server``)."""

CODES_BY_STATUS = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    408: REQUEST_TIMEOUT,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    500: INTERNAL_ERROR,
}
"""The ``code`` of aiohttp's own HTTP errors; another status gets ``http_<status>``."""

_PASSED_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")
"""Headers of an aiohttp ``HTTPException`` that the JSON error keeps."""


def json_response(
    payload: Mapping[str, object], *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``payload`` as JSON: ``Decimal`` as a string, a non-finite float (∞ health) as null."""
    return web.Response(
        body=encode_json(payload),
        status=status,
        content_type=JSON_CONTENT_TYPE,
        headers=headers,
    )


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The JSON error document."""
    error: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return json_response({"error": error}, status=status, headers=headers)


class ApiError(CrossmarginError):
    """A request the API refuses; answered as a JSON error with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        close_connection: bool = False,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.close_connection = close_connection
        """Hang up after the answer (the request's body is left unread)."""
        super().__init__(f"{status} {code}: {message}")

    def response(self) -> web.Response:
        """This error as a JSON response."""
        response = error_response(
            self.status, self.code, self.message, field=self.field, headers=self.headers
        )
        if self.close_connection:
            response.force_close()
        return response


class BadRequest(ApiError):
    """A parameter or body the API cannot use (400), naming the offending ``field``."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(400, BAD_REQUEST, message, field=field)


def store_unavailable() -> web.Response:
    """503: the request needs the database and the database did not answer (in time)."""
    return error_response(
        503,
        STORE_UNAVAILABLE,
        "store unavailable: the database did not answer; retry later",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own error (unknown route, wrong method, body too large…) as a JSON error."""
    status = exc.status
    code = CODES_BY_STATUS.get(status, f"http_{status}")
    message = exc.text if exc.text and not exc.text.startswith(f"{status}:") else exc.reason
    headers = {name: exc.headers[name] for name in _PASSED_HEADERS if name in exc.headers}
    return error_response(status, code, message or code, headers=headers)
