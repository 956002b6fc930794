"""A worker's report of one job, shared by ``PATCH /jobs/{jobId}`` and
``PUT /flows/{flowId}/jobs/{jobId}`` (which also checks the job is in its flow).

One transaction: the job is planned with :func:`jobtrack.domain.planner.plan_update` and
written; a report by the key that claimed the job while it runs is also its heartbeat.
"""

from datetime import timedelta

from fastapi import Request
from starlette.responses import Response

from jobtrack.api.auth import Caller
from jobtrack.api.flow_schemas import FlowJobReport
from jobtrack.api.params import held_term, progress_of, status_alias, utcnow
from jobtrack.api.responses import json_response
from jobtrack.api.schemas import JobPatch
from jobtrack.api.state import ApiState
from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import UNSET, Change, Job, JobUpdate, PhaseUpdate
from jobtrack.domain.status import JobStatus
from jobtrack.domain.wire import job_to_wire
from jobtrack.errors import NotFound
from jobtrack.store.jobs import change_job
from jobtrack.store.leases import renew_leases


def to_update(body: JobPatch | FlowJobReport) -> JobUpdate:
    """The planner's view of a report (a flow's report has no step, phase or stats)."""
    phase = step = stats = None
    if isinstance(body, JobPatch):
        step, stats = body.step, body.stats
        if body.phase is not None:
            phase = PhaseUpdate(name=body.phase.name, status=body.phase.status,
                                progress=progress_of(body.phase.progress))
    return JobUpdate(
        status=body.status,
        step=step,
        progress=progress_of(body.progress),
        phase=phase,
        result=body.result if "result" in body.model_fields_set else UNSET,
        error=body.error.model_dump(exclude_none=True) if body.error is not None else None,
        stats=stats,
    )


async def report_job(
    request: Request, job_id: str, body: JobPatch | FlowJobReport, caller: Caller,
    state: ApiState, *, flow_id: str | None = None,
) -> Response:
    """Apply the report to the job (of the flow ``flow_id`` when given, else a 404) and
    answer the job after it."""
    if body.status_alias is not None and body.status is not None:
        status_alias(request, state.settings, body.status_alias, body.status.value)
    upd = to_update(body)
    now = utcnow()

    def plan(job: Job) -> Change:
        if flow_id is not None and job.flow_id != flow_id:
            raise NotFound(f"job {job_id!r} not found in flow {flow_id!r}",
                           details={"flowId": flow_id, "jobId": job_id})
        return plan_update(job, upd, now)

    async with state.db.write() as conn:
        job = await change_job(conn, job_id, plan, tenant=caller.scope, actor=caller.actor,
                               now=now)
        term = held_term(job.worker_id, caller.key)
        if term is not None and job.status is JobStatus.RUNNING:
            # the holder's report is its heartbeat (same transaction, row still locked)
            await renew_leases(conn, worker_id=job.worker_id or "", ids=[job.id],
                               lease_until=now + timedelta(seconds=term))
    return json_response(job_to_wire(job))
