"""The HTTP server under the keeper API: connection limits and answers to malformed requests.

aiohttp's ``AppRunner`` is kept; ``KeeperRunner`` swaps its low-level ``Server`` for
``KeeperServer`` so that:

- at most ``api.max_connections`` connections are served at once: one more is answered
  ``503 too_many_connections`` (JSON, ``Retry-After``) and closed, without reading it;
- a request the HTTP parser refuses (bad request line, bad or oversized headers) is answered
  with the API's JSON error document instead of aiohttp's text page — which echoed the raw
  header, bearer token included — and logged as one line naming the kind of problem only,
  never a header, a value or the parser's message (which quotes the offending bytes).

Idle and half-sent connections are closed by aiohttp's keep-alive timer (``api.idle_timeout_s``):
it starts when a connection opens and again after each answer, and closes the connection if no
complete request head has arrived by then — a header deadline as much as an idle timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from daemon.api.errors import CODES_BY_STATUS, TOO_MANY_CONNECTIONS, error_response
from daemon.logs import log_safe
from daemon.mqtt.topics import encode_json

log = logging.getLogger("daemon.api.server")

UNREAD_BODY_LINGER_S = 2.0
"""A body left unread by an answered request (a 408, a 401 …) is read and dropped for at most
this long before the connection closes (aiohttp's default is 10 s)."""
REFUSAL_LINGER_S = 1.0
"""A refused connection is closed this long after its 503 at the latest (or when the client
closes first): reading what it still sends meanwhile keeps the kernel from resetting the
connection before the client has read the answer."""
REFUSAL_RETRY_AFTER_S = 1
REFUSAL_LOG_EVERY_S = 10.0
"""Refused connections are logged as one summary line per interval, not one line each."""

PARSER_PROBLEMS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "request line or header too long"),
    (InvalidHeader, "malformed header"),
    (BadHttpMethod, "malformed request method"),
    (BadStatusLine, "malformed request line"),
    (InvalidURLError, "malformed request target"),
    (PayloadEncodingError, "malformed body framing"),
    (BadHttpMessage, "malformed request line or header"),
)
"""What a malformed request is told (and what is logged): fixed words per kind of problem,
most specific first; the parser's own message quotes the raw bytes and is never used."""


def parser_problem(exc: BaseException | None) -> str:
    """The fixed description of the HTTP parser's error ``exc``."""
    for kind, problem in PARSER_PROBLEMS:
        if isinstance(exc, kind):
            return problem
    return "malformed request"


class KeeperRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering its own errors in the API's JSON shape."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """The JSON error for a request that never reached the application (or broke it)."""
        del message  # the parser's message quotes raw request bytes: never shown or logged
        if request.writer.output_size > 0:
            raise ConnectionError("the answer is already under way; the connection is broken")
        if exc is None or isinstance(exc, HttpProcessingError):
            problem = parser_problem(exc) if status < 500 else "the request could not be served"
            log.info(
                "api_request_rejected status=%d problem=%s peer=%s",
                status,
                problem.replace(" ", "_"),
                log_safe(request.remote),
            )
        else:  # an exception past the error middleware: a bug of ours, worth its traceback
            log.error("api_unhandled_error", exc_info=exc)
            problem = "internal error"
        response = error_response(status, _code(status), problem)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error logging (e.g. a body that fails to decode after the answer):
        a request's fault is one line naming its kind, since its message may quote the raw
        request; anything else keeps its traceback."""
        exc = kw.get("exc_info")
        if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):
            log.info("api_request_broken error=%s", type(exc).__name__)
            return
        log.error("api_connection_error", exc_info=exc if exc is not None else True)


def _code(status: int) -> str:
    return CODES_BY_STATUS.get(status, f"http_{status}")


class _RefusingHandler(KeeperRequestHandler):
    """A connection over the cap: answered 503 at once, then closed (never parsed)."""

    def __init__(self, manager: KeeperServer, *, loop: asyncio.AbstractEventLoop, **kwargs: Any):
        super().__init__(manager, loop=loop, **kwargs)
        self._keeper = manager
        self._closer: asyncio.TimerHandle | None = None
        self._refused: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Answer 503, stop writing, and close after ``REFUSAL_LINGER_S``."""
        assert isinstance(transport, asyncio.Transport)
        self._refused = transport
        self._keeper.refusing.add(self)
        transport.write(self._keeper.refusal)
        if transport.can_write_eof():
            transport.write_eof()
        self._closer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_S, self.hang_up)

    def data_received(self, data: bytes) -> None:
        """Whatever the client still sends is dropped."""

    def eof_received(self) -> None:
        """The client is done: close now."""
        self.hang_up()

    def hang_up(self) -> None:
        """Close the refused connection (idempotent)."""
        if self._refused is not None:
            self._refused.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection; it never reached the server's books."""
        if self._closer is not None:
            self._closer.cancel()
        self._keeper.refusing.discard(self)
        self._refused = None


