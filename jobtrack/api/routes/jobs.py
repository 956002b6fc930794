"""``/jobs``: create, read, list, report (``PATCH``) and the history of a job.

Thin: each route turns its request into a domain value, runs one store operation in one
transaction (or one read), and answers the wire form of :mod:`jobtrack.domain.wire`.
"""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.params import (
    JobId,
    QueryText,
    check_page_size,
    held_term,
    note_status_alias,
    progress_of,
    status_alias,
    utcnow,
)
from jobtrack.api.responses import AUTHENTICATED, errors, json_response
from jobtrack.api.schemas import (
    JobCreate,
    JobCreated,
    JobPage,
    JobPatch,
    JobPublic,
    StatusIn,
    Transition,
)
from jobtrack.domain.ids import new_id
from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import UNSET, JobUpdate, PhaseUpdate
from jobtrack.domain.spec import job_of, resolve
from jobtrack.domain.status import JobStatus
from jobtrack.domain.wire import iso, job_to_wire
from jobtrack.store.events import history
from jobtrack.store.jobs import JobFilter, change_job, get_job, list_jobs, not_found
from jobtrack.store.leases import renew_leases
from jobtrack.store.registry import resolver

router = APIRouter(tags=["jobs"])


@router.post(
    "/jobs", status_code=201, response_model=None,
    responses={201: {"model": JobCreated, "description": "created"},
               200: {"model": JobCreated, "description": "idempotencyKey already used: the "
                     "first job"},
               **errors(*AUTHENTICATED)},
)
async def create_job(body: JobCreate, caller: CallerDep, state: StateDep) -> Response:
    """Create a pending job in the caller's tenant.

    A job whose task a worker declared (``GET /tasks``, by name and queue) gets the
    declared phases and ``maxAttempts`` unless given, and data the task cannot take (an
    unknown key, a missing required parameter) or other phases are refused with a 422
    naming the field (``data.documentId``). A task no worker declared is taken as sent.
    """
    now = utcnow()
    sub = body.to_submission()
    lookup = await resolver(state.db, [sub.name], cache=state.declarations)
    spec = resolve(sub, lookup(sub), now=now,
                   default_max_attempts=state.settings.default_max_attempts)
    job = job_of(spec, id=new_id(), tenant=caller.tenant, now=now)
    stored, fresh = await state.inserter.insert(job, actor=caller.actor)
    wire = job_to_wire(stored)
    return json_response({"jobId": stored.id, "status": wire["status"], "job": wire},
                         201 if fresh else 200)


@router.get(
    "/jobs/{jobId}", response_model=None,
    responses={200: {"model": JobPublic, "description": "the job"},
               **errors(*AUTHENTICATED, 404)},
)
async def read_job(job_id: JobId, caller: CallerDep, state: StateDep) -> Response:
    """One job with its phases (one database round trip)."""
    async with state.db.read() as conn:
        job = await get_job(conn, job_id, tenant=caller.scope)
    if job is None:
        raise not_found(job_id)
    return json_response(job_to_wire(job))


@router.get(
    "/jobs", response_model=None,
    responses={200: {"model": JobPage, "description": "a page, newest first"},
               **errors(*AUTHENTICATED)},
)
async def list_jobs_route(
    request: Request,
    caller: CallerDep,
    state: StateDep,
    status: Annotated[StatusIn | None, Query(description="aliases accepted (deprecated)")]
    = None,
    queue_name: Annotated[QueryText | None, Query(alias="queueName", max_length=200)] = None,
    flow_id: Annotated[str | None, Query(alias="flowId", max_length=64)] = None,
    name: Annotated[QueryText | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    cursor: Annotated[str | None, Query(max_length=64,
                                        description="nextCursor of the previous page")] = None,
) -> Response:
    """Jobs of the caller's tenant (every tenant for an admin), newest first."""
    check_page_size(limit, state.settings.max_page_size)
    note_status_alias(request, state.settings, status)
    flt = JobFilter(tenant=caller.scope, status=status, queue_name=queue_name,
                    flow_id=flow_id, name=name)
    async with state.db.read() as conn:
        items, next_cursor = await list_jobs(conn, flt, limit=limit, cursor=cursor)
    return json_response({"items": [job_to_wire(j) for j in items], "nextCursor": next_cursor})


def to_update(body: JobPatch) -> JobUpdate:
    """The planner's view of a ``PATCH`` body."""
    phase = None
    if body.phase is not None:
        phase = PhaseUpdate(name=body.phase.name, status=body.phase.status,
                            progress=progress_of(body.phase.progress))
    return JobUpdate(
        status=body.status,
        step=body.step,
        progress=progress_of(body.progress),
        phase=phase,
        result=body.result if "result" in body.model_fields_set else UNSET,
        error=body.error.model_dump(exclude_none=True) if body.error is not None else None,
        stats=body.stats,
    )


@router.patch(
    "/jobs/{jobId}", response_model=None,
    responses={200: {"model": JobPublic, "description": "the job after the report; carries "
                     "cancelRequested and the phase statuses"},
               **errors(*AUTHENTICATED, 404, 409)},
)
async def patch_job(
    request: Request, job_id: JobId, body: JobPatch, caller: CallerDep, state: StateDep,
) -> Response:
    """A worker's report: status, step, progress, a phase, result, error, stats.

    A ``PATCH`` by the key that claimed the job (``POST /queues/{queueName}/claim``) while
    it runs is also its heartbeat: the lease is renewed for the term of the claim.
    """
    if body.status_alias is not None and body.status is not None:
        status_alias(request, state.settings, body.status_alias, body.status.value)
    upd = to_update(body)
    now = utcnow()
    async with state.db.write() as conn:
        job = await change_job(conn, job_id, lambda j: plan_update(j, upd, now),
                               tenant=caller.scope, actor=caller.actor, now=now)
        term = held_term(job.worker_id, caller.key)
        if term is not None and job.status is JobStatus.RUNNING:
            # the holder's report is its heartbeat (same transaction, row still locked)
            await renew_leases(conn, worker_id=job.worker_id or "", ids=[job.id],
                               lease_until=now + timedelta(seconds=term))
    return json_response(job_to_wire(job))


@router.get(
    "/jobs/{jobId}/history", response_model=None,
    responses={200: {"model": list[Transition], "description": "transitions, oldest first"},
               **errors(*AUTHENTICATED, 404)},
)
async def job_history(job_id: JobId, caller: CallerDep, state: StateDep) -> Response:
    """Every status transition of a job, from its creation on."""
    async with state.db.read() as conn:
        job = await get_job(conn, job_id, tenant=caller.scope)
        if job is None:
            raise not_found(job_id)
        events = await history(conn, job_id)
    return json_response([
        {"from": e.from_status, "to": e.to_status, "step": e.step, "at": iso(e.at),
         "attempt": e.attempt, "by": e.actor}
        for e in events
    ])
