"""Jobs, phases and progress as immutable values, and the pure planner that turns a
requested change into the next state of a job.

Every writer (HTTP API, our worker, an external worker, the stall reaper, flow cascades)
plans through the functions here, so one rule set decides every status a job can have.
The store only persists what a plan says, in the same transaction as its event.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

from jobtrack.domain.events import EventType, event_type_for
from jobtrack.domain.status import (
    TERMINAL,
    Action,
    JobStatus,
    PhaseStatus,
    Step,
    allowed_targets,
    check_phase_transition,
    check_transition,
    job_status_from_phases,
    percentage,
)
from jobtrack.errors import Conflict, InvalidTransition, ValidationFailed

_T = TypeVar("_T")
_set = object.__setattr__


def replace(obj: _T, /, **changes: Any) -> _T:
    """``dataclasses.replace`` for the frozen values of this module, without running
    ``__init__`` again: the planner copies a job several times per change, and this is the
    hot path of every worker (an unknown field name still raises)."""
    cls: Any = type(obj)
    new: _T = object.__new__(cls)
    values = getattr(obj, "__dict__", None)
    if values is not None:  # Job: two dict copies in C
        if not changes.keys() <= values.keys():
            raise TypeError(f"{cls.__name__} has no field {sorted(changes.keys() - values.keys())}")
        fields = new.__dict__
        fields.update(values)
        fields.update(changes)
        return new
    for name in cls.__slots__:
        _set(new, name, getattr(obj, name))
    for name, value in changes.items():
        _set(new, name, value)
    return new


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


# not slotted, unlike the small values here: a job is copied on every change, and copying
# its __dict__ is one C call where slots take one call per field
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


# Fields every change of state touches; not part of an event's delta.
_BOOKKEEPING: Final = frozenset({"updated_at", "worker_id", "lease_expires_at", "version"})


def progress_from_phases(phases: Sequence[Phase]) -> Progress | None:
    """How far a phased job is, from its phases; None before any phase started.

    Weighted by the phases' totals when every total is known (a completed phase counts
    its whole total); otherwise by count: a completed phase counts 1, any other its
    ``done / total`` when its total is known, else 0, out of the number of phases.
    """
    started, weighted = False, True
    total: float = 0
    done: float = 0
    counted = 0.0
    for p in phases:  # one pass: this runs on every change of a phased job
        status, size = p.status, p.total
        if status is not PhaseStatus.NOT_STARTED:
            started = True
        if size is None or size <= 0:
            weighted = False
            if status is PhaseStatus.COMPLETED:
                counted += 1.0
            continue
        total += size
        part = size if status is PhaseStatus.COMPLETED or p.done > size else p.done
        done += part
        counted += part / size
    if not started:
        return None
    if weighted:
        return Progress(done, total)
    return Progress(round(counted, 6), len(phases))


def _diff(before: Job, after: Job, now: datetime) -> Change:
    if after.phases and after.phases is not before.phases \
            and after.progress is before.progress:
        # a phased job's progress follows its phases once one started; a progress reported
        # for the job itself stands until its phases next move
        derived = progress_from_phases(after.phases)
        if derived is not None and derived != after.progress:
            after = replace(after, progress=derived)
    old = before.__dict__
    # most fields of a planned job are the very objects of the job it was copied from:
    # "is" settles them without calling __eq__ (this is on every worker's hot path)
    changed = frozenset(
        name for name, new in after.__dict__.items()
        if new is not old[name] and new != old[name] and name not in _BOOKKEEPING
    )
    lease_changed = (before.worker_id, before.lease_expires_at) != (
        after.worker_id,
        after.lease_expires_at,
    )
    if not changed and not lease_changed:
        return Change(before, before, frozenset(), None)
    after = replace(after, updated_at=now, version=before.version + 1)
    kind = event_type_for(before.status, after.status, changed) if changed else None
    return Change(before, after, changed, kind)


# --- phases ------------------------------------------------------------------------


def _enter(phases: Sequence[Phase], index: int, now: datetime) -> list[Phase]:
    """Start phase ``index``; phases before it count as done (phases are ordered)."""
    out = list(phases)
    for i in range(index):
        if out[i].status in (PhaseStatus.NOT_STARTED, PhaseStatus.RUNNING, PhaseStatus.PAUSED):
            out[i] = replace(out[i], status=PhaseStatus.COMPLETED, completed_at=now,
                             started_at=out[i].started_at or now)
    if out[index].status is PhaseStatus.NOT_STARTED:
        out[index] = replace(out[index], status=PhaseStatus.RUNNING, started_at=now)
    return out


def _start_next(phases: Sequence[Phase], now: datetime) -> list[Phase]:
    """Keep a running job's phases honest: if none is running or paused, start the next."""
    out = list(phases)
    if any(p.status in (PhaseStatus.RUNNING, PhaseStatus.PAUSED) for p in out):
        return out
    for i, phase in enumerate(out):
        if phase.status is PhaseStatus.NOT_STARTED:
            return _enter(out, i, now)
    return out


