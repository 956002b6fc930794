"""The API's one ASGI middleware (pure ASGI: no per-request task, no body copies beyond
the one it must buffer). For every HTTP request it:

1. refuses a body over ``max_body_bytes`` with 413, counting the bytes as they stream in
   (a ``Content-Length`` over the limit is refused before reading anything; a chunked
   body is cut off as soon as it passes the limit);
2. refuses JSON nested deeper than ``max_json_depth`` (``body_depth_limit``), and integers
   too long for the parser to read, with 422, before any parser sees them;
3. adds the headers the request earned on whatever answer goes out, errors included
   (rate-limit headers once the key is known, ``Deprecation`` and a ``Warning`` naming
   ``JOBTRACK_ACCEPT_STATUS_ALIASES`` for aliased input);
4. turns any unexpected exception into a 500 envelope that leaks nothing (503 when the
   database cannot be reached), and logs it with a reference the client also gets;
5. counts the request in the HTTP metrics (:class:`jobtrack.api.telemetry.HttpMetrics`),
   by method, route template and status, and the time until its response started,
   whatever answered it (a route, the guard itself, the catch-all).

One layer for all of these, not one middleware each: every layer is another ``send``
wrapper and another await per request on the API's hottest path.

A refused request never reaches a route, so nothing is stored half-way.
"""

import logging
import time
import uuid
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobtrack.api.errors import envelope
from jobtrack.api.jsonguard import MAX_JSON_DEPTH, too_deep, unreadable_integer
from jobtrack.api.ratelimit import RateInfo
from jobtrack.api.telemetry import METHODS, HttpMetrics, route_of
from jobtrack.store.connect import is_unavailable

logger = logging.getLogger("jobtrack.api")

#: where routes and dependencies leave what the middleware adds to the answer
CONTEXT_KEY = "jobtrack.context"
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
#: the setting that ends the status-alias window (``Settings.accept_status_aliases``)
ALIAS_SETTING = "JOBTRACK_ACCEPT_STATUS_ALIASES"


@dataclass(slots=True)
class RequestContext:
    """Per-request facts that become response headers."""

    rate: RateInfo | None = None
    #: ``(alias, canonical)`` when the request spelled a status alias
    deprecation: tuple[str, str] | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = self.rate.headers() if self.rate is not None else []
        if self.deprecation is not None:
            alias, canonical = self.deprecation
            out.append((b"deprecation",
                        f'true; alias="{alias}"; canonical="{canonical}"'.encode()))
            out.append((b"warning", (
                f'299 jobtrack "status alias \'{alias}\' is deprecated: send \'{canonical}\'; '
                f'{ALIAS_SETTING}=false refuses aliases"').encode()))
        return out


def request_context(scope: Scope) -> RequestContext:
    """The context of the request ``scope`` belongs to (a fresh one outside the guard)."""
    ctx = scope.get(CONTEXT_KEY)
    if not isinstance(ctx, RequestContext):
        ctx = scope[CONTEXT_KEY] = RequestContext()
    return ctx


class _TooLarge(Exception):
    pass


class ApiGuard:
    """Body limits, answer headers and the catch-all error answer (see module doc)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int,
                 max_json_depth: int = MAX_JSON_DEPTH,
                 metrics: HttpMetrics | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        if metrics is None:
            await self._guard(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # no answer at all: the server will say 500
        method = scope["method"] if scope["method"] in METHODS else "other"

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                metrics.started(method, route_of(scope), time.perf_counter() - began)
            await send(message)

        try:
            await self._guard(scope, receive, counting_send)
        finally:
            metrics.answered(method, route_of(scope), status)

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = scope[CONTEXT_KEY] = RequestContext()
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = ctx.headers()
                if extra:
                    MutableHeaders(scope=message).raw.extend(extra)
            await send(message)

        if scope["method"] not in _NO_BODY:
            try:
                body = await self._read_body(scope, receive)
            except _TooLarge:
                await _answer(send_with_headers, 413, "payload_too_large",
                              f"request body is larger than {self.max_body_bytes} bytes",
                              {"maxBytes": self.max_body_bytes})
                return
            if body is None:  # the client went away
                return
            if too_deep(body, self.max_json_depth):
                await _answer(send_with_headers, 422, "validation_error",
                              f"invalid body: JSON nests deeper than {self.max_json_depth} "
                              "levels", {"field": "body", "maxDepth": self.max_json_depth})
                return
            digits = unreadable_integer(body)
            if digits is not None:
                await _answer(send_with_headers, 422, "validation_error",
                              f"invalid body: a number of {digits} digits is too large: "
                              "integers must fit in 64 bits", {"field": "body"})
                return
            receive = _replay(body, receive)
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                raise
            await self._crash(exc, send_with_headers)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body_bytes:
                    raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _crash(self, exc: Exception, send: Send) -> None:
        if is_unavailable(exc):
            logger.warning("database unavailable: %s", exc)
            await _answer(send, 503, "database_unavailable",
                          "The database is unavailable; try again shortly.", None,
                          retry_after=1)
            return
        reference = uuid.uuid4().hex[:16]
        logger.exception("unhandled error (reference %s)", reference)
        await _answer(send, 500, "internal_error",
                      f"internal server error (reference {reference})",
                      {"reference": reference})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, code: str, message: str, details: object,
                  retry_after: int | None = None) -> None:
    body = envelope(code, message, details)
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
