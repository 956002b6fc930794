"""``/workers`` and ``/tasks``: the task registry, what workers recorded of themselves.

Workers serve every tenant, so both lists are operator-level, not tenant-scoped: the task
declarations (what ``POST /jobs`` resolves a job against) are readable with any key;
the workers (hosts, process ids) need an admin key.
"""

from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import Field
from starlette.responses import Response

from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.fields import ApiModel
from jobtrack.api.params import utcnow
from jobtrack.api.responses import errors, json_response
from jobtrack.domain.registry import STALE_LEASES, task_to_wire, worker_to_wire
from jobtrack.errors import Forbidden
from jobtrack.store.registry import list_tasks, list_workers

router = APIRouter(tags=["operations"])


class WorkerPublic(ApiModel):
    """A worker as it recorded itself (``jobtrack worker``), with the jobs it runs now."""

    worker_id: str
    host: str
    pid: int
    queues: list[str] = Field(description="the queues it claims from, in order")
    concurrency: int
    version: str = Field(description="its jobtrack version")
    running_jobs: int
    started_at: datetime
    heartbeat_at: datetime
    stale: bool = Field(description="no heartbeat for 3 lease periods: gone without "
                        "shutting down (deleted after 120)")


class RetryOut(ApiModel):
    """Backoff before a retry: ``base * factor ** (attempt - 1)`` seconds, capped at ``cap``,
    with a ``jitter`` share of it at random."""

    base: float
    factor: float
    cap: float
    jitter: float


class TaskPublic(ApiModel):
    """A task declaration a worker recorded: the defaults and checks of its jobs."""

    name: str
    queue_name: str
    phases: list[str]
    max_attempts: int | None = Field(description="null: the server's default")
    retry: RetryOut
    timeout_seconds: float | None = Field(description="per attempt; null: no limit")
    parameters: list[str] = Field(description="the data keys its function takes")
    required_parameters: list[str] = Field(description="the data keys a job must give")
    accepts_any_data: bool = Field(description="it takes **kwargs: any data key")
    updated_at: datetime
    worker_id: str | None = Field(description="the worker that recorded it last")


@router.get(
    "/workers", response_model=None,
    responses={200: {"model": list[WorkerPublic], "description": "recorded workers, "
                     "oldest first"},
               **errors(401, 403, 429, 503)},
)
async def workers_route(caller: CallerDep, state: StateDep) -> Response:
    """The workers that recorded themselves, with their queues, concurrency, running jobs
    and last heartbeat; one silent for 3 lease periods is marked ``stale``. Admin key."""
    if not caller.admin:
        raise Forbidden("GET /workers needs an admin key (workers serve every tenant)")
    stale_after = timedelta(seconds=state.settings.lease_seconds * STALE_LEASES)
    async with state.db.read() as conn:
        found = await list_workers(conn, now=utcnow(), stale_after=stale_after)
    return json_response([worker_to_wire(w) for w in found])


@router.get(
    "/tasks", response_model=None,
    responses={200: {"model": list[TaskPublic], "description": "declared tasks, by name "
                     "then queue"},
               **errors(401, 429, 503)},
)
async def tasks_route(caller: CallerDep, state: StateDep) -> Response:
    """The task declarations workers recorded (shared by every tenant): each task's queue,
    phases, attempts, retry, timeout and parameters, which ``POST /jobs`` and
    ``POST /flows`` resolve jobs against."""
    async with state.db.read() as conn:
        found = await list_tasks(conn)
    return json_response([task_to_wire(t) for t in found])
