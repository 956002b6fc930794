"""Actions on one job: cancel, pause/resume (the current phase or a named one), retry.

Each locks the job, plans through :mod:`jobtrack.domain.planner` and answers the job.
"""

from collections.abc import Callable

from fastapi import APIRouter
from starlette.responses import Response

from jobtrack.api.auth import Caller
from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.params import JobId, PhaseName, utcnow
from jobtrack.api.responses import AUTHENTICATED, errors, json_response
from jobtrack.api.schemas import JobPublic
from jobtrack.api.state import ApiState
from jobtrack.domain.planner import plan_cancel, plan_pause, plan_retry
from jobtrack.domain.records import Change, Job
from jobtrack.domain.wire import job_to_wire
from jobtrack.store.jobs import change_job

router = APIRouter(tags=["jobs"])

_ANSWERS = {200: {"model": JobPublic, "description": "the job after the action"},
            **errors(*AUTHENTICATED, 404, 409)}


async def _act(job_id: str, caller: Caller, state: ApiState,
               plan: Callable[[Job], Change]) -> Response:
    async with state.db.write() as conn:
        job = await change_job(conn, job_id, plan, tenant=caller.scope, actor=caller.actor,
                               now=utcnow())
    return json_response(job_to_wire(job))


@router.post("/jobs/{jobId}/cancel", response_model=None, responses=_ANSWERS)
async def cancel_job(job_id: JobId, caller: CallerDep, state: StateDep) -> Response:
    """Cancel: a pending job now; a running job gets ``cancelRequested`` and is cancelled
    when its worker reaches a checkpoint or reports. 409 for a finished job."""
    now = utcnow()
    return await _act(job_id, caller, state, lambda job: plan_cancel(job, now))


@router.post("/jobs/{jobId}/pause", response_model=None, responses=_ANSWERS)
async def pause_job(job_id: JobId, caller: CallerDep, state: StateDep) -> Response:
    """Pause the current phase of a running job (its worker waits at its next checkpoint)."""
    now = utcnow()
    return await _act(job_id, caller, state, lambda job: plan_pause(job, now))


@router.post("/jobs/{jobId}/resume", response_model=None, responses=_ANSWERS)
async def resume_job(job_id: JobId, caller: CallerDep, state: StateDep) -> Response:
    """Resume the paused phase of a running job."""
    now = utcnow()
    return await _act(job_id, caller, state, lambda job: plan_pause(job, now, resume=True))


@router.post("/jobs/{jobId}/phases/{phase}/pause", response_model=None, responses=_ANSWERS)
async def pause_phase(job_id: JobId, phase: PhaseName, caller: CallerDep,
                      state: StateDep) -> Response:
    """Pause one named phase of a running job."""
    now = utcnow()
    return await _act(job_id, caller, state, lambda job: plan_pause(job, now, phase))


@router.post("/jobs/{jobId}/phases/{phase}/resume", response_model=None, responses=_ANSWERS)
async def resume_phase(job_id: JobId, phase: PhaseName, caller: CallerDep,
                       state: StateDep) -> Response:
    """Resume one named, paused phase of a running job."""
    now = utcnow()
    return await _act(job_id, caller, state,
                      lambda job: plan_pause(job, now, phase, resume=True))


@router.post("/jobs/{jobId}/retry", response_model=None, responses=_ANSWERS)
async def retry_job(job_id: JobId, caller: CallerDep, state: StateDep) -> Response:
    """Run a failed or cancelled job again, as a new attempt. 409 from any other status."""
    now = utcnow()
    return await _act(job_id, caller, state, lambda job: plan_retry(job, now))
