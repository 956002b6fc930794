"""Answers serialized once with orjson, and the error responses each route documents.

Routes build the wire form with :mod:`jobtrack.domain.wire` and return it through
:func:`json_response`: no second validation pass on the hot path. The models in
:mod:`jobtrack.api.schemas` document the same shape for OpenAPI (a test keeps them equal).
"""

from typing import Any, Final

import orjson
from starlette.responses import Response

from jobtrack.api.schemas import ErrorBody

_DESCRIPTIONS: Final = {
    401: "missing, unknown or revoked API key",
    403: "this key may not do that",
    404: "not found (or another tenant's: the two are indistinguishable)",
    409: "invalid_transition (names the current status and the allowed targets) or a "
         "conflict with the current state",
    413: "request body over the configured limit",
    422: "validation error: names the field and the accepted values",
    429: "rate limit of the key exceeded",
    503: "the database is unreachable",
}

_HEADERS: Final[dict[int, dict[str, Any]]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {"Retry-After": {"schema": {"type": "integer"},
                          "description": "seconds until the rate-limit window ends"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
}

#: errors any authenticated route can answer (413 is added to routes with a body by
#: jobtrack.api.openapi)
AUTHENTICATED: Final = (401, 422, 429, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, all with ``ErrorBody``."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = dict(_HEADERS[status])
        out[status] = entry
    return out


def json_response(content: Any, status_code: int = 200) -> Response:
    """``content`` (already in wire form) as a JSON answer."""
    return Response(orjson.dumps(content), status_code=status_code,
                    media_type="application/json")
