"""``/jobs``: create, read, list, report (``PATCH``) and the history of a job.

Thin: each route turns its request into a domain value, runs one store operation in one
transaction (or one read), and answers the wire form of :mod:`jobtrack.domain.wire`.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.params import (
    JobId,
    PageCursor,
    PageLimit,
    QueryText,
    StatusQuery,
    check_page_size,
    note_status_alias,
    utcnow,
)
from jobtrack.api.reports import report_job
from jobtrack.api.responses import AUTHENTICATED, errors, json_response
from jobtrack.api.schemas import JobCreate, JobCreated, JobPage, JobPatch, JobPublic, Transition
from jobtrack.domain.ids import new_id
from jobtrack.domain.spec import job_of, resolve
from jobtrack.domain.wire import iso, job_to_wire
from jobtrack.store.events import history
from jobtrack.store.jobs import JobFilter, get_job, list_jobs, not_found
from jobtrack.store.jobs import read_job as fetch_job
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
    job = await fetch_job(state.db, job_id, tenant=caller.scope)
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
    status: StatusQuery = None,
    queue_name: Annotated[QueryText | None, Query(alias="queueName", max_length=200)] = None,
    flow_id: Annotated[str | None, Query(alias="flowId", max_length=64)] = None,
    name: Annotated[QueryText | None, Query(max_length=200)] = None,
    step: Annotated[QueryText | None, Query(
        max_length=200, description="queued, delayed, waiting-children, paused (a running "
        "job whose current phase is paused), or a running job's step (a phase's name)")]
    = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Response:
    """Jobs of the caller's tenant (every tenant for an admin), newest first."""
    check_page_size(limit, state.settings.max_page_size)
    note_status_alias(request, state.settings, status)
    flt = JobFilter(tenant=caller.scope, status=status, queue_name=queue_name,
                    flow_id=flow_id, name=name, step=step, now=utcnow())
    async with state.db.read() as conn:
        items, next_cursor = await list_jobs(conn, flt, limit=limit, cursor=cursor)
    return json_response({"items": [job_to_wire(j) for j in items], "nextCursor": next_cursor})


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
    return await report_job(request, job_id, body, caller, state)


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