class KeeperServer(web.Server):
    """aiohttp's low-level server with a cap on open connections (``max_connections``)."""

    def __init__(
        self,
        handler: Any,
        *,
        max_connections: int,
        request_factory: Any,
        handler_cancellation: bool,
        **handler_kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            request_factory=request_factory,
            handler_cancellation=handler_cancellation,
            **handler_kwargs,
        )
        self.max_connections = max_connections
        self._handler_kwargs = handler_kwargs
        # Handlers handed out and not yet closed; weak, so one whose connection never got
        # made (the accept failed) cannot hold a slot forever.
        self._open: weakref.WeakSet[KeeperRequestHandler] = weakref.WeakSet()
        self.refusing: set[_RefusingHandler] = set()
        self.refused = 0
        self._refused_logged = 0
        self._refusal_logged_at = 0.0
        body = encode_json(
            {
                "error": {
                    "code": TOO_MANY_CONNECTIONS,
                    "message": f"the API serves at most {max_connections} connections at "
                    "once; retry later",
                }
            }
        )
        self.refusal = (
            b"HTTP/1.1 503 Service Unavailable\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + f"Retry-After: {REFUSAL_RETRY_AFTER_S}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        """The whole answer to a connection over the cap."""

    @property
    def open_connections(self) -> int:
        """Connections being served now (refused ones not counted)."""
        return len(self._open)

    def __call__(self) -> web.RequestHandler:
        """The protocol for a new connection: served, or refused when at the cap."""
        loop = asyncio.get_running_loop()
        if len(self._open) >= self.max_connections:
            self._note_refusal()
            return _RefusingHandler(self, loop=loop, **self._handler_kwargs)
        handler = KeeperRequestHandler(self, loop=loop, **self._handler_kwargs)
        self._open.add(handler)
        return handler

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        """Free the connection's slot at once (aiohttp's own books wait for its task)."""
        if isinstance(handler, KeeperRequestHandler):
            self._open.discard(handler)
        super().connection_lost(handler, exc)

    def pre_shutdown(self) -> None:
        """Closing: refused connections go at once, served ones as aiohttp closes them."""
        for refused in list(self.refusing):
            refused.hang_up()
        super().pre_shutdown()

    def _note_refusal(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_EVERY_S:
            log.warning(
                "api_connections_refused refused=%d limit=%d",
                self.refused - self._refused_logged,
                self.max_connections,
            )
            self._refused_logged = self.refused
            self._refusal_logged_at = now


class KeeperRunner(web.AppRunner):
    """``AppRunner`` serving through ``KeeperServer`` (the connection cap and JSON errors)."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._max_connections = max_connections
        self._handler_kwargs = {
            k: v for k, v in kwargs.items() if k not in ("handle_signals", "shutdown_timeout")
        }

    async def _make_server(self) -> web.Server:
        # aiohttp's own runner starts the application and builds its Server; only the request
        # handler and factory are kept from it, in a KeeperServer.
        plain = await super()._make_server()
        return KeeperServer(
            plain.request_handler,
            max_connections=self._max_connections,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **self._handler_kwargs,
        )
