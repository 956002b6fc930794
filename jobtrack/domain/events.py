"""Event types and which one announces a change (``docs/reference/http-api.md``, Live updates)."""

from collections.abc import Set
from enum import StrEnum
from typing import Final

from jobtrack.domain.status import FlowStatus, JobStatus


class EventType(StrEnum):
    """Every event type jobtrack emits."""

    JOB_CREATED = "job.created"
    #: data holds only the changed fields (the delta)
    JOB_UPDATED = "job.updated"
    JOB_PROGRESS = "job.progress"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    FLOW_CREATED = "flow.created"
    FLOW_UPDATED = "flow.updated"
    FLOW_COMPLETED = "flow.completed"
    FLOW_FAILED = "flow.failed"
    FLOW_CANCELLED = "flow.cancelled"


_JOB_TERMINAL: Final = {
    JobStatus.COMPLETED: EventType.JOB_COMPLETED,
    JobStatus.FAILED: EventType.JOB_FAILED,
    JobStatus.CANCELLED: EventType.JOB_CANCELLED,
}
_FLOW_TERMINAL: Final = {
    FlowStatus.COMPLETED: EventType.FLOW_COMPLETED,
    FlowStatus.FAILED: EventType.FLOW_FAILED,
    FlowStatus.CANCELLED: EventType.FLOW_CANCELLED,
}
#: fields whose change alone is progress, not an update
PROGRESS_FIELDS: Final = frozenset({"progress", "phases"})


def event_type_for(before: JobStatus, after: JobStatus, changed: Set[str]) -> EventType:
    """The event announcing a job change: terminal, progress-only, or a delta update."""
    if before is not after and after in _JOB_TERMINAL:
        return _JOB_TERMINAL[after]
    if changed and changed <= PROGRESS_FIELDS and before is after:
        return EventType.JOB_PROGRESS
    return EventType.JOB_UPDATED


def flow_event_type(before: FlowStatus, after: FlowStatus) -> EventType:
    """The event announcing a flow change."""
    if before is not after and after in _FLOW_TERMINAL:
        return _FLOW_TERMINAL[after]
    return EventType.FLOW_UPDATED


#: Webhook subscription kinds (docs/reference/http-api.md) and the event types each one receives.
WEBHOOK_KINDS: Final[dict[str, frozenset[EventType]]] = {
    "progress": frozenset({EventType.JOB_PROGRESS, EventType.FLOW_UPDATED}),
    "completed": frozenset({EventType.JOB_COMPLETED, EventType.FLOW_COMPLETED}),
    "failed": frozenset({EventType.JOB_FAILED, EventType.FLOW_FAILED}),
    "delta": frozenset({EventType.JOB_CREATED, EventType.JOB_UPDATED, EventType.FLOW_CREATED,
                        EventType.JOB_CANCELLED, EventType.FLOW_CANCELLED}),
    "all": frozenset(EventType),
}