def _settle(phases: Sequence[Phase], status: JobStatus, now: datetime) -> list[Phase]:
    """Phases of a job that has just become ``status``."""
    out = []
    for p in phases:
        if status is JobStatus.COMPLETED and p.status is not PhaseStatus.COMPLETED:
            p = replace(p, status=PhaseStatus.COMPLETED, completed_at=now,
                        started_at=p.started_at or now,
                        done=p.total if p.total is not None else p.done)
        elif status is JobStatus.FAILED and p.status in (PhaseStatus.RUNNING, PhaseStatus.PAUSED):
            p = replace(p, status=PhaseStatus.FAILED, completed_at=now)
        elif status is JobStatus.CANCELLED and p.status in (
            PhaseStatus.RUNNING, PhaseStatus.PAUSED
        ):
            p = replace(p, status=PhaseStatus.CANCELLED, completed_at=now)
        out.append(p)
    return out


def _reset(phases: Sequence[Phase]) -> tuple[Phase, ...]:
    return tuple(Phase(name=p.name) for p in phases)


def _running_step(phases: Sequence[Phase], fallback: str) -> str:
    for p in phases:
        if p.status in (PhaseStatus.RUNNING, PhaseStatus.PAUSED):
            return p.name
    return fallback


def pending_step(run_at: datetime | None, now: datetime) -> Step:
    """``delayed`` while ``run_at`` is in the future, else ``queued``."""
    return Step.DELAYED if run_at is not None and run_at > now else Step.QUEUED


# --- plans -------------------------------------------------------------------------


def _to_running(job: Job, now: datetime, error: Mapping[str, Any] | None = None) -> Job:
    """An attempt starts: with no error but the one it reports (an earlier attempt's
    error stays on the job while the retry waits, to say why, and ends here)."""
    phases = _start_next(job.phases, now) if job.phases else []
    return replace(
        job,
        status=JobStatus.RUNNING,
        phases=tuple(phases),
        step=_running_step(phases, Step.RUNNING),
        error=error,
        started_at=now,
        completed_at=None,
    )


def _to_retry(job: Job, now: datetime, run_at: datetime | None) -> Job:
    return replace(
        job,
        status=JobStatus.PENDING,
        attempt=job.attempt + 1,
        # a flow parent retried before all its children completed waits for them again
        step=Step.WAITING_CHILDREN if job.children_left > 0 else pending_step(run_at, now),
        run_at=run_at or now,
        phases=_reset(job.phases),
        progress=None,
        completed_at=None,
        worker_id=None,
        lease_expires_at=None,
    )


def _to_terminal(job: Job, status: JobStatus, now: datetime, *, stale_error: bool = False) -> Job:
    """Finish ``job``. A completed job carries no error; ``stale_error``: the error it
    carries is an earlier attempt's (a pending retry), which is not this outcome's."""
    return replace(
        job,
        status=status,
        error=None if status is JobStatus.COMPLETED or stale_error else job.error,
        phases=tuple(_settle(job.phases, status, now)),
        completed_at=now,
        worker_id=None,
        lease_expires_at=None,
    )


