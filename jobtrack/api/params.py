"""Path and query parameters shared by routes, and the link between an HTTP claim and its
lease.

A job claimed over HTTP is held by ``http:<key id>:<lease seconds>``: the holder is the
key that claimed it, and the lease term travels with it, so a ``PATCH`` by that key (its
heartbeat) renews the lease for as long as the claim asked, on any API process.
"""

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

from fastapi import Path, Query, Request
from pydantic import AfterValidator

from jobtrack.api.fields import StatusIn, clean_text
from jobtrack.api.middleware import ALIAS_SETTING, request_context
from jobtrack.api.schemas import ProgressIn
from jobtrack.domain.records import Progress
from jobtrack.domain.status import JobStatus
from jobtrack.errors import ValidationFailed
from jobtrack.settings import Settings
from jobtrack.store.keys import ApiKey

JobId = Annotated[str, Path(alias="jobId", min_length=1, max_length=64,
                            description="the job's id (a UUID)")]
QueueName = Annotated[str, Path(alias="queueName", min_length=1, max_length=200),
                     AfterValidator(clean_text)]
PhaseName = Annotated[str, Path(alias="phase", min_length=1, max_length=200),
                     AfterValidator(clean_text)]
#: a text filter of a query string (compared with stored names)
QueryText = Annotated[str, AfterValidator(clean_text)]
#: the query parameters of a list route: ``?status=`` (aliases noted by
#: :func:`note_status_alias`), ``?limit=`` (see :func:`check_page_size`), ``?cursor=``
StatusQuery = Annotated[StatusIn | None, Query(description="aliases accepted (deprecated)")]
PageLimit = Annotated[int, Query(ge=1, le=10_000)]
PageCursor = Annotated[str | None, Query(max_length=64,
                                         description="nextCursor of the previous page")]

_HOLDER = "http:"


def check_page_size(limit: int, max_page_size: int) -> None:
    """A list's ``limit`` within the configured page size (the schema's bound is wider)."""
    if limit > max_page_size:
        raise ValidationFailed(
            f"invalid query: limit: must be at most {max_page_size}",
            details={"field": "limit", "max": max_page_size},
        )


def note_status_alias(request: Request, settings: Settings, status: Enum | None) -> None:
    """A ``?status=`` alias: noted, or refused once aliases are off (see :func:`status_alias`)."""
    raw = request.query_params.get("status")
    if status is not None and raw is not None and raw != status.value:
        status_alias(request, settings, raw, str(status.value), where="query")


def status_alias(
    request: Request, settings: Settings, raw: str, canonical: str, *, where: str = "body"
) -> None:
    """The request spelled the status ``canonical`` as ``raw`` (an alias). While the
    deprecation window is open (``accept_status_aliases``) the answer gets a
    ``Deprecation`` header; once it is closed, a 422 naming the canonical values."""
    if not settings.accept_status_aliases:
        accepted = [s.value for s in JobStatus]
        raise ValidationFailed(
            f"invalid {where}: status: {raw!r} is an alias of {canonical!r}, and this server "
            f"accepts only the canonical statuses {', '.join(accepted)} "
            f"({ALIAS_SETTING}=false)",
            details={"field": "status", "in": where, "value": raw, "canonical": canonical,
                     "accepted": accepted},
        )
    request_context(request.scope).deprecation = (raw.strip().lower(), canonical)


def holder_id(key: ApiKey, lease_seconds: float) -> str:
    """The worker id of jobs ``key`` claims over HTTP with this lease term."""
    return f"{_HOLDER}{key.id}:{lease_seconds:g}"


def held_term(worker_id: str | None, key: ApiKey) -> float | None:
    """The lease term when ``key`` holds a job with this worker id, else None."""
    prefix = f"{_HOLDER}{key.id}:"
    if worker_id is None or not worker_id.startswith(prefix):
        return None
    try:
        return float(worker_id[len(prefix):])
    except ValueError:
        return None


def progress_of(value: float | ProgressIn | None) -> Progress | None:
    """A percentage becomes ``{done: value, total: 100}``; ``{done, total}`` stays."""
    if value is None:
        return None
    if isinstance(value, ProgressIn):
        return Progress(value.done, value.total)
    return Progress(float(value), 100.0)


def utcnow() -> datetime:
    return datetime.now(UTC)

