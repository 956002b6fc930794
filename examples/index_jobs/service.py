"""Seed 004's repository-indexing API, built on jobtrack's Python API: ``POST /index``
answers ``{jobId, status: "pending"}`` at once, ``GET /jobs/{jobId}`` is the polling
endpoint (status, timestamps, error, stats), ``GET /stats`` the caller's figures.

It is its own FastAPI app: it mounts nothing of jobtrack's; it enqueues and reads through
:class:`jobtrack.App`, one App per user, whose tenant keeps users apart (another user's
job is a 404, as with the seed's row-level security). Run it from the repository root::

    export JOBTRACK_DATABASE_URL=sqlite:///./index_jobs.db
    export INDEX_API_KEYS="alice-key:alice,bob-key:bob"
    uvicorn --factory examples.index_jobs.service:create_app --port 3000

Settings (environment): ``INDEX_API_KEYS`` (``key:user`` pairs, comma-separated),
``INDEX_RATE_LIMIT_PER_HOUR`` (default 100, per key), and jobtrack's own
(``JOBTRACK_DATABASE_URL``, ``JOBTRACK_STUCK_AFTER_SECONDS``).
"""

import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from examples.index_jobs.tasks import QUEUE, TASK
from examples.index_jobs.tasks import app as tasks_app
from jobtrack import App, Job, JobStatus, Settings
from jobtrack.store.queues import queue_overview

HOUR = 3600


@dataclass
class Config:
    """The service's settings; :meth:`from_env` reads them from the environment."""

    keys: dict[str, str]  # API key -> user
    rate_limit_per_hour: int = 100
    jobtrack: Settings = field(default_factory=Settings)

    @classmethod
    def from_env(cls) -> "Config":
        pairs = (p.split(":", 1) for p in os.environ.get("INDEX_API_KEYS", "").split(","))
        return cls(keys={k.strip(): u.strip() for k, u in (p for p in pairs if len(p) == 2)},
                   rate_limit_per_hour=int(os.environ.get("INDEX_RATE_LIMIT_PER_HOUR", "100")))


class ServiceError(Exception):
    """An error answer: ``{"error": {"code", "message"}}`` with this HTTP status."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class RateLimiter:
    """A fixed one-hour window per key, in this process's memory (one API process)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, used)

    def take(self, key: str, now: float) -> dict[str, str]:
        """Count one request; the X-RateLimit headers, or ServiceError 429 when over."""
        start = int(now) // HOUR * HOUR
        window, used = self._windows.get(key, (start, 0))
        if window != start:
            window, used = start, 0
        reset = window + HOUR
        if used >= self.limit:
            retry = str(max(1, math.ceil(reset - now)))
            raise ServiceError(429, "rate_limited", f"over {self.limit} requests per hour",
                               {"Retry-After": retry, "X-RateLimit-Limit": str(self.limit),
                                "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
        self._windows[key] = (window, used + 1)
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.limit - used - 1),
                "X-RateLimit-Reset": str(reset)}


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repository: Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[\w.-]+/[\w.-]+$")]
    ref: Annotated[str, Field(min_length=1, max_length=200)] = "main"
    commit_sha: Annotated[str | None, Field(max_length=64)] = None


def job_answer(job: Job) -> dict[str, Any]:
    """The seed's job record: ``{id, status, started_at, completed_at, error_message,
    stats}`` plus what was asked for. Statuses are jobtrack's canonical ones."""

    def iso(at: datetime | None) -> str | None:
        return None if at is None else at.astimezone(UTC).isoformat()

    return {
        "id": job.id,
        "status": job.status.value,
        "repository": job.data.get("repository"),
        "ref": job.data.get("ref"),
        "commit_sha": job.data.get("commit_sha"),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "error_message": None if job.error is None else job.error.get("message"),
        "stats": None if job.stats is None else {
            k: v for k, v in job.stats.items() if k in ("files_indexed", "symbols_extracted")},
    }


async def user_stats(app: App) -> dict[str, Any]:
    """Figures of one user's indexing jobs (the same query as jobtrack's ``GET /queues``)."""
    async with app.db.read() as conn:
        queues = await queue_overview(conn, tenant=app.tenant, now=datetime.now(UTC),
                                      stuck_after=app.settings.stuck_after_seconds)
    counts = dict.fromkeys((s.value for s in JobStatus), 0)
    stuck = 0
    for q in queues:
        if q.queue_name == QUEUE:
            counts.update({s.value: n for s, n in q.counts.items()})
            stuck = q.stuck
    finished = counts[JobStatus.COMPLETED] + counts[JobStatus.FAILED]
    rate = counts[JobStatus.FAILED] / finished if finished else 0.0
    return {"counts": counts, "stuck": stuck, "failure_rate": rate}


def create_app(config: Config | None = None) -> FastAPI:
    """The service for ``config`` (default: from the environment)."""
    config = config or Config.from_env()
    apps: dict[str, App] = {}
    limiter = RateLimiter(config.rate_limit_per_hour)

    def app_of(user: str) -> App:
        """The jobtrack App of one user: its tenant is the user."""
        if user not in apps:
            apps[user] = App(settings=config.jobtrack, tenant=f"index-{user}")
            apps[user].tasks = tasks_app.tasks  # the task's declaration: queue, attempts
        return apps[user]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for app in apps.values():
            await app.close()

    api = FastAPI(title="index_jobs (a jobtrack example)", lifespan=lifespan)

    @api.exception_handler(ServiceError)
    async def on_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}},
                            status_code=exc.status, headers=exc.headers)

    @api.middleware("http")
    async def rate_headers(request: Request,
                           call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(getattr(request.state, "rate", {}))
        return response

    def user(request: Request) -> str:
        """The caller, from ``Authorization: Bearer <key>``; 401 without a known key, 429
        over the key's hourly quota."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        found = config.keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise ServiceError(401, "unauthorized", "an API key is required",
                               {"WWW-Authenticate": "Bearer"})
        request.state.rate = limiter.take(key.strip(), time.time())
        return found

    User = Annotated[str, Depends(user)]

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/index", status_code=202)
    async def index(body: IndexRequest, who: User) -> dict[str, str]:
        """Enqueue the indexing of a repository; answers at once, before any work."""
        job = await app_of(who).enqueue(TASK, repository=body.repository, ref=body.ref,
                                        commit_sha=body.commit_sha)
        return {"jobId": job.id, "status": job.status.value}

    @api.get("/jobs/{job_id}")
    async def get_job(job_id: str, who: User) -> dict[str, Any]:
        """Poll one job; another user's job is a 404, exactly like a missing one."""
        job = await app_of(who).get_job(job_id)
        if job is None or job.queue_name != QUEUE:
            raise ServiceError(404, "not_found", f"no job {job_id!r}")
        return job_answer(job)

    @api.get("/stats")
    async def stats(who: User) -> dict[str, Any]:
        """The caller's indexing jobs by status, how many look stuck, and the failure
        rate of the finished ones (what the seed's alerts watch)."""
        return await user_stats(app_of(who))

    return api
