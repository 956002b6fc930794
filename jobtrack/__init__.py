"""jobtrack: a job queue and status service where every job and flow has one trustworthy
status. The public names below are imported on first use, so ``import jobtrack`` stays
cheap (no SQLAlchemy, no FastAPI) until one is touched."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobtrack.domain.records import Job, Phase, Progress
    from jobtrack.domain.retry import RetryPolicy
    from jobtrack.domain.status import FlowStatus, JobStatus, PhaseStatus, Step
    from jobtrack.errors import JobtrackError
    from jobtrack.queue.app import App
    from jobtrack.queue.context import JobCancelled, JobContext, SyncJobContext
    from jobtrack.queue.worker import Worker
    from jobtrack.settings import Settings

__all__ = [
    "App",
    "FlowStatus",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobStatus",
    "JobtrackError",
    "Phase",
    "PhaseStatus",
    "Progress",
    "RetryPolicy",
    "Settings",
    "Step",
    "SyncJobContext",
    "Worker",
]

_WHERE = {
    "App": "jobtrack.queue.app",
    "FlowStatus": "jobtrack.domain.status",
    "Job": "jobtrack.domain.records",
    "JobCancelled": "jobtrack.queue.context",
    "JobContext": "jobtrack.queue.context",
    "JobStatus": "jobtrack.domain.status",
    "JobtrackError": "jobtrack.errors",
    "Phase": "jobtrack.domain.records",
    "PhaseStatus": "jobtrack.domain.status",
    "Progress": "jobtrack.domain.records",
    "RetryPolicy": "jobtrack.domain.retry",
    "Settings": "jobtrack.settings",
    "Step": "jobtrack.domain.status",
    "SyncJobContext": "jobtrack.queue.context",
    "Worker": "jobtrack.queue.worker",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'jobtrack' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
