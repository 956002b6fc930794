"""The one mapping from domain values to their JSON form on the wire (camelCase keys,
ISO 8601 UTC timestamps). The HTTP API, events, webhooks, the dashboard and the CLI all
read jobs and flows through these functions."""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from jobtrack.domain.flows import Flow, FlowProgress
from jobtrack.domain.records import Job, Phase, Progress

#: domain field -> wire key, in the order of the job shape in docs/reference/http-api.md
JOB_FIELDS: Final[Mapping[str, str]] = {
    "id": "jobId",
    "queue_name": "queueName",
    "name": "name",
    "status": "status",
    "step": "step",
    "data": "data",
    "result": "result",
    "error": "error",
    "stats": "stats",
    "progress": "progress",
    "phases": "phases",
    "flow_id": "flowId",
    "parent_job_id": "parentJobId",
    "attempt": "attempt",
    "max_attempts": "maxAttempts",
    "priority": "priority",
    "run_at": "runAt",
    "cancel_requested": "cancelRequested",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
    "started_at": "startedAt",
    "completed_at": "completedAt",
}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``; None stays None."""
    if value is None:
        return None
    tz = value.tzinfo
    if tz is not UTC:
        value = value.replace(tzinfo=UTC) if tz is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def number(value: float | None) -> float | None:
    """One number form on the wire: an integral value is an integer (``6``, never ``6.0``,
    whether it was reported as an int or read back from a float column), others floats."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def progress_to_wire(progress: Progress | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    return {"done": number(progress.done), "total": number(progress.total),
            "percentage": number(progress.percentage)}


def phase_to_wire(phase: Phase) -> dict[str, Any]:
    return {
        "name": phase.name,
        "status": phase.status.value,
        "progress": progress_to_wire(phase.progress),
        "startedAt": iso(phase.started_at),
        "completedAt": iso(phase.completed_at),
    }


def _phases_to_wire(phases: Iterable[Phase]) -> list[dict[str, Any]]:
    return [phase_to_wire(p) for p in phases]


def _status_to_wire(status: Any) -> Any:
    return status.value


def _converter(name: str) -> Any:
    """How one job field becomes JSON (None: as it is)."""
    if name == "phases":
        return _phases_to_wire
    if name == "progress":
        return progress_to_wire
    if name == "status":
        return _status_to_wire
    if name.endswith("_at"):  # every timestamp field, and only those
        return iso
    return None


#: (field, wire key, converter) for every wire field; decided once, not per job
_JOB_WIRE: Final = tuple((name, key, _converter(name)) for name, key in JOB_FIELDS.items())
_CONVERT: Final = {name: conv for name, _, conv in _JOB_WIRE}


def _value(job: Job, name: str) -> Any:
    value = getattr(job, name)
    conv = _CONVERT[name]
    return value if conv is None else conv(value)


def job_to_wire(job: Job) -> dict[str, Any]:
    """The job object of ``GET /jobs/{jobId}``."""
    fields = job.__dict__
    return {key: fields[name] if conv is None else conv(fields[name])
            for name, key, conv in _JOB_WIRE}


def job_delta(job: Job, changed: Iterable[str]) -> dict[str, Any]:
    """Event data for a job change: its identity and only the fields that changed."""
    data: dict[str, Any] = {"jobId": job.id, "queueName": job.queue_name, "name": job.name}
    if job.flow_id is not None:
        data["flowId"] = job.flow_id
    for name in changed:
        key = JOB_FIELDS.get(name)
        if key is not None:
            data[key] = _value(job, name)
    data["status"] = job.status.value
    data["updatedAt"] = iso(job.updated_at)
    return data


def flow_progress_to_wire(progress: FlowProgress) -> dict[str, Any]:
    return {
        "total": progress.total,
        "completed": progress.completed,
        "failed": progress.failed,
        "cancelled": progress.cancelled,
        "running": progress.running,
        "pending": progress.pending,
        "percentage": number(progress.percentage),
    }


def flow_to_wire(flow: Flow) -> dict[str, Any]:
    """The flow summary of ``GET /flows/{flowId}``."""
    return {
        "flowId": flow.id,
        "flowname": flow.flowname,
        "name": flow.name,
        "queueName": flow.queue_name,
        "status": flow.status.value,
        "progress": flow_progress_to_wire(flow.progress),
        "rootJobId": flow.root_job_id,
        "result": flow.result,
        "error": flow.error,
        "createdAt": iso(flow.created_at),
        "updatedAt": iso(flow.updated_at),
        "startedAt": iso(flow.started_at),
        "completedAt": iso(flow.completed_at),
    }
