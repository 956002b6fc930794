"""Jobs, phases and progress as immutable values, the requests that change them
(:class:`JobUpdate`, :class:`PhaseUpdate`) and what a plan decided (:class:`Change`).

The rules that move these values live in :mod:`jobtrack.domain.phases` and
:mod:`jobtrack.domain.planner`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from jobtrack.domain.events import EventType
from jobtrack.domain.status import TERMINAL, JobStatus, PhaseStatus, Step, percentage
from jobtrack.errors import ValidationFailed


class _Unset:
    """Marks a field a request did not mention (``None`` is a real value)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True, slots=True)
class Progress:
    """How far along: ``done`` of ``total`` (total unknown: None)."""

    done: float = 0
    total: float | None = None

    @property
    def percentage(self) -> float | None:
        if self.total is None:
            return None
        # from the floats themselves: int(2.3 * 100) is 229, which made 2.3 of 3 76.33 %
        return min(100.0, percentage(self.done, self.total))


@dataclass(frozen=True, slots=True)
class Phase:
    """One declared phase of a job, in order."""

    name: str
    status: PhaseStatus = PhaseStatus.NOT_STARTED
    done: float = 0
    total: float | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def progress(self) -> Progress:
        return Progress(self.done, self.total)


# not slotted, unlike the small values here: a job is copied on every change (domain/_copy.py),
# and copying its __dict__ is one C call where slots take one call per field
@dataclass(frozen=True)
class Job:
    """A job: its queue entry and its status are the same record."""

    id: str
    tenant: str
    queue_name: str
    name: str
    status: JobStatus
    step: str
    created_at: datetime
    updated_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    result: Any = None
    error: Mapping[str, Any] | None = None
    stats: Mapping[str, Any] | None = None
    progress: Progress | None = None
    phases: tuple[Phase, ...] = ()
    flow_id: str | None = None
    parent_job_id: str | None = None
    attempt: int = 1
    max_attempts: int = 1
    priority: int = 0
    run_at: datetime | None = None
    cancel_requested: bool = False
    started_at: datetime | None = None
    completed_at: datetime | None = None
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    idempotency_key: str | None = None
    children_left: int = 0
    #: moved by one with every change (optimistic concurrency; never in an event)
    version: int = 1
    #: the job's own retry policy ``{base, factor, cap, jitter}`` seconds (BullMQ's
    #: ``backoff``); None: the policy of the task that runs it
    retry: Mapping[str, float] | None = None

    @property
    def attempts_left(self) -> bool:
        return self.attempt < self.max_attempts

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def phase_index(self, name: str) -> int:
        for i, phase in enumerate(self.phases):
            if phase.name == name:
                return i
        declared = ", ".join(p.name for p in self.phases) or "none"
        raise ValidationFailed(
            f"unknown phase {name!r}; this job's phases: {declared}",
            details={"field": "phase.name", "value": name,
                     "accepted": [p.name for p in self.phases]},
        )

    @property
    def current_phase(self) -> Phase | None:
        for phase in self.phases:
            if phase.status in (PhaseStatus.RUNNING, PhaseStatus.PAUSED):
                return phase
        return None


@dataclass(frozen=True, slots=True)
class PhaseUpdate:
    """A change to one phase: its status, its progress, or both."""

    name: str
    status: PhaseStatus | None = None
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A plain update (``PATCH /jobs/{id}``, a worker's report). Unset fields stay."""

    status: JobStatus | None = None
    step: str | None = None
    progress: Progress | None = None
    phase: PhaseUpdate | None = None
    result: Any = UNSET
    error: Mapping[str, Any] | None = None
    stats: Mapping[str, Any] | None = None
    #: when a reported failure becomes an automatic retry, the retry may run then
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What a plan decided: the job before and after, and the event announcing it."""

    before: Job
    after: Job
    changed: frozenset[str]
    event_type: EventType | None

    @property
    def transition(self) -> tuple[JobStatus, JobStatus] | None:
        if self.before.status is self.after.status and not self.is_retry:
            return None
        return (self.before.status, self.after.status)

    @property
    def is_retry(self) -> bool:
        return self.after.attempt != self.before.attempt

    @property
    def is_noop(self) -> bool:
        return not self.changed


def pending_step(run_at: datetime | None, now: datetime) -> Step:
    """``delayed`` while ``run_at`` is in the future, else ``queued``."""
    return Step.DELAYED if run_at is not None and run_at > now else Step.QUEUED



def new_job(
    *,
    id: str,
    tenant: str,
    queue_name: str,
    name: str,
    now: datetime,
    data: Mapping[str, Any] | None = None,
    phases: Sequence[str] = (),
    priority: int = 0,
    run_at: datetime | None = None,
    max_attempts: int = 1,
    idempotency_key: str | None = None,
    flow_id: str | None = None,
    parent_job_id: str | None = None,
    children: int = 0,
    retry: Mapping[str, float] | None = None,
) -> Job:
    """A new pending job, its step saying why it waits."""
    if len(set(phases)) != len(phases):
        raise ValidationFailed("phase names must be unique", details={"field": "phases"})
    step = Step.WAITING_CHILDREN if children else pending_step(run_at, now)
    return Job(
        id=id,
        tenant=tenant,
        queue_name=queue_name,
        name=name,
        status=JobStatus.PENDING,
        step=step,
        created_at=now,
        updated_at=now,
        data=dict(data or {}),
        phases=tuple(Phase(name=p) for p in phases),
        priority=priority,
        run_at=run_at if run_at is not None and run_at > now else now,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        flow_id=flow_id,
        parent_job_id=parent_job_id,
        children_left=children,
        retry=None if retry is None else dict(retry),
    )
