"""Rows to domain values and back: the only place that knows both shapes."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, select

from jobtrack.domain.flows import Flow, FlowProgress
from jobtrack.domain.records import Job, Phase, Progress
from jobtrack.domain.status import FlowStatus, JobStatus, PhaseStatus
from jobtrack.store.tables import job_phases, jobs

_STATUS = {s.value: s for s in JobStatus}
_PHASE_STATUS = {s.value: s for s in PhaseStatus}
_FLOW_STATUS = {s.value: s for s in FlowStatus}

#: phase columns, labelled so they can ride along a job row in one query
PHASE_COLUMNS = (
    job_phases.c.position.label("p_position"),
    job_phases.c.name.label("p_name"),
    job_phases.c.status.label("p_status"),
    job_phases.c.done.label("p_done"),
    job_phases.c.total.label("p_total"),
    job_phases.c.started_at.label("p_started_at"),
    job_phases.c.completed_at.label("p_completed_at"),
)


def select_jobs_with_phases() -> Select[Any]:
    """Jobs left-joined to their phases: one round trip for a job and all its phases."""
    return (
        select(jobs, *PHASE_COLUMNS)
        .select_from(jobs.outerjoin(job_phases, job_phases.c.job_id == jobs.c.id))
    )


def phase_from_row(row: Mapping[Any, Any], prefix: str = "p_") -> Phase:
    return Phase(
        name=row[f"{prefix}name"],
        status=_PHASE_STATUS[row[f"{prefix}status"]],
        done=row[f"{prefix}done"],
        total=row[f"{prefix}total"],
        started_at=row[f"{prefix}started_at"],
        completed_at=row[f"{prefix}completed_at"],
    )


def job_from_row(row: Mapping[Any, Any], phases: Sequence[Phase] = ()) -> Job:
    done, total = row["progress_done"], row["progress_total"]
    return Job(
        id=row["id"],
        tenant=row["tenant"],
        queue_name=row["queue_name"],
        name=row["name"],
        status=_STATUS[row["status"]],
        step=row["step"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        data=row["data"],
        result=row["result"],
        error=row["error"],
        stats=row["stats"],
        progress=None if done is None else Progress(done, total),
        phases=tuple(phases),
        flow_id=row["flow_id"],
        parent_job_id=row["parent_job_id"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        priority=row["priority"],
        run_at=row["run_at"],
        cancel_requested=row["cancel_requested"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        worker_id=row["worker_id"],
        lease_expires_at=row["lease_expires_at"],
        idempotency_key=row["idempotency_key"],
        retry=row.get("retry"),
        children_left=row["children_left"],
        version=row["version"],
    )


def jobs_from_joined_rows(rows: Iterable[Mapping[str, Any]]) -> list[Job]:
    """Fold job-with-phase rows (ordered by job, then position) into jobs."""
    out: list[Job] = []
    current: Mapping[str, Any] | None = None
    phases: list[Phase] = []
    for row in rows:
        if current is not None and row["id"] != current["id"]:
            out.append(job_from_row(current, phases))
            phases = []
        current = row
        if row["p_name"] is not None:
            phases.append(phase_from_row(row))
    if current is not None:
        out.append(job_from_row(current, phases))
    return out


def job_insert_values(job: Job) -> dict[str, Any]:
    """Column values of a new job row."""
    return {
        **job_update_values(job),
        "id": job.id,
        "tenant": job.tenant,
        "queue_name": job.queue_name,
        "name": job.name,
        "data": job.data,
        "phase_count": len(job.phases),
        "flow_id": job.flow_id,
        "parent_job_id": job.parent_job_id,
        "children_left": job.children_left,
        "priority": job.priority,
        "idempotency_key": job.idempotency_key,
        "created_at": job.created_at,
        "retry": job.retry,
    }


def job_update_values(job: Job) -> dict[str, Any]:
    """Column values a change of state may write (never ``children_left``: it is counted
    down atomically by completing children)."""
    return {
        "status": job.status.value,
        "step": job.step,
        "result": job.result,
        "error": job.error,
        "stats": job.stats,
        "progress_done": None if job.progress is None else job.progress.done,
        "progress_total": None if job.progress is None else job.progress.total,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,  # a manual retry of an exhausted job raises it
        "run_at": job.run_at,
        "cancel_requested": job.cancel_requested,
        "worker_id": job.worker_id,
        "lease_expires_at": job.lease_expires_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "version": job.version,
    }


def phase_values(job_id: str, position: int, phase: Phase) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "position": position,
        "name": phase.name,
        "status": phase.status.value,
        "done": phase.done,
        "total": phase.total,
        "started_at": phase.started_at,
        "completed_at": phase.completed_at,
    }


def flow_from_row(row: Mapping[Any, Any]) -> Flow:
    return Flow(
        id=row["id"],
        tenant=row["tenant"],
        flowname=row["flowname"],
        name=row["name"],
        queue_name=row["queue_name"],
        root_job_id=row["root_job_id"],
        status=_FLOW_STATUS[row["status"]],
        progress=FlowProgress(
            total=row["total"],
            pending=row["pending"],
            running=row["running"],
            completed=row["completed"],
            failed=row["failed"],
            cancelled=row["cancelled"],
        ),
        cancelled=row["cancel_requested"],
        result=row["result"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )


def flow_values(flow: Flow) -> dict[str, Any]:
    """Column values of a new flow row."""
    return {
        "id": flow.id,
        "tenant": flow.tenant,
        "flowname": flow.flowname,
        "name": flow.name,
        "queue_name": flow.queue_name,
        "root_job_id": flow.root_job_id,
        "total": flow.progress.total,
        "created_at": flow.created_at,
        **flow_update_values(flow),
    }


def flow_update_values(flow: Flow) -> dict[str, Any]:
    """Column values its jobs' transitions may move (never what the flow was created
    with: its tree, names, total)."""
    p = flow.progress
    return {
        "status": flow.status.value,
        "pending": p.pending,
        "running": p.running,
        "completed": p.completed,
        "failed": p.failed,
        "cancelled": p.cancelled,
        "cancel_requested": flow.cancelled,
        "result": flow.result,
        "error": flow.error,
        "updated_at": flow.updated_at,
        "started_at": flow.started_at,
        "completed_at": flow.completed_at,
    }
