"""The OpenAPI document at ``/openapi.json``: FastAPI's, plus what routes do not say
themselves: 413 on every route that takes a body, and the rate-limit headers on every
answer of an authenticated route."""

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

DESCRIPTION: Final = """\
jobtrack's HTTP API: jobs, queues and their status (`docs/reference/http-api.md`).

**Auth**: `Authorization: Bearer <key>` (from `jobtrack keys create --tenant NAME`) on
every route but `/healthz` and `/readyz`. A key sees its tenant only: another tenant's
object is a 404, like a missing one. Keys are cached per process for `key_cache_seconds`
(default 10 s): a revoked key may keep working that long.

**Rate limit** per key, shared by every API process on the database (default 600 per
minute, fixed one-minute windows): `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
`X-RateLimit-Reset` (Unix time when the window ends) on every authenticated answer; 429
with `Retry-After` (seconds) over it. Processes lease quota in chunks, so the total never
exceeds the limit, and a process may refuse slightly early (by at most the unspent chunks
other processes hold).

**Errors** are always `{"error": {"code", "message", "details"}}`.

**Status aliases** (`done`, `processing`, `canceled`, ...) are accepted where a status is
input, during a deprecation window; answers carry only canonical values, and an answer to
aliased input has `Deprecation: true; alias="done"; canonical="completed"` and a `Warning`
naming `JOBTRACK_ACCEPT_STATUS_ALIASES`; with that setting `false` aliases are a 422.

**Progress** is a percentage (a number from 0 to 100) or `{done, total}`; it is answered
as `{done, total, percentage}`.
"""

_RATE_HEADERS: Final = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "requests per minute"},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"},
                              "description": "estimate of what is left in this window"},
    "X-RateLimit-Reset": {"schema": {"type": "integer"},
                          "description": "Unix time (seconds) when the window ends"},
}
_TOO_LARGE: Final = {
    "description": "request body over the configured limit",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def _page_limits(operation: dict[str, Any], max_page_size: int) -> None:
    """A ``limit`` query parameter's maximum is the configured page size (routes check
    it against the setting, which their signatures cannot know)."""
    for parameter in operation.get("parameters", ()):
        schema = parameter.get("schema", {})
        if parameter.get("in") == "query" and parameter.get("name") == "limit" \
                and schema.get("maximum", 0) > max_page_size:
            schema["maximum"] = max_page_size


def install_openapi(app: FastAPI, version: str, *, max_page_size: int | None = None) -> None:
    """Make ``app.openapi()`` build (once) the completed document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title="jobtrack", version=version, description=DESCRIPTION,
                             routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                if max_page_size is not None:
                    _page_limits(operation, max_page_size)
                responses = operation.setdefault("responses", {})
                if method in ("post", "put", "patch"):
                    responses.setdefault("413", _TOO_LARGE)
                if operation.get("security"):
                    for status, response in responses.items():
                        if status not in ("401", "413"):  # answered before the key is known
                            response["headers"] = {**response.get("headers", {}),
                                                   **_RATE_HEADERS}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
