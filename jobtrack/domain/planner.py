"""The planner: turns a requested change into the next state of a job.

Every writer (HTTP API, our worker, an external worker, the stall reaper, flow cascades)
plans through the functions here, so one rule set decides every status a job can have.
The store only persists what a plan says, in the same transaction as its event.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from jobtrack.domain._copy import replace
from jobtrack.domain.events import event_type_for
from jobtrack.domain.phases import (
    enter_phase,
    progress_from_phases,
    reset_phases,
    running_step,
    settle_phases,
    start_next_phase,
)
from jobtrack.domain.records import (
    UNSET,
    Change,
    Job,
    JobUpdate,
    Phase,
    PhaseUpdate,
    pending_step,
)
from jobtrack.domain.status import (
    Action,
    JobStatus,
    PhaseStatus,
    Step,
    allowed_targets,
    check_phase_transition,
    check_transition,
    job_status_from_phases,
)
from jobtrack.errors import Conflict, InvalidTransition, ValidationFailed

# Fields every change of state touches; not part of an event's delta.
_BOOKKEEPING: Final = frozenset({"updated_at", "worker_id", "lease_expires_at", "version"})


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


def _to_running(job: Job, now: datetime, error: Mapping[str, Any] | None = None) -> Job:
    """An attempt starts: with no error but the one it reports (an earlier attempt's
    error stays on the job while the retry waits, to say why, and ends here)."""
    phases = start_next_phase(job.phases, now) if job.phases else []
    return replace(
        job,
        status=JobStatus.RUNNING,
        phases=tuple(phases),
        step=running_step(phases, Step.RUNNING),
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
        phases=reset_phases(job.phases),
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
        phases=tuple(settle_phases(job.phases, status, now)),
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
            after = replace(after, step=running_step(after.phases, after.step))
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
            phases = enter_phase(phases, idx, now)
        elif new_status in (PhaseStatus.COMPLETED, PhaseStatus.FAILED):
            phases[idx] = replace(current, status=new_status, completed_at=now,
                                  started_at=current.started_at or now)
        else:
            phases[idx] = replace(current, status=new_status)
    elif current.status is PhaseStatus.NOT_STARTED and pu.progress is not None:
        # progress on a phase not yet started means the worker is in it now
        phases = enter_phase(phases, idx, now)
    if pu.progress is not None:
        phases[idx] = replace(phases[idx], done=pu.progress.done, total=pu.progress.total)
    derived = job_status_from_phases((p.status for p in phases),
                                     attempts_left=job.attempts_left)
    if derived is JobStatus.RUNNING or (
        derived is JobStatus.PENDING and job.status is JobStatus.RUNNING
        and PhaseStatus.FAILED not in (p.status for p in phases)
    ):
        # between two phases of a running job: the next one starts now
        phases = start_next_phase(phases, now)
        derived = job_status_from_phases((p.status for p in phases),
                                         attempts_left=job.attempts_left)
    if PhaseStatus.FAILED in (p.status for p in phases):
        derived = JobStatus.FAILED
    return phases, derived


def _apply_step(job: Job, after: Job, step: str, now: datetime) -> tuple[Job, JobStatus | None]:
    """A step names a phase to enter on a phased job, or is free text on a job without."""
    if not job.phases:
        return replace(after, step=step), None
    phases = enter_phase(list(after.phases), job.phase_index(step), now)
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
