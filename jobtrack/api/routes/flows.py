"""``/flows``: create a tree of jobs across queues, read its O(1) summary (and, on
request, its job tree), list flows, let an external system report one of its jobs, and
cancel it whole.

Thin like every route: one store operation in one transaction (or one read), answered in
the wire form of :mod:`jobtrack.domain.wire`. Another tenant's flow is a 404.
"""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.flow_schemas import (
    FlowCreate,
    FlowCreated,
    FlowDetail,
    FlowJobReport,
    FlowPage,
    FlowPublic,
    Include,
)
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
from jobtrack.api.schemas import JobPublic
from jobtrack.domain.records import Job
from jobtrack.domain.spec import flow_names, resolve_tree
from jobtrack.domain.status import FlowStatus
from jobtrack.domain.wire import flow_to_wire, job_to_wire
from jobtrack.store import flows as store
from jobtrack.store.jobs import flow_step_counts
from jobtrack.store.registry import resolver

router = APIRouter(tags=["flows"])

FlowId = Annotated[str, Path(alias="flowId", min_length=1, max_length=64,
                             description="the flow's id (a UUID)")]


@router.post(
    "/flows", status_code=201, response_model=None,
    responses={201: {"model": FlowCreated, "description": "created, every job pending"},
               **errors(*AUTHENTICATED)},
)
async def create_flow(body: FlowCreate, caller: CallerDep, state: StateDep) -> Response:
    """Create a flow: the root job and its tree of children, in one transaction.

    Children run first; a parent waits in step ``waiting-children`` until all its
    children completed. Every job gets ``flowId`` in its own field and in
    ``data.flowId``. A tree deeper than ``flow_max_depth`` or larger than
    ``flow_max_jobs`` is refused (422 naming where), with nothing stored. Each job is
    resolved against its task's declaration as in ``POST /jobs`` (a refusal names its
    path, e.g. ``children[0].data.documentId``).
    """
    now = utcnow()
    settings = state.settings
    tree = body.to_submission()
    lookup = await resolver(state.db, flow_names(tree), cache=state.declarations)
    node = resolve_tree(tree, lookup, now=now, default_max_attempts=settings.default_max_attempts)
    async with state.db.write() as conn:
        flow, _ = await store.create_flow(
            conn, node, tenant=caller.tenant, flowname=body.flowname, now=now,
            actor=caller.actor, max_depth=settings.flow_max_depth,
            max_jobs=settings.flow_max_jobs, default_max_attempts=settings.default_max_attempts,
        )
    return json_response({"flowId": flow.id, "flow": flow_to_wire(flow)}, 201)


def job_tree(jobs: list[Job], root_id: str) -> dict[str, Any] | None:
    """The flow's jobs nested under their parents (``jobs`` lists parents first)."""
    nodes: dict[str, dict[str, Any]] = {}
    for job in jobs:
        node = nodes[job.id] = {**job_to_wire(job), "children": []}
        if job.parent_job_id in nodes:
            nodes[job.parent_job_id]["children"].append(node)
    return nodes.get(root_id)


@router.get(
    "/flows/{flowId}", response_model=None,
    responses={200: {"model": FlowDetail, "description": "the summary; with include=jobs, "
                     "also the job tree"},
               **errors(*AUTHENTICATED, 404)},
)
async def read_flow(
    flow_id: FlowId, caller: CallerDep, state: StateDep,
    include: Annotated[Include | None, Query(description="`jobs`: add the job tree")] = None,
) -> Response:
    """A flow's summary: status and exact progress from one row, whatever its size."""
    async with state.db.read() as conn:
        flow = await store.get_flow(conn, flow_id, tenant=caller.scope)
        if flow is None:
            raise store.not_found(flow_id)
        wire = flow_to_wire(flow)
        now = utcnow()
        wire["progress"]["steps"] = await flow_step_counts(
            conn, flow.id, now=now,
            stuck_before=now - timedelta(seconds=state.settings.stuck_after_seconds))
        if include == "jobs":
            wire["jobs"] = job_tree(await store.flow_job_list(conn, flow.id), flow.root_job_id)
    return json_response(wire)


@router.get(
    "/flows", response_model=None,
    responses={200: {"model": FlowPage, "description": "a page, newest first"},
               **errors(*AUTHENTICATED)},
)
async def list_flows(
    request: Request,
    caller: CallerDep,
    state: StateDep,
    flowname: Annotated[QueryText | None, Query(max_length=200)] = None,
    status: StatusQuery = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Response:
    """Flows of the caller's tenant (every tenant for an admin), newest first."""
    check_page_size(limit, state.settings.max_page_size)
    note_status_alias(request, state.settings, status)
    async with state.db.read() as conn:
        items, next_cursor = await store.list_flows(
            conn, tenant=caller.scope, limit=limit, cursor=cursor, flowname=flowname,
            status=None if status is None else FlowStatus(status.value),
        )
    return json_response({"items": [flow_to_wire(f) for f in items],
                          "nextCursor": next_cursor})


@router.put(
    "/flows/{flowId}/jobs/{jobId}", response_model=None,
    responses={200: {"model": JobPublic, "description": "the job after the report"},
               **errors(*AUTHENTICATED, 404, 409)},
)
async def report_flow_job(
    request: Request, flow_id: FlowId, job_id: JobId, body: FlowJobReport,
    caller: CallerDep, state: StateDep,
) -> Response:
    """A worker of another system reports a job of the flow: its status (aliases
    accepted), result, error, progress. 404 when the job is not in this flow; 409 for a
    move the status contract forbids (e.g. starting a parent whose children have not
    all completed, or changing a finished job)."""
    return await report_job(request, job_id, body, caller, state, flow_id=flow_id)


@router.post(
    "/flows/{flowId}/cancel", response_model=None,
    responses={200: {"model": FlowPublic, "description": "the flow, cancelled"},
               **errors(*AUTHENTICATED, 404)},
)
async def cancel_flow(flow_id: FlowId, caller: CallerDep, state: StateDep) -> Response:
    """Cancel every job of the flow not yet finished: pending ones now, running ones
    through ``cancelRequested`` (cancelled when their worker reaches a checkpoint or
    reports). The flow is ``cancelled`` unless a job already failed or all completed."""
    now = utcnow()
    async with state.db.write() as conn:
        flow = await store.cancel_flow(conn, flow_id, tenant=caller.scope, actor=caller.actor,
                                       now=now)
    return json_response(flow_to_wire(flow))