def _check_children_done(job: Job, target: JobStatus) -> None:
    """A flow parent may start only once every child completed."""
    if job.status is JobStatus.PENDING and target is JobStatus.RUNNING and job.children_left > 0:
        raise InvalidTransition(
            current=job.status.value,
            target=target.value,
            allowed=[JobStatus.CANCELLED.value, JobStatus.FAILED.value],
            message=f"job is waiting for {job.children_left} child job(s) of its flow to "
            "complete; it cannot start before they do",
        )


def plan_claim(job: Job, now: datetime, *, worker_id: str, lease_until: datetime) -> Change:
    """A worker (ours, or one pulling over HTTP) takes a pending job."""
    if job.status is not JobStatus.PENDING:
        # running -> running passes check_transition, but would steal another worker's lease
        raise InvalidTransition(
            current=job.status.value,
            target=JobStatus.RUNNING.value,
            allowed=sorted(s.value for s in allowed_targets(job.status)),
            message=f"only a pending job can be claimed; this job is {job.status.value}",
        )
    check_transition(job.status, JobStatus.RUNNING)
    _check_children_done(job, JobStatus.RUNNING)
    after = replace(_to_running(job, now), worker_id=worker_id, lease_expires_at=lease_until)
    return _diff(job, after, now)


def plan_update(job: Job, upd: JobUpdate, now: datetime) -> Change:
    """Apply a plain update: status, step, progress, a phase, result, error, stats."""
    if job.is_terminal:
        raise InvalidTransition(
            current=job.status.value,
            target=(upd.status or job.status).value,
            allowed=[],
            message=f"job is {job.status.value}: a finished job is never changed by an "
            "update (use POST /jobs/{jobId}/retry to run it again)",
        )
    after = job
    target = upd.status
    if upd.phase is not None:
        phases, derived = _apply_phase_update(job, upd.phase, now)
        target = target or derived
        after = replace(after, phases=tuple(phases))
    if upd.step is not None:
        after, entered = _apply_step(job, after, upd.step, now)
        if job.phases and upd.status is None:
            # entering a phase may change what an earlier phase update derived
            target = entered
    after = _apply_fields(after, upd)
    target = _resolve_target(job, target or job.status)
    check_transition(job.status, target, attempts_left=job.attempts_left)
    _check_children_done(job, target)

    if target is job.status:
        if target is JobStatus.RUNNING and after.phases:
            after = replace(after, step=_running_step(after.phases, after.step))
    elif target is JobStatus.RUNNING:
        after = _to_running(after, now, after.error if upd.error is not None else None)
        if upd.step is not None and not job.phases:
            after = replace(after, step=upd.step)
    elif target is JobStatus.PENDING:
        after = _to_retry(after, now, upd.retry_at)
    else:
        after = _to_terminal(after, target, now,
                             stale_error=job.status is JobStatus.PENDING and upd.error is None)
    _check_agrees_with_phases(after)
    return _diff(job, after, now)


