"""Errors on the wire: ONE table from :mod:`jobtrack.errors` to HTTP status, and the
handlers that answer every failure as ``{"error": {"code", "message", "details"}}``.

FastAPI's own failures (request validation, unknown routes, wrong methods) are rewritten
into the same envelope: JSON always, never an HTML page. Anything unexpected is caught by
:class:`jobtrack.api.middleware.ApiGuard` (500 without internals, or 503 when the
database cannot be reached).
"""

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from jobtrack.errors import (
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    InvalidTransition,
    JobtrackError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    TaskNotFound,
    Unauthorized,
    UnknownStatus,
    ValidationFailed,
)

#: The one mapping from jobtrack's errors to HTTP statuses (subclasses inherit).
STATUS_BY_ERROR: Final[Mapping[type[JobtrackError], int]] = {
    InvalidTransition: 409,
    Conflict: 409,
    NotFound: 404,
    UnknownStatus: 422,
    ValidationFailed: 422,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    PayloadTooLarge: 413,
    DatabaseUnavailable: 503,
    TaskNotFound: 404,
}

#: the most field errors one 422 answer lists
MAX_FIELD_ERRORS: Final = 20
_QUOTED = re.compile(r"'([^']*)'")
#: loc parts pydantic adds for union members and validators, not field names
_TAG = re.compile(r"^(float|int|str|bool|dict|list|none|[a-z-]+\[.*\]|[A-Z]\w*)$")


def status_for(exc: JobtrackError) -> int:
    """The HTTP status of a jobtrack error: its class's entry, or its nearest base's."""
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return int(status)
    return 500


def envelope(code: str, message: str, details: Any = None) -> bytes:
    """The error body, serialized."""
    return orjson.dumps({"error": {"code": code, "message": message, "details": details}})


def error_response(
    status: int, code: str, message: str, details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(envelope(code, message, details), status_code=status,
                    media_type="application/json", headers=dict(headers or {}))


def response_for(exc: JobtrackError) -> Response:
    """The HTTP answer to a jobtrack error, with the headers its status calls for."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, DatabaseUnavailable):
        headers["Retry-After"] = "1"
    return error_response(status_for(exc), exc.code, exc.message, exc.details, headers)


# --- request validation (422) ------------------------------------------------------


def _field(loc: Sequence[Any]) -> tuple[str, str]:
    """Where (body, query, path, header) and the dotted field name of a pydantic loc."""
    where = str(loc[0]) if loc else "body"
    parts = [str(p) for p in loc[1:] if not (isinstance(p, str) and _TAG.match(p))]
    return where, ".".join(parts) or where


def _accepted(error: Mapping[str, Any]) -> list[Any] | None:
    ctx = error.get("ctx") or {}
    if "accepted" in ctx:
        return list(ctx["accepted"])
    if error.get("type") in ("enum", "literal_error") and "expected" in ctx:
        return _QUOTED.findall(str(ctx["expected"]))
    return None


def _message(error: Mapping[str, Any], where: str, content_type: str) -> str:
    kind = error.get("type")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return f"the request body is not valid JSON ({reason})"
    if where == "body" and kind == "model_attributes_type" and "json" not in content_type:
        return "the request body must be a JSON object sent with Content-Type: application/json"
    if kind == "missing":
        return "this field is required"
    return str(error.get("msg", "invalid value"))


def validation_details(
    errors: Sequence[Mapping[str, Any]], content_type: str = "application/json"
) -> tuple[str, dict[str, Any]]:
    """A message naming the first bad field, and details listing every field's problem
    (with the accepted values where there is a fixed set). Inputs are not echoed."""
    items: list[dict[str, Any]] = []
    for error in errors[:MAX_FIELD_ERRORS]:
        where, field = _field(error.get("loc", ()))
        item: dict[str, Any] = {"field": field, "in": where,
                                "message": _message(error, where, content_type),
                                "type": error.get("type")}
        accepted = _accepted(error)
        if accepted is not None:
            item["accepted"] = accepted
        items.append(item)
    if not items:
        return "invalid request", {"errors": []}
    first = items[0]
    message = f"invalid {first['in']}: {first['field']}: {first['message']}"
    if first.get("accepted") and str(first["accepted"][0]) not in first["message"]:
        message += "; accepted: " + ", ".join(str(a) for a in first["accepted"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    details: dict[str, Any] = {"field": first["field"], "errors": items}
    if "accepted" in first:
        details["accepted"] = first["accepted"]
    return message, details


# --- handlers ----------------------------------------------------------------------


async def _jobtrack_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, JobtrackError)
    return response_for(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, details = validation_details(exc.errors(), request.headers.get("content-type", ""))
    return error_response(422, "validation_error", message, details)


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        allowed = _allowed_methods(request) or (exc.headers or {}).get("Allow", "")
        headers = {**(exc.headers or {}), "Allow": allowed}
        message = f"method {request.method} is not allowed on {request.url.path}; " \
            f"allowed: {allowed}"
        return error_response(status, "method_not_allowed", message, None, headers)
    elif status == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to a body json.loads cannot decode (not UTF-8, say)
        return error_response(422, "validation_error",
                              "invalid body: the request body is not UTF-8 JSON text",
                              {"field": "body", "errors": [
                                  {"field": "body", "in": "body", "type": "json_invalid",
                                   "message": "not UTF-8 JSON text"}]})
    else:
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    return error_response(status, _code(status), message, None, exc.headers)


def _allowed_methods(request: Request) -> str:
    """Every method the API documents at this path (Starlette names only the first
    matching route's)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods.update(m.upper() for m in operations if m != "parameters")
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Register the envelope handlers on ``app``."""
    app.add_exception_handler(JobtrackError, _jobtrack_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