def _apply_phase_update(
    job: Job, pu: PhaseUpdate, now: datetime
) -> tuple[list[Phase], JobStatus | None]:
    """One phase's new status or progress; returns the phases and the job status they imply."""
    phases = list(job.phases)
    idx = job.phase_index(pu.name)
    current = phases[idx]
    new_status = pu.status
    if new_status is not None and new_status is not current.status:
        check_phase_transition(current.name, current.status, new_status)
        if new_status is PhaseStatus.RUNNING and current.status is PhaseStatus.NOT_STARTED:
            phases = _enter(phases, idx, now)
        elif new_status in (PhaseStatus.COMPLETED, PhaseStatus.FAILED):
            phases[idx] = replace(current, status=new_status, completed_at=now,
                                  started_at=current.started_at or now)
        else:
            phases[idx] = replace(current, status=new_status)
    elif current.status is PhaseStatus.NOT_STARTED and pu.progress is not None:
        # progress on a phase not yet started means the worker is in it now
        phases = _enter(phases, idx, now)
    if pu.progress is not None:
        phases[idx] = replace(phases[idx], done=pu.progress.done, total=pu.progress.total)
    derived = job_status_from_phases((p.status for p in phases),
                                     attempts_left=job.attempts_left)
    if derived is JobStatus.RUNNING or (
        derived is JobStatus.PENDING and job.status is JobStatus.RUNNING
        and PhaseStatus.FAILED not in (p.status for p in phases)
    ):
        # between two phases of a running job: the next one starts now
        phases = _start_next(phases, now)
        derived = job_status_from_phases((p.status for p in phases),
                                         attempts_left=job.attempts_left)
    if PhaseStatus.FAILED in (p.status for p in phases):
        derived = JobStatus.FAILED
    return phases, derived


def _apply_step(job: Job, after: Job, step: str, now: datetime) -> tuple[Job, JobStatus | None]:
    """A step names a phase to enter on a phased job, or is free text on a job without."""
    if not job.phases:
        return replace(after, step=step), None
    phases = _enter(list(after.phases), job.phase_index(step), now)
    return replace(after, phases=tuple(phases)), job_status_from_phases(
        p.status for p in phases
    )


def _apply_fields(after: Job, upd: JobUpdate) -> Job:
    """The plain fields an update may carry."""
    if upd.progress is not None:
        after = replace(after, progress=upd.progress)
    if upd.result is not UNSET:
        after = replace(after, result=upd.result)
    if upd.error is not None:
        after = replace(after, error=dict(upd.error))
    if upd.stats is not None:
        after = replace(after, stats=dict(upd.stats))
    return after


def _resolve_target(job: Job, target: JobStatus) -> JobStatus:
    """What a requested status means for a running job with attempts left or a cancel pending."""
    if target is JobStatus.FAILED and job.status is JobStatus.RUNNING and job.attempts_left:
        # "failed" is final only after the last attempt; before that it is a retry
        target = JobStatus.PENDING
    if target is JobStatus.PENDING and job.status is JobStatus.RUNNING and job.cancel_requested:
        # a cancel requested while it ran wins over an automatic retry
        target = JobStatus.CANCELLED
    return target


def _check_agrees_with_phases(job: Job) -> None:
    """Refuse a request whose status and phase changes disagree (the status contract,
    docs/reference/status-contract.md, "Phases")."""
    derived = job_status_from_phases(p.status for p in job.phases)
    never_ran = all(p.status is PhaseStatus.NOT_STARTED for p in job.phases)
    # cancelled, and failing a job that never ran, are decided at job level
    if derived is None or derived is job.status or job.status is JobStatus.CANCELLED or (
        job.status is JobStatus.FAILED and never_ran
    ):
        return
    raise ValidationFailed(
        f"status {job.status.value!r} contradicts this job's phases, which say "
        f"{derived.value!r}",
        details={"field": "status", "value": job.status.value, "phases": derived.value},
    )


def plan_finish(
    job: Job,
    status: JobStatus,
    now: datetime,
    *,
    result: Any = UNSET,
    error: Mapping[str, Any] | None = None,
    retry_at: datetime | None = None,
) -> Change:
    """Our worker's outcome for a job it ran: completed, failed (maybe retried), cancelled."""
    return plan_update(
        job, JobUpdate(status=status, result=result, error=error, retry_at=retry_at), now
    )


def plan_cancel(job: Job, now: datetime) -> Change:
    """Cancel: a pending job now; a running job when its worker reaches a checkpoint."""
    if job.status is JobStatus.PENDING:
        return _diff(job, _to_terminal(job, JobStatus.CANCELLED, now, stale_error=True), now)
    if job.status is JobStatus.RUNNING:
        return _diff(job, replace(job, cancel_requested=True), now)
    raise InvalidTransition(current=job.status.value, target=JobStatus.CANCELLED.value,
                            allowed=[])


def plan_retry(job: Job, now: datetime) -> Change:
    """The explicit retry action: a failed or cancelled job runs again as a new attempt.

    A job that used up its attempts gets one more: ``max_attempts`` rises to the attempt
    the retry starts, so the attempt never exceeds it (no "attempt 2 of 1").
    """
    check_transition(job.status, JobStatus.PENDING, Action.RETRY)
    retried = _to_retry(job, now, None)
    after = replace(
        retried,
        max_attempts=max(job.max_attempts, retried.attempt),
        result=None,
        error=None,
        cancel_requested=False,
        started_at=None,
    )
    return _diff(job, after, now)


def plan_pause(
    job: Job, now: datetime, phase: str | None = None, *, resume: bool = False
) -> Change:
    """Pause (or resume) a phase of a running job; without a name, its current phase.

    A name the job does not declare is refused first (422, naming it), whatever the
    job's status: no state of the job would make it valid.
    """
    if phase is not None:
        job.phase_index(phase)
    if job.status is not JobStatus.RUNNING:
        raise Conflict(
            f"only a running job can be {'resumed' if resume else 'paused'}; "
            f"this job is {job.status.value}",
            details={"status": job.status.value},
        )
    if not job.phases:
        raise Conflict("this job declares no phases, so there is nothing to pause or resume")
    if phase is None:
        current = job.current_phase
        if current is None:
            raise Conflict("this job has no running or paused phase")
        phase = current.name
    idx = job.phase_index(phase)
    target = PhaseStatus.RUNNING if resume else PhaseStatus.PAUSED
    current_status = job.phases[idx].status
    if resume and current_status not in (PhaseStatus.PAUSED, PhaseStatus.RUNNING):
        # resuming must not start a phase (nor complete the ones before it): workers do that
        raise InvalidTransition(
            current=current_status.value, target=target.value, allowed=[],
            subject=f"phase {phase!r}",
            message=f"phase {phase!r} is {current_status.value}: only a paused phase can be "
            "resumed",
        )
    return plan_update(job, JobUpdate(phase=PhaseUpdate(name=phase, status=target)), now) \
        if current_status is not target else Change(job, job, frozenset(), None)


def plan_stall(job: Job, now: datetime, *, retry_at: datetime | None) -> Change:
    """A running job whose lease expired: retried while attempts remain, else failed."""
    if job.status is not JobStatus.RUNNING:
        # the reaper raced a report that already moved the job on; nothing stalled
        return Change(job, job, frozenset(), None)
    error = {"message": f"worker {job.worker_id or '?'} stopped heart-beating (lease expired)",
             "code": "stalled", "type": "Stalled"}
    return plan_update(job, JobUpdate(status=JobStatus.FAILED, error=error, retry_at=retry_at),
                       now)


def plan_cascade(job: Job, now: datetime, *, status: JobStatus, reason: str) -> Change:
    """A pending flow parent that can never run: failed (a child failed) or cancelled."""
    if job.is_terminal:
        return Change(job, job, frozenset(), None)
    if job.status is JobStatus.RUNNING:
        return plan_cancel(job, now) if status is JobStatus.CANCELLED else \
            plan_update(job, JobUpdate(status=status, error={"message": reason}), now)
    check_transition(job.status, status)
    after = _to_terminal(job, status, now, stale_error=True)
    if status is JobStatus.FAILED:
        after = replace(after, error={"message": reason, "code": "child_failed"})
    return _diff(job, after, now)


def plan_children_done(job: Job, now: datetime) -> Change:
    """A flow parent's last child completed: the parent becomes runnable."""
    if job.status is not JobStatus.PENDING or job.step != Step.WAITING_CHILDREN:
        return Change(job, job, frozenset(), None)
    return _diff(job, replace(job, step=pending_step(job.run_at, now), children_left=0), now)


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
    )
